using System.Globalization;
using System.Text.Json;
using NqmValidate.Cli;
using NqmValidate.Curvature;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>Curvature along a recorded trial: checkpoints where its evaluated training loss first fell below given levels, reached by replay.</summary>
public class TrajectoryCheckpointTests
{
    [Fact]
    public void LossLevelCheckpointsAreTheTrialsFirstCrossingsAndTheReplayIsTheTrialThere()
    {
        string root = Path.Combine(Path.GetTempPath(), "nqm-trajectory-" + Guid.NewGuid().ToString("N"));
        string trialDir = Path.Combine(root, "trial");
        Directory.CreateDirectory(trialDir);
        var config = new TrialConfig
        {
            Model = new ModelSpec("mlp", HiddenWidths: [16]), Optimizer = new OptimizerSpec("momentum", 0.02, ("momentum", 0.9)),
            BatchSize = 32, Target = new Target(TargetMetric.TrainLoss, 0.8), MaxSteps = 400, Seed = 3, EvalExamples = 256, LogEvery = 0,
        };
        TrialRunner.RunToDirectory(config, trialDir);
        double[] levels = [1.8, 1.2, 0.9];
        var (trial, checkpoints, _) = TrajectoryCheckpoints.FromTrial(trialDir, levels);
        Assert.Equal(config.Optimizer["momentum"], trial.Optimizer["momentum"]);

        // Oracle: scan curve.csv's evaluated rows for the first one below each level.
        var evaluated = CurveFile.Read(Path.Combine(trialDir, CurveFile.FileName)).Where(p => p.TrainLoss is not null).ToList();
        Assert.Equal(new Checkpoint(0), checkpoints[0]);
        // Levels first crossed at the same evaluated step share one checkpoint, named by the highest of them.
        var expected = levels.OrderByDescending(l => l)
            .Select(l => (Level: l, Step: evaluated.First(p => p.TrainLoss < l).Step))
            .GroupBy(x => x.Step).Select(g => (Step: g.Key, Label: FormattableString.Invariant($"loss-{g.First().Level:R}")));
        Assert.Equal(expected.Select(e => (e.Step, e.Label)).Prepend((0L, "init")), checkpoints.Select(c => (c.Steps, c.Label)));
        Assert.True(checkpoints.Count >= 2);

        // Measured along the trial: the replayed model at each checkpoint has the trial's evaluated loss there (the
        // curvature sample = the trial's evaluation subset: the first 256 training images).
        string outDir = Path.Combine(root, "curvature");
        int code = NqmApp.RunAsync(["curvature", "--trial", trialDir, "--loss-levels", "1.8,1.2,0.9", "--examples", "256", "--chunk-size", "64",
            "--top-k", "2", "--lanczos-steps", "6", "--hutchinson-probes", "2", "--slq-probes", "1", "--slq-steps", "5", "--small-batch", "8",
            "--no-plots", "--out", outDir, "--quiet"]).Result;
        Assert.Equal(ExitCodes.Ok, code);
        foreach (var c in checkpoints)
        {
            using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, c.Label, "summary.json")));
            double measured = summary.RootElement.GetProperty("initial_loss").GetDouble();
            double recorded = evaluated.First(p => p.Step == c.Steps).TrainLoss!.Value;
            Assert.True(Math.Abs(measured - recorded) < 1e-4 * recorded, $"{c.Label}: loss {measured} at the replayed checkpoint, {recorded} in the trial");
        }
        Directory.Delete(root, true);
    }
}
