using System.Text.Json;
using System.Text.Json.Serialization;

namespace NqmValidate.Training.Trials;

// The contract between one trial and everything that runs or reads trials (sweeps, reports).
// A trial directory holds trial.json (TrialRecord) and curve.csv (CurvePoint rows), both written
// atomically. Field names on disk are snake_case (see TrialJson.Options).

/// <summary>How a trial ended. A divergence is an outcome, not a crash.</summary>
[JsonConverter(typeof(SnakeCaseEnumConverter<TrialStatus>))]
public enum TrialStatus
{
    /// <summary>Still training (only ever seen in a trial.json of a killed process).</summary>
    Running,
    /// <summary>An evaluation met the target; steps_to_target is the first such step.</summary>
    Reached,
    /// <summary>Trained max_steps without meeting the target.</summary>
    BudgetExhausted,
    /// <summary>Loss became NaN/Inf or rose far above its starting value.</summary>
    Diverged,
    /// <summary>Stopped by Ctrl-C / SIGTERM; not a result.</summary>
    Interrupted,
    /// <summary>The trial process died (native crash, out of memory); recorded by the sweep.</summary>
    Crashed,
}

/// <summary>Which metric a workload's target is stated in.</summary>
[JsonConverter(typeof(SnakeCaseEnumConverter<TargetMetric>))]
public enum TargetMetric
{
    /// <summary>Cross-entropy on the fixed evaluation subset of the training set (the primary target).</summary>
    TrainLoss,
    /// <summary>Classification error on the held-out validation split.</summary>
    ValidationError,
}

/// <summary>A target: the trial reaches it at the first evaluation with metric &lt; threshold.</summary>
public sealed record Target(TargetMetric Metric, double Threshold)
{
    /// <summary>True when an evaluated value meets the target (strictly below the threshold).</summary>
    public bool IsMetBy(double value) => value < Threshold;

    public override string ToString() => $"{(Metric == TargetMetric.TrainLoss ? "train loss" : "validation error")} < {Threshold}";
}

/// <summary>
/// One row of curve.csv. <see cref="Step"/> = updates done; <see cref="MinibatchLoss"/> is the loss of the
/// batch used by update <c>Step</c> (null at step 0); the evaluated metrics are those of the parameters after
/// update <c>Step</c> (null = not evaluated at that step). <see cref="TrainSeconds"/> excludes evaluation time.
/// </summary>
public sealed record CurvePoint(
    long Step,
    long ExamplesSeen,
    double TrainSeconds,
    double? MinibatchLoss,
    double? TrainLoss,
    double? ValidationLoss,
    double? ValidationError,
    double? LearningRate = null);

/// <summary>Enum values on disk in snake_case (budget_exhausted, train_loss).</summary>
public sealed class SnakeCaseEnumConverter<T>() : JsonStringEnumConverter<T>(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false)
    where T : struct, Enum;
