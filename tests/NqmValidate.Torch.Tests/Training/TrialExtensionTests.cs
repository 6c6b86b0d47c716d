using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Workloads;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>A finished trial run on past its recorded steps (the floor fit's longer curve).</summary>
public class TrialExtensionTests(TrialData data) : IClassFixture<TrialData>
{
    static readonly TrialConfig Config = new()
    {
        Model = new ModelSpec("mlp", HiddenWidths: [32]), Optimizer = new OptimizerSpec("sgd", 0.1), BatchSize = 64,
        Target = new Target(TargetMetric.TrainLoss, 0.9), MaxSteps = 2000, Seed = 11, EvalExamples = 500,
    };

    [Fact]
    public void TheRunPastTheTargetIsTheSameTrialWithALargerBudgetEvaluatedTheSameWay()
    {
        var reached = TrialRunner.Run(Config, data.RealSmall).Record;
        Assert.Equal(TrialStatus.Reached, reached.Status);
        long from = reached.StepsToTarget!.Value, to = 3 * from;
        var extension = TrialExtension.Run(reached.Config, new FashionMnistWorkload(data.RealSmall), from, to, points: 5);
        Assert.Equal(5, extension.Count);
        Assert.Equal(to, extension[^1].Step);
        Assert.True(extension.Zip(extension.Skip(1)).All(p => p.First.Step < p.Second.Step) && extension[0].Step > from);

        // Oracle: the same trial launched with a budget of `to` steps and a target it cannot meet evaluates its last
        // step; that value must be the extension's, bit for bit (same seeds, same thread count, same evaluation).
        var longer = TrialRunner.Run(Config with { MaxSteps = to, Target = new Target(TargetMetric.TrainLoss, 1e-6) }, data.RealSmall);
        Assert.Equal(TrialStatus.BudgetExhausted, longer.Record.Status);
        Assert.Equal(longer.Curve.Single(p => p.Step == to).TrainLoss, extension[^1].TrainLoss);
        Assert.True(extension[^1].TrainLoss < 0.9, "trained on past the target, the loss stays below it");
    }

    [Fact]
    public void AScheduleThatDecaysOverMaxStepsCannotBeRunOnAndSaysWhy()
    {
        var linear = (Config with { Optimizer = new OptimizerSpec("sgd", 0.1) { Schedule = "linear" } }).Resolve();
        var e = Assert.Throws<TrialConfigException>(() => TrialExtension.Run(linear, new FashionMnistWorkload(data.RealSmall), 100, 200, 3));
        Assert.Contains("constant learning-rate schedule", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => TrialExtension.Run(Config.Resolve(), new FashionMnistWorkload(data.RealSmall), 100, 100, 3));
    }
    [Fact]
    public void LossesOnTheEvaluationGridGiveBackTheTrialsOwnStepsToTargetAndADivergedRunNeverReaches()
    {
        var reached = TrialRunner.Run(Config, data.RealSmall).Record;
        long t = reached.StepsToTarget!.Value;
        // The trial resolves its target on EvaluationSchedule's grid; evaluated at every grid point from t/4, the first
        // one at or below the target must be the trial's own steps-to-target.
        var grid = EvaluationSchedule.GridPoints(t / 4, 2 * t).ToList();
        var losses = TrialExtension.LossesAt(reached.Config, new FashionMnistWorkload(data.RealSmall), grid);
        Assert.Equal(t, grid[Array.FindIndex(losses, l => l <= Config.Target!.Threshold)]);
        Assert.True(losses[0] > Config.Target!.Threshold, $"the grid must start before the crossing: {losses[0]} at step {grid[0]}");

        var diverging = (Config with { Optimizer = new OptimizerSpec("sgd", 1e4) }).Resolve();
        var blownUp = TrialExtension.LossesAt(diverging, new FashionMnistWorkload(data.RealSmall), [5, 10, 20]);
        Assert.All(blownUp, l => Assert.Equal(double.PositiveInfinity, l));
        Assert.Throws<ArgumentException>(() => TrialExtension.LossesAt(diverging, new FashionMnistWorkload(data.RealSmall), [10, 5]));
    }
}
