using System.Text.Json;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// The piecewise-constant learning-rate schedule (the NQM's optimal shape: η·f_i over pieces of fixed length): the rate
/// at every step, its validation, its trial.json form, and — its fixed piece length being what a sweep needs — a
/// steps-to-target that does not depend on the trial's cap.
/// </summary>
public class PiecewiseScheduleTests(TrialData data) : IClassFixture<TrialData>
{
    static OptimizerSpec Piecewise(long pieceSteps, params double[] factors) =>
        new OptimizerSpec("sgd", 0.2) { Schedule = "piecewise", PieceSteps = pieceSteps, Factors = [.. factors] };

    [Fact]
    public void EachPieceRunsItsFactorOfTheLearningRateAndTheLastOneHolds()
    {
        var spec = OptimizerFamilies.Resolve(Piecewise(3, 1, 0.5, 0.25), 1000);
        double[] expected = [0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05];
        Assert.Equal(expected, Enumerable.Range(1, expected.Length).Select(t => OptimizerFamilies.LearningRateAt(spec, t)));
    }

    [Theory]
    [InlineData(0L, new[] { 1.0 }, "piece_steps >= 1")]
    [InlineData(5L, new double[0], "positive finite multipliers")]
    [InlineData(5L, new[] { 1.0, -0.5 }, "positive finite multipliers")]
    public void ABadPiecewiseScheduleIsRefused(long pieceSteps, double[] factors, string message)
    {
        var e = Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(Piecewise(pieceSteps, factors), 1000));
        Assert.Contains(message, e.Message);
        Assert.Contains("piecewise schedule only",
            Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("sgd", 0.1) { PieceSteps = 5 }, 1000)).Message);
    }

    [Fact]
    public void ItsKeysRoundTripThroughTrialJsonAndOtherSchedulesWriteNone()
    {
        var spec = Piecewise(25, 1, 0.3, 0.09);
        string json = JsonSerializer.Serialize(spec, TrialJson.Options);
        Assert.Contains("\"piece_steps\":25", json.Replace(" ", ""));
        Assert.Equal(spec, JsonSerializer.Deserialize<OptimizerSpec>(json, TrialJson.Options));
        Assert.NotEqual(spec, spec with { Factors = [1, 0.3, 0.1] });
        string constant = JsonSerializer.Serialize(new OptimizerSpec("sgd", 0.1), TrialJson.Options);
        Assert.DoesNotContain("piece_steps", constant);
        Assert.DoesNotContain("factors", constant);
    }

    [Fact]
    public void StepsToTargetDoNotDependOnTheCap()
    {
        // A decaying shape whose second piece starts before the crossing, so that the schedule shapes the trial.
        var config = new TrialConfig
        {
            Model = new ModelSpec("mlp", HiddenWidths: [64]),
            Optimizer = Piecewise(15, 1, 0.5, 0.25),
            BatchSize = 64,
            Target = new Target(TargetMetric.TrainLoss, 0.7),
            MaxSteps = 3000,
            Seed = 4,
            EvalExamples = 2000,
        };
        var free = TrialRunner.Run(config, data.RealSmall).Record;
        Assert.Equal(TrialStatus.Reached, free.Status);
        long reached = free.StepsToTarget!.Value;
        Assert.True(reached > 15, $"reached at {reached}: inside the first piece, the schedule never acted");
        foreach (long cap in new[] { reached, 2 * reached })
        {
            var capped = TrialRunner.Run(config with { MaxSteps = cap }, data.RealSmall).Record;
            Assert.True(capped.Status == TrialStatus.Reached && capped.StepsToTarget == reached,
                $"cap {cap}: {capped.Status} at {capped.StepsToTarget}, uncapped {reached}");
        }
        // And it is not the constant schedule: the same trial at a constant η reaches elsewhere.
        var constant = TrialRunner.Run(config with { Optimizer = new OptimizerSpec("sgd", 0.2) }, data.RealSmall).Record;
        Assert.NotEqual(reached, constant.StepsToTarget);
    }
}
