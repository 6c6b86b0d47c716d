using NqmValidate.Curvature.Output;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Workloads;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>What `nqm curvature` measures: a registry model on Fashion-MNIST at one or more checkpoints.</summary>
public sealed record CurvatureRunRequest
{
    public ModelSpec Model { get; init; } = new();
    public string? DataDir { get; init; }
    public IReadOnlyList<Checkpoint> Checkpoints { get; init; } = [new Checkpoint(0)];
    /// <summary>Warm-up optimizer (default SGD, learning rate 0.1), batch size and the trial seed (model init and data order).</summary>
    public OptimizerSpec Optimizer { get; init; } = new();
    public int BatchSize { get; init; } = 128;
    public long Seed { get; init; }
    /// <summary>The replayed trial's max_steps (the decay length of a linear schedule); null = the last checkpoint.</summary>
    public long? TrialMaxSteps { get; init; }
    /// <summary>A recorded trial to replay (its whole configuration); when set it replaces Model, Optimizer, BatchSize, Seed and TrialMaxSteps.</summary>
    public TrialConfig? Trial { get; init; }
    public int Threads { get; init; } = 1;
    public CurvatureSettings Settings { get; init; } = new();
    public required string OutDir { get; init; }
    public bool ParametersBin { get; init; }
    public bool Plots { get; init; } = true;
}

/// <summary>
/// One measured checkpoint and the directory its files went to. The overlaps compare its top-k eigenspace (the GGN's
/// when measured, else the first operator's) with the previous checkpoint's and the first one's of the same run:
/// ‖V₁ᵀV₂‖²_F / k (1 = the same subspace); null for the first checkpoint or without eigenpairs.
/// </summary>
public sealed record CheckpointResult(Checkpoint Checkpoint, string Directory, CurvatureReport Report,
    double? OverlapPrevious = null, double? OverlapFirst = null);

public static class CurvatureRun
{
    /// <summary>
    /// Loads Fashion-MNIST, builds the model as a trial with the same seed would, trains it through the
    /// checkpoints in order and measures at each. Curvature uses the first N examples of the training split
    /// (the files are in random order; these are also the first examples of the trainer's evaluation subset).
    /// One checkpoint writes into OutDir; several write into OutDir/&lt;label&gt;/ (init, warmup-200, ...).
    /// </summary>
    public static IReadOnlyList<CheckpointResult> Execute(CurvatureRunRequest request, Action<string>? log = null)
    {
        log ??= _ => { };
        request.Settings.Validate();
        var model = ModelRegistry.Resolve(request.Trial?.Model ?? request.Model);
        OptimizerFamilies.Resolve(request.Trial?.Optimizer ?? request.Optimizer, Math.Max(1, request.Checkpoints.Max(c => c.Steps)));
        TorchRuntime.Initialize(request.Threads);
        using var data = FashionMnist.Load(request.DataDir ?? request.Trial?.DataDir);
        if (data.Train.Count < request.Settings.Examples)
            throw new CurvatureInputException($"--examples {request.Settings.Examples} exceeds the {data.Train.Count} training examples.");
        var inputs = data.Train.Images.narrow(0, 0, request.Settings.Examples);
        var targets = data.Train.Labels.narrow(0, 0, request.Settings.Examples);
        long last = request.Checkpoints.Max(c => c.Steps);
        if (request.BatchSize < 1 || request.BatchSize > data.Train.Count)
            throw new CurvatureInputException($"warm-up batch size {request.BatchSize} must be between 1 and the {data.Train.Count} training examples.");
        var workload = new FashionMnistWorkload(data);
        // A recorded trial replays at its own thread count: another count may change its last bits, and so its path.
        var trial = request.Trial is { } recorded ? recorded with { DataDir = request.DataDir ?? recorded.DataDir } : new TrialConfig
        {
            Model = model, Optimizer = request.Optimizer, BatchSize = request.BatchSize, Seed = request.Seed, Threads = request.Threads,
            DataDir = request.DataDir, MaxSteps = request.TrialMaxSteps ?? Math.Max(1, last),
        };
        if (trial.BatchSize < 1 || trial.BatchSize > data.Train.Count)
            throw new CurvatureInputException($"warm-up batch size {trial.BatchSize} must be between 1 and the {data.Train.Count} training examples.");
        using var trainer = new TrialRunner.TrialReplay(trial, workload);
        var lossKind = workload.OutputLoss == OutputLossKind.SoftmaxCrossEntropy ? LossKind.CrossEntropy : LossKind.MeanSquaredError;
        var results = new List<CheckpointResult>();
        // The top eigenvectors of the first checkpoint and of the previous one, for the subspace overlaps (k × P each).
        Tensor? first = null, previous = null;
        try
        {
            foreach (var checkpoint in request.Checkpoints.OrderBy(c => c.Steps))
            {
                if (checkpoint.Steps > trainer.Step)
                {
                    log($"warm-up: training to step {checkpoint.Steps} ({trial.Optimizer.Name}, B = {trial.BatchSize}, lr = {trial.Optimizer.LearningRate}) ...");
                    trainer.TrainTo(checkpoint.Steps, (step, loss) =>
                    {
                        if (!double.IsFinite(loss))
                            throw new CurvatureInputException($"warm-up diverged: mini-batch loss {loss} at step {step}; lower the learning rate.");
                        if (step % 50 == 0) log($"  step {step}: mini-batch loss {loss:F4}");
                    });
                }
                trainer.Model.eval();
                // The replay trains at the trial's own thread count (its path depends on it); the measurement uses the
                // request's, and the next stretch of training goes back to the trial's.
                TorchRuntime.Initialize(request.Threads);
                Tensor? top = null;
                using var preconditioner = OwnPreconditioner(trainer, trial, checkpoint);
                var report = CurvatureStudy.Measure(trainer.Model, inputs, targets, lossKind, checkpoint.ToString(), request.Settings, log,
                    (op, vectors) =>
                    {
                        if (vectors.Count == 0 || (top is not null && op != "ggn")) return; // the GGN's if measured, else the first operator's
                        top?.Dispose();
                        top = stack(vectors.ToArray()).detach().DetachFromDisposeScope();
                    },
                    preconditioner is null ? null : new MeasuredPreconditioner(
                        $"{trial.Optimizer.Name} trial's own state at step {checkpoint.Steps} (B = {trial.BatchSize})", preconditioner));
                string dir = request.Checkpoints.Count == 1 ? request.OutDir : Path.Combine(request.OutDir, checkpoint.Label);
                TorchRuntime.Initialize(trial.Threads);
                CurvatureFiles.WriteAll(report, dir, request.ParametersBin, request.Plots, log);
                results.Add(new CheckpointResult(checkpoint, dir, report, Overlap(previous, top), Overlap(first, top)));
                if (previous is not null && !ReferenceEquals(previous, first)) previous.Dispose();
                first ??= top;
                previous = top;
            }
        }
        finally
        {
            if (previous is not null && !ReferenceEquals(previous, first)) previous.Dispose();
            first?.Dispose();
        }
        return results;
    }

    /// <summary>
    /// The diagonal preconditioner the replayed trial's update rule applies at this checkpoint (Adam's 1/(√v̂ + ε)), flat
    /// float64 in parameter order; null for rules without one and at step 0, where the rule has no state yet.
    /// </summary>
    static Tensor? OwnPreconditioner(TrialRunner.TrialReplay trainer, TrialConfig trial, Checkpoint checkpoint)
    {
        var parts = trainer.DiagonalPreconditioner();
        if (parts is null) return null;
        try { return CurvatureProblem.Flatten(parts).DetachFromDisposeScope(); }
        finally { foreach (var t in parts) t.Dispose(); }
    }

    /// <summary>‖ABᵀ‖²_F / k for two k × P matrices of orthonormal rows (1: the same subspace); null if either is missing.</summary>
    public static double? Overlap(Tensor? a, Tensor? b)
    {
        if (a is null || b is null || a.shape[0] != b.shape[0]) return null;
        using var scope = NewDisposeScope();
        return a.to_type(ScalarType.Float64).matmul(b.to_type(ScalarType.Float64).t()).square().sum().item<double>() / a.shape[0];
    }
}
