using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;

namespace NqmValidate.Training.Trials;

/// <summary>The configuration of a trial is invalid; the message names the field and the fault.</summary>
public sealed class TrialConfigException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Everything that determines one trial. Built as defaults → optional JSON file (--config) → command-line
/// overrides; <see cref="Resolve"/> validates it and fills every default in, and that resolved form is
/// what trial.json records, so the trial can be re-run from its own record.
/// </summary>
public sealed record TrialConfig
{
    public ModelSpec Model { get; init; } = new();
    public OptimizerSpec Optimizer { get; init; } = new();
    public int BatchSize { get; init; } = 128;
    /// <summary>Required: a training-loss or validation-error target.</summary>
    public Target? Target { get; init; }
    /// <summary>
    /// Thresholds on the target's metric, looser than its own, whose first crossings the trial also records on its way
    /// to <see cref="Target"/> (<see cref="TrialRecord.LooserTargets"/>); null = none. Resolved: loosest first.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<double>? LooserTargets { get; init; }
    public long MaxSteps { get; init; } = 10_000;
    /// <summary>The trial seed; the model's initial weights and the data order use streams derived from it (<see cref="Seeds"/>).</summary>
    public long Seed { get; init; }
    /// <summary>Intra-op threads. Results are reproducible at a fixed thread count.</summary>
    public int Threads { get; init; } = 1;
    public string Device { get; init; } = "cpu";
    /// <summary>Fashion-MNIST directory (null: $NQM_DATA_DIR, else /usr/share/datasets/fashion-mnist).</summary>
    public string? DataDir { get; init; }
    /// <summary>Size of the fixed evaluation subset of the training split on which train_loss is measured.</summary>
    public int EvalExamples { get; init; } = 2_000;
    /// <summary>Diverged when the mini-batch loss (moving average) exceeds this multiple of the initial training loss.</summary>
    public double DivergenceFactor { get; init; } = 3.0;
    /// <summary>Besides the evaluation schedule's steps, curve.csv gets a row every this many steps (0 = none).</summary>
    public long LogEvery { get; init; } = 100;

    /// <summary>Validates and fills in every default (model widths, optimizer hyperparameters, data directory).</summary>
    public TrialConfig Resolve()
    {
        if (Target is null)
            throw new TrialConfigException("No target: give --target-loss X (training cross-entropy on the evaluation subset) or --target-error X (validation error).");
        if (!(Target.Threshold > 0) || double.IsInfinity(Target.Threshold))
            throw new TrialConfigException($"target threshold must be positive and finite, got {Target.Threshold}.");
        if (Target.Metric == TargetMetric.ValidationError && Target.Threshold > 1)
            throw new TrialConfigException($"--target-error is a fraction in (0, 1], got {Target.Threshold}.");
        if (LooserTargets is { } looser && looser.Any(t => !(t > Target.Threshold) || double.IsInfinity(t) || (Target.Metric == TargetMetric.ValidationError && t > 1)))
            throw new TrialConfigException($"looser targets must be finite and above the target's threshold {Target.Threshold}, got [{string.Join(", ", looser)}].");
        if (LooserTargets is { } distinct && distinct.Distinct().Count() != distinct.Count)
            throw new TrialConfigException($"looser targets must be distinct, got [{string.Join(", ", distinct)}].");
        if (BatchSize < 1) throw new TrialConfigException($"batch_size must be at least 1, got {BatchSize}.");
        if (MaxSteps < 1) throw new TrialConfigException($"max_steps must be at least 1, got {MaxSteps}.");
        if (Seed < 0) throw new TrialConfigException($"seed must be non-negative, got {Seed}.");
        if (Threads < 1) throw new TrialConfigException($"threads must be at least 1, got {Threads}.");
        if (Device is not ("cpu" or "cuda")) throw new TrialConfigException($"Unknown device '{Device}'. Valid: cpu, cuda.");
        if (EvalExamples < 1) throw new TrialConfigException($"eval_examples must be at least 1, got {EvalExamples}.");
        if (!(DivergenceFactor > 1)) throw new TrialConfigException($"divergence_factor must be above 1, got {DivergenceFactor}.");
        if (LogEvery < 0) throw new TrialConfigException($"log_every must be non-negative, got {LogEvery}.");
        try
        {
            return this with
            {
                Model = ModelRegistry.Resolve(Model),
                LooserTargets = LooserTargets is { Count: > 0 } l ? [.. l.OrderDescending()] : null,
                Optimizer = OptimizerFamilies.Resolve(Optimizer, MaxSteps),
                DataDir = Path.GetFullPath(FashionMnist.ResolveDirectory(DataDir)),
            };
        }
        catch (Exception e) when (e is ModelSpecException or OptimizerSpecException)
        {
            throw new TrialConfigException(e.Message, e);
        }
    }

    /// <summary>Reads a trial configuration file (snake_case JSON; unknown keys are errors).</summary>
    public static TrialConfig Load(string path)
    {
        if (!File.Exists(path)) throw new TrialConfigException($"{path}: configuration file not found.");
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<TrialConfig>(File.ReadAllText(path), TrialJson.Options)
                ?? throw new TrialConfigException($"{path}: the file holds null, not a trial configuration.");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new TrialConfigException($"{path}: {e.Message}", e);
        }
    }
}
