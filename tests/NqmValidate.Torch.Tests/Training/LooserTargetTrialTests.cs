using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// A trial with looser targets on real Fashion-MNIST: each looser crossing is the step a trial run to that target alone
/// reports (the independent oracle), and recording them disturbs neither the training (the mini-batch losses at every
/// shared step are bit-identical) nor the trial's own steps-to-target. Exactly so even where the evaluated loss is not
/// monotone around a crossing (early, noisy steps at B = 64 here), where a search over another evaluation schedule
/// would bracket another dip below the threshold: each target keeps the schedule it has alone. EMA is included because its evaluation weights
/// differ from its training weights, and momentum and Adam because they carry optimizer state across the searches.
/// </summary>
public class LooserTargetTrialTests(TrialData data) : IClassFixture<TrialData>
{
    static readonly TrialConfig SmallMlp = new()
    {
        Model = new ModelSpec("mlp", HiddenWidths: [64]),
        BatchSize = 64,
        Target = new Target(TargetMetric.TrainLoss, 0.7),
        MaxSteps = 3000,
        Seed = 4,
        EvalExamples = 2000,
    };

    [Theory]
    [InlineData("sgd", 0.1)]
    [InlineData("momentum", 0.02)]
    [InlineData("adam", 0.002)]
    [InlineData("ema", 0.1)]
    public void EachLooserCrossingIsWhereATrialToThatTargetAloneStopsAndTheTrialItselfIsUnchanged(string optimizer, double learningRate)
    {
        var config = SmallMlp with { Optimizer = new OptimizerSpec(optimizer, learningRate) };
        double[] looser = [1.2, 0.9];
        var alone = TrialRunner.Run(config, data.RealSmall);
        var with = TrialRunner.Run(config with { LooserTargets = [0.9, 1.2] }, data.RealSmall);

        Assert.Equal(TrialStatus.Reached, alone.Record.Status);
        Assert.Equal(alone.Record.StepsToTarget, with.Record.StepsToTarget);
        Assert.Equal(alone.Record.StepsRun, with.Record.StepsRun);
        Assert.Equal(alone.Record.FinalLoss, with.Record.FinalLoss);
        // Training is untouched by the searches that restored older copies into the model mid-trial.
        var aloneLosses = alone.Curve.Where(p => p.MinibatchLoss is not null).ToDictionary(p => p.Step, p => p.MinibatchLoss);
        int shared = 0;
        foreach (var p in with.Curve.Where(p => p.MinibatchLoss is not null && aloneLosses.ContainsKey(p.Step)))
        {
            Assert.Equal(aloneLosses[p.Step], p.MinibatchLoss);
            shared++;
        }
        Assert.True(shared > 20, $"only {shared} shared curve rows");

        var crossings = with.Record.LooserTargets!;
        Assert.Equal(looser, crossings.Select(c => c.Threshold)); // loosest first
        long previous = 0;
        var evaluated = with.Curve.Where(p => p.TrainLoss is not null).ToDictionary(p => p.Step, p => p.TrainLoss!.Value);
        foreach (var crossing in crossings)
        {
            // A bracket on the trial's own evaluations: met at the crossing, not met at the lower bound.
            Assert.True(evaluated[crossing.StepsToTarget!.Value] < crossing.Threshold);
            Assert.True(evaluated[crossing.StepsLowerBound!.Value] >= crossing.Threshold);
            var oracle = TrialRunner.Run(config with { Target = new Target(TargetMetric.TrainLoss, crossing.Threshold) }, data.RealSmall).Record;
            Assert.Equal(TrialStatus.Reached, oracle.Status);
            Assert.Equal(oracle.StepsToTarget, crossing.StepsToTarget);
            Assert.Equal(oracle.StepsLowerBound, crossing.StepsLowerBound);
            Assert.True(crossing.StepsToTarget >= previous && crossing.StepsToTarget <= with.Record.StepsToTarget);
            previous = crossing.StepsToTarget!.Value;
        }
    }

    [Fact]
    public void ALooserTargetNotMetBeforeTheCapIsRecordedAsNotMetAndOneMetBeforeItIsFoundUnderAnyCap()
    {
        var config = SmallMlp with { Optimizer = new OptimizerSpec("sgd", 0.1), LooserTargets = [1.2] };
        var free = TrialRunner.Run(config, data.RealSmall).Record;
        long crossing = free.LooserTargets![0].StepsToTarget!.Value;
        var capped = TrialRunner.Run(config with { MaxSteps = crossing + 1 }, data.RealSmall).Record;
        Assert.Equal(crossing, capped.LooserTargets![0].StepsToTarget);
        var early = TrialRunner.Run(config with { MaxSteps = Math.Max(1, crossing / 2) }, data.RealSmall).Record;
        Assert.Null(early.LooserTargets![0].StepsToTarget);
        Assert.Equal(TrialStatus.BudgetExhausted, early.Status);
    }

    [Fact]
    public void LooserTargetsMustLieAboveTheTargetAndBeDistinct()
    {
        Assert.Contains("above the target", Assert.Throws<TrialConfigException>(() => (SmallMlp with { LooserTargets = [0.5] }).Resolve()).Message);
        Assert.Contains("distinct", Assert.Throws<TrialConfigException>(() => (SmallMlp with { LooserTargets = [0.9, 0.9] }).Resolve()).Message);
        Assert.Equal([1.2, 0.9], (SmallMlp with { LooserTargets = [0.9, 1.2] }).Resolve().LooserTargets!);
    }
}
