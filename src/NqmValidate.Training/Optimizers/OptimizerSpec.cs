using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// An optimizer and its hyperparameters. Null fields take the optimizer's defaults in <see cref="OptimizerFactory.Resolve"/>.
/// </summary>
/// <param name="Name">sgd, momentum (heavy ball: v ← μv + g, θ ← θ − ηv), nesterov (θ ← θ − η(g + μv)), adam.</param>
/// <param name="LearningRate">Initial learning rate η.</param>
/// <param name="Momentum">μ for momentum and nesterov (default 0.9).</param>
/// <param name="Beta1">Adam's β1 (default 0.9).</param>
/// <param name="Beta2">Adam's β2 (default 0.999).</param>
/// <param name="Epsilon">Adam's ε (default 1e-8).</param>
/// <param name="Schedule">constant, or linear: η decays linearly to η·FinalFraction over DecaySteps steps, then stays there.</param>
/// <param name="DecaySteps">Steps of the linear decay (default: the trial's max_steps).</param>
/// <param name="FinalFraction">η at the end of the linear decay as a fraction of the initial η (default 0.01).</param>
public sealed record OptimizerSpec(
    string Name = "sgd",
    double LearningRate = 0.1,
    double? Momentum = null,
    double? Beta1 = null,
    double? Beta2 = null,
    double? Epsilon = null,
    string Schedule = "constant",
    long? DecaySteps = null,
    double? FinalFraction = null);

/// <summary>The optimizer spec is invalid (unknown name, a hyperparameter out of range or not used by the optimizer).</summary>
public sealed class OptimizerSpecException(string message) : Exception(message);

/// <summary>Builds TorchSharp optimizers from a spec and computes the learning-rate schedule.</summary>
public static class OptimizerFactory
{
    public static readonly string[] Names = ["sgd", "momentum", "nesterov", "adam"];
    public static readonly string[] Schedules = ["constant", "linear"];

    /// <summary>Checks the spec and fills in defaults (<paramref name="maxSteps"/> is the default decay length).</summary>
    public static OptimizerSpec Resolve(OptimizerSpec spec, long maxSteps)
    {
        if (!Names.Contains(spec.Name))
            throw new OptimizerSpecException($"Unknown optimizer '{spec.Name}'. Valid: {string.Join(", ", Names)}.");
        if (!(spec.LearningRate > 0) || double.IsInfinity(spec.LearningRate))
            throw new OptimizerSpecException($"learning_rate must be positive and finite, got {spec.LearningRate}.");
        bool usesMomentum = spec.Name is "momentum" or "nesterov", adam = spec.Name == "adam";
        if (spec.Momentum is not null && !usesMomentum)
            throw new OptimizerSpecException($"momentum applies to momentum and nesterov, not to '{spec.Name}'" + (adam ? " (use beta1)." : "."));
        if ((spec.Beta1 ?? spec.Beta2 ?? spec.Epsilon) is not null && !adam)
            throw new OptimizerSpecException($"beta1, beta2 and epsilon apply to adam, not to '{spec.Name}'.");
        InUnitInterval("momentum", spec.Momentum);
        InUnitInterval("beta1", spec.Beta1);
        InUnitInterval("beta2", spec.Beta2);
        if (spec.Epsilon is { } eps && !(eps > 0))
            throw new OptimizerSpecException($"epsilon must be positive, got {eps}.");
        if (!Schedules.Contains(spec.Schedule))
            throw new OptimizerSpecException($"Unknown learning-rate schedule '{spec.Schedule}'. Valid: {string.Join(", ", Schedules)}.");
        bool linear = spec.Schedule == "linear";
        if (!linear && (spec.DecaySteps ?? (object?)spec.FinalFraction) is not null)
            throw new OptimizerSpecException("decay_steps and final_fraction apply to the linear schedule only.");
        if (spec.DecaySteps is { } d && d < 1)
            throw new OptimizerSpecException($"decay_steps must be at least 1, got {d}.");
        if (spec.FinalFraction is { } f && !(f >= 0 && f <= 1))
            throw new OptimizerSpecException($"final_fraction must be in [0, 1], got {f}.");
        return spec with
        {
            Momentum = usesMomentum ? spec.Momentum ?? 0.9 : null,
            Beta1 = adam ? spec.Beta1 ?? 0.9 : null,
            Beta2 = adam ? spec.Beta2 ?? 0.999 : null,
            Epsilon = adam ? spec.Epsilon ?? 1e-8 : null,
            DecaySteps = linear ? spec.DecaySteps ?? Math.Max(1, maxSteps) : null,
            FinalFraction = linear ? spec.FinalFraction ?? 0.01 : null,
        };
    }

    static void InUnitInterval(string name, double? value)
    {
        if (value is { } v && !(v >= 0 && v < 1))
            throw new OptimizerSpecException($"{name} must be in [0, 1), got {v}.");
    }

    /// <summary>Creates the optimizer over <paramref name="parameters"/> from a resolved spec.</summary>
    public static optim.Optimizer Create(OptimizerSpec resolved, IEnumerable<Parameter> parameters) => resolved.Name switch
    {
        "sgd" => optim.SGD(parameters, resolved.LearningRate),
        // TorchSharp's (PyTorch's) SGD momentum with zero dampening is the heavy-ball form v ← μv + g, θ ← θ − ηv.
        "momentum" => optim.SGD(parameters, resolved.LearningRate, momentum: resolved.Momentum!.Value),
        "nesterov" => optim.SGD(parameters, resolved.LearningRate, momentum: resolved.Momentum!.Value, nesterov: true),
        "adam" => optim.Adam(parameters, resolved.LearningRate, beta1: resolved.Beta1!.Value, beta2: resolved.Beta2!.Value, eps: resolved.Epsilon!.Value),
        _ => throw new OptimizerSpecException($"Unknown optimizer '{resolved.Name}'. Valid: {string.Join(", ", Names)}."),
    };

    /// <summary>The learning rate used by update <paramref name="step"/> (1-based) under a resolved spec.</summary>
    public static double LearningRateAt(OptimizerSpec resolved, long step)
    {
        if (resolved.Schedule != "linear") return resolved.LearningRate;
        double progress = Math.Min(1.0, (double)(step - 1) / resolved.DecaySteps!.Value);
        return resolved.LearningRate * (1.0 - (1.0 - resolved.FinalFraction!.Value) * progress);
    }

    /// <summary>Sets the learning rate of every parameter group.</summary>
    public static void SetLearningRate(optim.Optimizer optimizer, double learningRate)
    {
        foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
    }
}
