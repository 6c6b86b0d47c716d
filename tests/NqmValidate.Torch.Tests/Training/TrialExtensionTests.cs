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
}
