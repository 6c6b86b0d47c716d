using NqmValidate.Training;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>Where in training curvature is measured: at initialisation (Steps = 0) or after Steps warm-up updates.</summary>
public sealed record Checkpoint(long Steps)
{
    public string Label => Steps == 0 ? "init" : $"warmup-{Steps}";
    public override string ToString() => Steps == 0 ? "init" : $"warmup:{Steps}";

    /// <summary>Parses "init" or "warmup:STEPS"; a comma-separated list gives several checkpoints.</summary>
    public static IReadOnlyList<Checkpoint> ParseList(string text)
    {
        var list = new List<Checkpoint>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part == "init") list.Add(new Checkpoint(0));
            else if (part.StartsWith("warmup:", StringComparison.Ordinal) && long.TryParse(part["warmup:".Length..], out long steps) && steps >= 0)
                list.Add(new Checkpoint(steps));
            else throw new CurvatureInputException($"--checkpoint: '{part}' is not 'init' or 'warmup:STEPS' (STEPS a non-negative integer).");
        }
        if (list.Count == 0) throw new CurvatureInputException("--checkpoint: no checkpoint given (use init or warmup:STEPS).");
        if (list.Select(c => c.Steps).Distinct().Count() != list.Count) throw new CurvatureInputException($"--checkpoint: '{text}' repeats a checkpoint.");
        return list.OrderBy(c => c.Steps).ToList();
    }
}

/// <summary>How the warm-up trains: the same model, optimizer, batch size and seed derivation as a trial.</summary>
public sealed record WarmupSettings(ModelSpec Model, OptimizerSpec Optimizer, int BatchSize, long Seed);

/// <summary>
/// Builds the model a trial with the same seed builds and trains it through the checkpoints in order,
/// reproducing the trial's mini-batches (<see cref="EpochShuffler"/> with the trial's data seed), so the
/// parameters at warmup:S are those a trial with these settings has after S updates.
/// </summary>
public sealed class WarmupTrainer : IDisposable
{
    readonly WarmupSettings _settings;
    readonly DataSplit _train;
    readonly OptimizerSpec _optimizer;
    readonly IUpdateRule _rule;
    readonly EpochShuffler _shuffler;
    public nn.Module<Tensor, Tensor> Model { get; }
    public long Step { get; private set; }
    public double LastMiniBatchLoss { get; private set; } = double.NaN;

    public WarmupTrainer(WarmupSettings settings, DataSplit train, long finalStep)
    {
        _settings = settings;
        _train = train;
        if (settings.BatchSize < 1 || settings.BatchSize > train.Count)
            throw new CurvatureInputException($"warm-up batch size {settings.BatchSize} must be between 1 and the {train.Count} training examples.");
        _optimizer = OptimizerFamilies.Resolve(settings.Optimizer, Math.Max(1, finalStep));
        Model = ModelRegistry.Create(settings.Model, Seeds.Derive(settings.Seed, Seeds.ModelStream));
        _rule = OptimizerFamilies.Create(_optimizer, Model);
        _shuffler = new EpochShuffler(train.Count, settings.BatchSize, Seeds.Derive(settings.Seed, Seeds.DataStream));
    }

    /// <summary>Trains until <paramref name="step"/> updates have been made (no-op when already there).</summary>
    public void TrainTo(long step, Action<long, double>? progress = null)
    {
        if (step < Step) throw new InvalidOperationException($"cannot go back from step {Step} to {step}");
        Model.train();
        while (Step < step)
        {
            Step++;
            using var scope = NewDisposeScope();
            var indices = _shuffler.BatchIndices(Step);
            var loss = _rule.Step(() => nn.functional.cross_entropy(Model.call(_train.Images.index_select(0, indices)), _train.Labels.index_select(0, indices)),
                OptimizerFamilies.LearningRateAt(_optimizer, Step));
            LastMiniBatchLoss = loss.item<float>();
            if (!double.IsFinite(LastMiniBatchLoss))
                throw new CurvatureInputException($"warm-up diverged: mini-batch loss {LastMiniBatchLoss} at step {Step}; lower the learning rate.");
            progress?.Invoke(Step, LastMiniBatchLoss);
        }
        Model.eval();
    }

    public void Dispose()
    {
        _shuffler.Dispose();
        _rule.Dispose();
        Model.Dispose();
    }
}
