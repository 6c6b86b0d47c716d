using System.Globalization;
using NqmValidate.Curvature;
using NqmValidate.Reports;
using NqmValidate.Torch.Tests.Sweeps;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;
using NqmValidate.Validation;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>
/// The curvature stage along a sweep's trials (the spec's curvature.trajectory): which trials it picks, where it
/// measures them, what drift.csv says, and how the fit sees those checkpoints.
/// </summary>
public class TrajectoryStageTests
{
    /// <summary>Real trials in this process (one process per trial is the sweep's business, not this test's).</summary>
    sealed class InProcessTrials : ITrialRunner
    {
        public Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel) =>
            Task.Run(() =>
            {
                started(0);
                TrialRunner.RunToDirectory(request.Config, directory, cancel);
                return new TrialExit(0, "", false);
            });
    }

    const string SpecJson = """
    {
      "name": "trajectory",
      "seed": 5,
      "workload": { "model": { "name": "mlp", "hidden_widths": [16] }, "target": { "metric": "train_loss", "threshold": 1.0 } },
      "batch_sizes": [32, 128],
      "optimizers": [ { "name": "sgd", "learning_rate": { "min": 0.05, "max": 0.5, "points": 3 } } ],
      "budget": { "examples": 200000, "min_steps": 50, "max_steps": 1500 },
      "evaluation": { "eval_examples": 256 },
      "jobs": 1,
      "curvature": {
        "examples": 256, "chunk_size": 64, "top_k": 3, "lanczos_steps": 8, "hutchinson_probes": 2, "slq_probes": 1, "slq_steps": 5,
        "small_batch": 8, "operators": ["ggn"],
        "trajectory": { "levels": [1.8, 1.3] }
      }
    }
    """;

    [Fact]
    public async Task TheBestTrialsAreMeasuredWhereTheirLossFirstCrossedEachLevelAndTheTargetAndTheFitSeesEveryCheckpoint()
    {
        string root = SweepTestKit.TempDir("trajectory");
        string specPath = Path.Combine(root, "spec.json");
        File.WriteAllText(specPath, SpecJson);
        var spec = SpecLoader.Parse(SpecJson, specPath);
        string sweepDir = Path.Combine(root, "sweep");
        var summary = await new SweepRunner(new InProcessTrials()).RunAsync(new SweepOptions(spec, sweepDir, Shard.All), null, CancellationToken.None);
        Assert.True(summary.Complete);

        var values = CurvatureSpecFile.From(spec, specPath);
        var trajectory = Assert.IsType<TrajectorySpec>(values.Trajectory);
        var (trials, notes) = Trajectories.Pick(sweepDir, trajectory);
        // Default: every optimizer at the smallest and the largest batch size, each study's best trial.
        Assert.Equal(["sgd-b32-r0", "sgd-b128-r0"], trials.Select(t => t.Name));
        Assert.Empty(notes);
        var trialsCsv = CsvFiles.ReadRows(Path.Combine(sweepDir, "trials.csv"), "study", "trial", "status", "steps_to_target");
        foreach (var t in trials)
        {
            // Oracle: the study's reached trial with the fewest steps in trials.csv.
            var best = trialsCsv.Where(r => r["study"] == t.Name && r["status"] == "reached")
                .MinBy(r => long.Parse(r["steps_to_target"], CultureInfo.InvariantCulture))!;
            Assert.Equal(Path.Combine(sweepDir, "trials", t.Name, best["trial"]), t.TrialDirectory);
        }

        string outDir = Path.Combine(root, "curvature", Trajectories.FolderName);
        var template = values.ToRequest(outDir) with { Threads = 1 };
        var t0 = trials[0];
        var rows = Trajectories.Measure(t0, trajectory.Levels, 1.0, template, outDir);
        var record = TrialJson.Read<TrialRecord>(Path.Combine(t0.TrialDirectory, "trial.json"));
        var evaluated = CurveFile.Read(Path.Combine(t0.TrialDirectory, CurveFile.FileName)).Where(p => p.TrainLoss is not null).ToList();
        // The target's checkpoint is the trial's own steps-to-target: the trial's crossing search and the replay evaluate
        // the same grid the same way.
        Assert.Equal(record.StepsToTarget, rows[^1].Step);
        Assert.Equal("loss-1", rows[^1].Checkpoint);
        Assert.Equal(0, rows[0].Step);
        // Every level's checkpoint is a grid point where the loss is below it while at the grid point before it was not
        // (oracle: a separate replay evaluating every grid point), and never later than the curve's sparse evaluations.
        var grid = EvaluationSchedule.GridPoints(0, record.StepsToTarget!.Value).Prepend(0L).ToList();
        var lossAt = new Dictionary<long, double>();
        using (var data = NqmValidate.Training.Data.FashionMnist.Load())
        using (var replay = new TrialRunner.TrialReplay(record.Config, new NqmValidate.Training.Workloads.FashionMnistWorkload(data)))
            foreach (long g in grid) { replay.TrainTo(g); lossAt[g] = replay.EvaluateTrainLoss(); }
        foreach (double level in new[] { 1.8, 1.3, 1.0 })
        {
            long first = grid.First(g => lossAt[g] < level);
            Assert.Contains(first, rows.Select(r => r.Step));
            Assert.True(first <= evaluated.First(p => p.TrainLoss < level).Step);
        }
        foreach (var r in rows)
        {
            // The replayed model is the trial's model there: its loss over the same 256 images is the grid evaluation's.
            double recorded = lossAt[r.Step];
            Assert.True(Math.Abs(r.Loss - recorded) < 1e-4 * recorded, $"{r.Checkpoint}: {r.Loss} measured, {recorded} on the replay's grid");
            Assert.True(r.LambdaMax > 0 && r.TraceGgn > 0 && r.TraceSigma > 0 && r.SimpleNoiseScale > 0, r.ToString());
            Assert.Equal(3, r.TopK);
            Assert.True(File.Exists(Path.Combine(outDir, t0.Name, r.Checkpoint, "spectrum.csv")));
        }
        Assert.Null(rows[0].OverlapPrevious);
        Assert.Null(rows[0].OverlapInitial);
        Assert.Equal(rows[1].OverlapPrevious, rows[1].OverlapInitial);
        Assert.All(rows.Skip(1), r => Assert.InRange(r.OverlapPrevious!.Value, 0.0, 1.0 + 1e-9));

        // The fit sees every trajectory checkpoint beside the run's own, labelled TRAJECTORY/CHECKPOINT, and reads drift.csv.
        Trajectories.WriteDrift(Path.Combine(outDir, Trajectories.DriftFile), rows);
        string checkpointDir = Path.Combine(root, "curvature", "init");
        Directory.CreateDirectory(checkpointDir);
        Assert.Equal(rows.Select(r => $"{t0.Name}/{r.Checkpoint}").Order(StringComparer.Ordinal), TrajectoryDrift.Checkpoints(checkpointDir).Select(c => c.Label));
        Assert.Equal(rows.Select(r => (r.Step, r.Loss, r.OverlapPrevious)), TrajectoryDrift.Load(checkpointDir).Select(d => (d.Step, d.Loss, d.OverlapPrevious)));
        Directory.Delete(root, true);
    }

    [Fact]
    public void TheSubspaceOverlapIsOneForTheSameSubspaceAndZeroForAnOrthogonalOne()
    {
        // Oracle: orthonormal rows built by hand in R^4.
        var a = tensor(new float[] { 1, 0, 0, 0, 0, 1, 0, 0 }).reshape(2, 4);
        double s = Math.Sqrt(0.5);
        var rotated = tensor(new[] { s, s, 0, 0, -s, s, 0, 0 }).reshape(2, 4); // the same plane, another basis
        var orthogonal = tensor(new float[] { 0, 0, 1, 0, 0, 0, 0, 1 }).reshape(2, 4);
        var half = tensor(new[] { 1.0, 0, 0, 0, 0, 0, 1, 0 }).reshape(2, 4); // shares one of two directions
        Assert.Equal(1.0, CurvatureRun.Overlap(a, rotated)!.Value, 6);
        Assert.Equal(0.0, CurvatureRun.Overlap(a, orthogonal)!.Value, 6);
        Assert.Equal(0.5, CurvatureRun.Overlap(a, half)!.Value, 6);
        Assert.Null(CurvatureRun.Overlap(null, a));
    }

    [Theory]
    [InlineData("""{ "levels": [1.5], "every": 3 }""", "curvature.trajectory.every: unknown key; valid: levels, optimizers, batch_sizes")]
    [InlineData("""{ "optimizers": ["sgd"] }""", "curvature.trajectory.levels: missing")]
    [InlineData("""{ "levels": [1.5], "optimizers": ["adam"] }""", "curvature.trajectory.optimizers: 'adam' is not an optimizer of this sweep (sgd)")]
    [InlineData("""{ "levels": [1.5], "batch_sizes": [64] }""", "curvature.trajectory.batch_sizes: 64 is not a batch size of this sweep (32, 128)")]
    [InlineData("""{ "levels": [-1] }""", "curvature.trajectory.levels: -1 is not a positive training loss")]
    public void ABadTrajectorySectionIsRefusedNamingTheKey(string section, string says)
    {
        string json = SpecJson.Replace("""{ "levels": [1.8, 1.3] }""", section);
        var spec = SpecLoader.Parse(json, "s.json");
        var e = Assert.Throws<CurvatureInputException>(() => CurvatureSpecFile.From(spec, "s.json"));
        Assert.Contains(says, e.Message);
    }
}
