using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// The first-crossing bias check (`nqm replicates`): a study's steps-to-target is the first evaluated crossing of one
/// noisy run, the NQM predicts the crossing of the expected loss. On curves with a known expected loss the replicates'
/// mean curve must find the true crossing, and single runs must cross early when noise dominates the slope.
/// </summary>
public class FirstCrossingTests
{
    [Fact]
    public void CrossingsMedianAndMeanCurveByHand()
    {
        long[] steps = [10, 20, 30, 40];
        var curves = new ReplicateCurves("sgd", 16, 0.1, 30, steps, [1, 2, 3], [30, 40, null],
        [
            [1.0, 0.5, 0.3, 0.2], // crosses 0.4 at 30
            [1.0, 0.8, 0.6, 0.35], // at 40
            [1.0, 0.9, 0.9, 0.9], // never
        ]);
        var row = FirstCrossing.Measure(curves, 0.4);
        Assert.Equal((30L, 2, 30L, 40.0, 40L, 40.0), (row.OwnSeedMeasured!.Value, row.ReplicatesReached, row.MeasuredMin!.Value,
            row.MeasuredMedian!.Value, row.MeasuredMax!.Value, row.GridCrossingMedian!.Value));
        Assert.Null(row.MeanCurveCrossing); // mean 1.0, 0.733, 0.6, 0.483
        Assert.Null(row.Ratio);
        Assert.False(row.FirstStepCrossed);

        // At 0.61: grid crossings 20, 30, never (median 30); the mean curve reaches 0.6 at 30; measured median 40 (as given).
        var row2 = FirstCrossing.Measure(curves with { MeasuredSteps = [20, 40, 40] }, 0.61);
        Assert.Equal((30.0, 30L, 40.0), (row2.GridCrossingMedian!.Value, row2.MeanCurveCrossing!.Value, row2.MeasuredMedian!.Value));
        Assert.Equal((4.0 / 3, 1.0, 1.0), (row2.Ratio!.Value, row2.GridRatio!.Value, row2.RecordedRatio!.Value)); // recorded 30

        // A replicate that never crossed is ranked after every crossing; when it is the median, there is none.
        Assert.Null(FirstCrossing.Median([null, null, 5]));
        Assert.Equal(8.0, FirstCrossing.Median([5, 10, null, 6])); // 5, 6, 10, never
        Assert.True(FirstCrossing.Measure(curves with { Losses = [[0.3, 0.3, 0.3, 0.3]], Seeds = [1], MeasuredSteps = [10] }, 0.4).FirstStepCrossed);
        Assert.Throws<ArgumentException>(() => FirstCrossing.Measure(curves with { Seeds = [1] }, 0.4));
    }

    [Fact]
    public void TheMeanCurveFindsTheExpectedLossCrossingWhileSingleNoisyRunsCrossEarly()
    {
        // Expected loss 0.3 + 30/t (target 0.35: crossed at t = 600) on the trials' 5% grid; each evaluation adds
        // independent noise of sd 0.02, large against the change of the loss between grid points near the crossing.
        const double floor = 0.3, scale = 30, target = 0.35, sd = 0.02;
        var steps = new List<long>();
        for (long g = 1; g <= 3000; g += Math.Max(1, g / 20)) if (g >= 100) steps.Add(g);
        long truth = steps.First(s => floor + scale / s <= target);
        var random = new Random(7);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        IReadOnlyList<double> Replicate() => steps.Select(s => floor + scale / s + sd * Gaussian()).ToArray();
        var replicates = Enumerable.Range(0, 256).Select(_ => Replicate()).ToList();
        var grid = replicates.Select(r => FirstCrossing.Of(steps, r, target)).ToList(); // measured here = the first grid crossing
        var row = FirstCrossing.Measure(new ReplicateCurves("sgd", 16, 0.1, null, steps, Enumerable.Range(0, 256).Select(i => (long)i).ToList(), grid, replicates), target);

        // The mean of 256 has noise sd 0.00125: its crossing is within 10% of the truth (600).
        Assert.InRange(row.MeanCurveCrossing!.Value, 0.9 * truth, 1.1 * truth);
        // One run's first crossing comes when a dip of the noise reaches the target: the median is well earlier (0.72 of it here).
        Assert.Equal(row.Ratio, row.GridRatio);
        Assert.True(row.GridRatio < 0.8, $"median single-run crossing {row.GridCrossingMedian} against the mean curve's {row.MeanCurveCrossing} (truth {truth})");
        // Without noise every replicate is the expected loss: ratio exactly 1, at the truth.
        var quiet = FirstCrossing.Measure(new ReplicateCurves("sgd", 16, 0.1, null, steps, [0, 1], [truth, truth],
            [steps.Select(s => floor + scale / s).ToArray(), steps.Select(s => floor + scale / s).ToArray()]), target);
        Assert.Equal((truth, 1.0, 1.0), (quiet.MeanCurveCrossing!.Value, quiet.Ratio!.Value, quiet.GridRatio!.Value));
    }
}
