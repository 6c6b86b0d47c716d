using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// The registry of optimizer families and what every family shares: resolving a spec against its family
/// (validation and defaults), building its update rule, and the learning-rate schedule.
/// </summary>
public static class OptimizerFamilies
{
    /// <summary>Every family, in the order help texts list them. A new family is one line here.</summary>
    public static readonly IReadOnlyList<IOptimizerFamily> All =
    [
        new SgdFamily(),
        new MomentumFamily(nesterov: false),
        new MomentumFamily(nesterov: true),
        new AdamFamily(),
        new EmaFamily(),
        new KfacFamily(),
    ];

    public static IReadOnlyList<string> Names => All.Select(f => f.Name).ToList();
    public static readonly string[] Schedules = ["constant", "linear", "piecewise"];

    public static IOptimizerFamily? Find(string name) => All.FirstOrDefault(f => f.Name == name);

    public static IOptimizerFamily Get(string name) => Find(name)
        ?? throw new OptimizerSpecException($"Unknown optimizer '{name}'. Valid: {string.Join(", ", Names)}.");

    /// <summary>Checks the spec against its family and fills in defaults (<paramref name="maxSteps"/> is the default decay length).</summary>
    public static OptimizerSpec Resolve(OptimizerSpec spec, long maxSteps)
    {
        var family = Get(spec.Name);
        if (!(spec.LearningRate > 0) || !double.IsFinite(spec.LearningRate))
            throw new OptimizerSpecException($"learning_rate must be positive and finite, got {spec.LearningRate}.");
        foreach (var (name, value) in spec.Hyperparameters)
        {
            var h = family.Hyperparameters.FirstOrDefault(p => p.Name == name)
                ?? throw new OptimizerSpecException($"'{name}' is not a hyperparameter of '{family.Name}'" +
                    (family.Hyperparameters.Count == 0 ? " (it has none besides learning_rate)." : $" (it has {string.Join(", ", family.Hyperparameters.Select(p => p.Name))})."));
            if (!h.Allows(value)) throw new OptimizerSpecException($"{name} must be in {h.Range}, got {value}.");
        }
        if (!Schedules.Contains(spec.Schedule))
            throw new OptimizerSpecException($"Unknown learning-rate schedule '{spec.Schedule}'. Valid: {string.Join(", ", Schedules)}.");
        bool linear = spec.Schedule == "linear";
        if (!linear && (spec.DecaySteps ?? (object?)spec.FinalFraction) is not null)
            throw new OptimizerSpecException("decay_steps and final_fraction apply to the linear schedule only.");
        if (spec.DecaySteps is { } d && d < 1)
            throw new OptimizerSpecException($"decay_steps must be at least 1, got {d}.");
        if (spec.FinalFraction is { } f && !(f >= 0 && f <= 1))
            throw new OptimizerSpecException($"final_fraction must be in [0, 1], got {f}.");
        bool piecewise = spec.Schedule == "piecewise";
        if (!piecewise && (spec.PieceSteps ?? (object?)spec.Factors) is not null)
            throw new OptimizerSpecException("piece_steps and factors apply to the piecewise schedule only.");
        if (piecewise && spec.PieceSteps is not >= 1)
            throw new OptimizerSpecException($"a piecewise schedule needs piece_steps >= 1, got {(spec.PieceSteps?.ToString() ?? "nothing")}.");
        if (piecewise && (spec.Factors is not { Length: > 0 } fs || fs.Any(x => !(x > 0) || !double.IsFinite(x))))
            throw new OptimizerSpecException($"a piecewise schedule needs factors: one or more positive finite multipliers of the learning rate, got [{string.Join(", ", spec.Factors ?? [])}].");
        var resolved = spec with
        {
            DecaySteps = linear ? spec.DecaySteps ?? Math.Max(1, maxSteps) : null,
            FinalFraction = linear ? spec.FinalFraction ?? 0.01 : null,
        };
        foreach (var h in family.Hyperparameters)
            if (resolved[h.Name] is null) resolved = resolved.With(h.Name, h.Default);
        return resolved;
    }

    /// <summary>The update rule of a resolved spec over <paramref name="model"/>'s parameters.</summary>
    public static IUpdateRule Create(OptimizerSpec resolved, nn.Module model) => Get(resolved.Name).Create(resolved, model);

    /// <summary>The learning rate used by update <paramref name="step"/> (1-based) under a resolved spec.</summary>
    public static double LearningRateAt(OptimizerSpec resolved, long step)
    {
        if (resolved.Schedule == "piecewise")
        {
            var factors = resolved.Factors!.Value;
            long piece = Math.Min(factors.Length - 1, (step - 1) / resolved.PieceSteps!.Value);
            return resolved.LearningRate * factors[(int)piece];
        }
        if (resolved.Schedule != "linear") return resolved.LearningRate;
        double progress = Math.Min(1.0, (double)(step - 1) / resolved.DecaySteps!.Value);
        return resolved.LearningRate * (1.0 - (1.0 - resolved.FinalFraction!.Value) * progress);
    }
}
