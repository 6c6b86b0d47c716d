using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

public class CalibrationTests
{
    // Measured = 3 × shape except at B = 64, where it is 6 × shape.
    static readonly CurvePoint[] Points =
        [new(16, 300, 100), new(32, 150, 50), new(64, 150, 25), new(128, 60, 20), new(256, 45, 15)];

    [Fact]
    public void OnePointSchemesCalibrateOnTheirEndAndDoNotScoreIt()
    {
        var small = Calibration.Apply("one-point-smallest", Points, hasZeroShot: true, fitPointBatchSize: null);
        Assert.Equal(Calibration.CalibrationPoint, small.Single(p => p.BatchSize == 16).Excluded);
        Assert.Equal(0, small.Single(p => p.BatchSize == 32).Log2!.Value, 12);
        Assert.Equal(-1, small.Single(p => p.BatchSize == 64).Log2!.Value, 12);
        var large = Calibration.Apply("one-point-largest", Points, hasZeroShot: true, fitPointBatchSize: null);
        Assert.Equal(Calibration.CalibrationPoint, large.Single(p => p.BatchSize == 256).Excluded);
        var summary = Calibration.Summarize(large);
        Assert.Equal(4, summary.Points);
        Assert.Equal(0, summary.MedianAbsLog2!.Value, 12);
    }

    [Fact]
    public void LeaveOneOutNeverUsesThePointItPredicts()
    {
        var loo = Calibration.Apply("leave-one-out", Points, hasZeroShot: true, fitPointBatchSize: 256);
        // At B = 64 the other points all say τ = 3, so the outlier is predicted at 3 × 25, not pulled towards itself.
        Assert.Equal(75, loo.Single(p => p.BatchSize == 64).Predicted!.Value, 9);
        Assert.Equal(Calibration.FitPoint, loo.Single(p => p.BatchSize == 256).Excluded);
        Assert.Equal(4, Calibration.Summarize(loo).Points);
    }

    [Fact]
    public void ZeroShotNeedsATimeUnitAndTheSlopeShowsATrend()
    {
        Assert.All(Calibration.Apply("zero-shot", Points, hasZeroShot: false, null), p => Assert.Null(p.Predicted));
        // Errors growing by +0.5 per doubling of B: slope 0.5 whatever the median says.
        var trending = new[] { 16.0, 32, 64, 128 }.Select((b, i) => new CurvePoint(b, 100, 100 * Math.Pow(2, 0.5 * i))).ToArray();
        var s = Calibration.Summarize(Calibration.Apply("zero-shot", trending, true, null));
        Assert.Equal(0.5, s.Slope!.Value, 9);
    }
}
