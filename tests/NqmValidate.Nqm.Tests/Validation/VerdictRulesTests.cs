using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

public class VerdictRulesTests
{
    static ScalingPoints Curve(Func<double, double> steps, params double[] batchSizes) =>
        ScalingPoints.From(batchSizes.Select(b => (b, (double?)steps(b))));

    static readonly double[] Bs = [16, 64, 256, 1024, 4096];

    [Fact]
    public void PerfectScalingThenPlateauHolds()
    {
        // S = 1000 (1 + 256/B): slope ≈ -0.94 at small B, ≈ -0.06 at large B.
        var v = VerdictRules.PerfectScalingThenDiminishingReturns("sgd", Curve(b => 1000 * (1 + 256 / b), Bs));
        Assert.Equal(VerdictOutcome.Holds, v.Outcome);
    }

    [Fact]
    public void PerfectScalingEverywhereFails()
    {
        var v = VerdictRules.PerfectScalingThenDiminishingReturns("sgd", Curve(b => 1e6 / b, Bs));
        Assert.Equal(VerdictOutcome.Fails, v.Outcome);
    }

    [Fact]
    public void TwoPointsAreInconclusive()
    {
        var v = VerdictRules.PerfectScalingThenDiminishingReturns("sgd", Curve(b => 1e6 / b, 16, 64));
        Assert.Equal(VerdictOutcome.Inconclusive, v.Outcome);
    }

    [Fact]
    public void MomentumEqualToSgdBelowCriticalHolds_AndFarOffFails()
    {
        var sgd = Curve(b => 1000 * (1 + 256 / b), Bs);
        var same = Curve(b => 1.1 * 1000 * (1 + 256 / b), Bs);
        var far = Curve(b => 2.0 * 1000 * (1 + 256 / b), Bs);
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.MomentumMatchesSgdBelowCritical(sgd, same, 256).Outcome);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.MomentumMatchesSgdBelowCritical(sgd, far, 256).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.MomentumMatchesSgdBelowCritical(sgd, same, null).Outcome);
    }

    [Fact]
    public void CriticalBatchSizeComparisonUsesTheRatioAndTheFitQuality()
    {
        var small = new ScalingFitResult(1000, 100, 0.99, 5);
        var large = new ScalingFitResult(500, 400, 0.99, 5);
        var poor = new ScalingFitResult(500, 400, 0.5, 5);
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", large, small).Outcome);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", small, large).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", small, small).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", poor, small).Outcome);
    }

    [Fact]
    public void NqmAgainstBaselineNeedsAClearMargin()
    {
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.NqmBeatsBaseline(0.2, 0.5, 5).Outcome);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.NqmBeatsBaseline(0.6, 0.3, 5).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.NqmBeatsBaseline(0.3, 0.35, 5).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.NqmBeatsBaseline(0.1, 0.9, 2).Outcome);
    }
}
