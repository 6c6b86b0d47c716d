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

    static readonly double[] Octaves = [16, 32, 64, 128, 256, 512, 1024, 2048];
    static ScalingFitResult FitOf(Func<double, double> steps) => ScalingFitResult.Fit(Curve(steps, Octaves))!;

    [Fact]
    public void CriticalBatchSizeComparisonUsesTheRatioAndTheFitQuality()
    {
        var small = ScalingFitResult.From(1000, 100, 0.99, 0.05, 5, 16, 2048);
        var large = ScalingFitResult.From(500, 400, 0.99, 0.05, 5, 16, 2048);
        var poor = ScalingFitResult.From(500, 400, 0.99, 0.3, 5, 16, 2048);
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", large, small).Outcome);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", small, large).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", small, small).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", poor, small).Outcome);
    }

    [Fact]
    public void GuardAcceptsAKneeWithSeedNoiseAndRejectsAKneelessPowerLawThatRSquaredPasses()
    {
        // The model's own shape with ±10% deterministic "seed noise": accepted, B_noise near the true 200.
        double[] noise = [0.1, -0.08, 0.05, -0.1, 0.07, -0.04, 0.09, -0.06];
        var good = FitOf(b => 100 * (1 + 200 / b) * Math.Exp(noise[Array.IndexOf(Octaves, b)]));
        Assert.Equal(ScalingFitResult.InRange, good.Status);
        Assert.InRange(good.CriticalBatchSize!.Value, 130, 300);
        // A power law B^-0.7 has no knee at all; the S(B) fit still reaches R² > 0.95 (the old guard, R² < 0.9, stays silent)
        // but its residuals are as large as the verdicts' resolution: rejected.
        var kneeless = FitOf(b => Math.Pow(b, -0.7));
        Assert.True(kneeless.RSquaredLog > 0.95, $"R² {kneeless.RSquaredLog}");
        Assert.Equal(ScalingFitResult.PoorFit, kneeless.Status);
        Assert.Null(kneeless.CriticalBatchSize);
    }

    [Fact]
    public void PerfectScalingThroughoutIsLabelledNoPlateauNotASearchBound()
    {
        var linear = FitOf(b => 1e6 / b);
        Assert.Equal(1.0, linear.RSquaredLog, 6);              // a "perfect" fit by R²
        Assert.True(linear.BNoise > 1e6, $"{linear.BNoise}");   // whose B_noise is the search's bound
        Assert.Equal(ScalingFitResult.NoPlateau, linear.Status);
        Assert.Null(linear.CriticalBatchSize);
        Assert.StartsWith("> 2048 (no plateau in the measured range)", linear.Label);
        var flat = FitOf(b => 100 * (1 + 2 / b));
        Assert.Equal(ScalingFitResult.NoPerfectScaling, flat.Status);
        // A bound still decides when it is far enough: momentum with no plateau below 2048 vs SGD's 163.
        var sgd = FitOf(b => 224 * (1 + 163 / b));
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", linear, sgd).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", linear, linear).Outcome);
    }

    [Fact]
    public void NqmAgainstBaselineNeedsAClearMargin()
    {
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.NqmBeatsBaseline("sgd", "leave-one-out", 0.2, 0.5, 5).Outcome);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.NqmBeatsBaseline("sgd", "leave-one-out", 0.6, 0.3, 5).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.NqmBeatsBaseline("sgd", "leave-one-out", 0.3, 0.35, 5).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.NqmBeatsBaseline("sgd", "leave-one-out", 0.1, 0.9, 2).Outcome);
    }

    static IEnumerable<(double, double?)> Rates(Func<double, double> eta, params double[] batchSizes) => batchSizes.Select(b => (b, (double?)eta(b)));

    [Fact]
    public void ALearningRateLinearInBThatSaturatesAtTheCriticalBatchSizeHolds()
    {
        // η = 0.01 B up to B = 256, then constant: slope 1 below, 0 above.
        var v = VerdictRules.LearningRateGrowsThenFlattens("sgd", Rates(b => 0.01 * Math.Min(b, 256), Bs), 256);
        Assert.Equal(VerdictOutcome.Holds, v.Outcome);
        Assert.Contains("+1.00", v.Evidence);
        Assert.Contains("+0.00", v.Evidence);
    }

    [Fact]
    public void ALearningRateThatKeepsGrowingOrNeverGrowsFails()
    {
        // Linear everywhere: no flattening.
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.LearningRateGrowsThenFlattens("sgd", Rates(b => 0.001 * b, Bs), 256).Outcome);
        // Constant everywhere: no growth below the critical batch size.
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.LearningRateGrowsThenFlattens("momentum", Rates(_ => 0.3, Bs), 256).Outcome);
    }

    [Fact]
    public void SquareRootGrowthTooFewPointsOrNoCriticalBatchSizeIsInconclusive()
    {
        // B^0.4 below, flat above: growth between "none" (< 0.25) and "about linear" (≥ 0.5).
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LearningRateGrowsThenFlattens("sgd", Rates(b => Math.Pow(Math.Min(b, 256), 0.4), Bs), 256).Outcome);
        // Only B = 256 at or above the critical batch size: no slope above.
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LearningRateGrowsThenFlattens("sgd", Rates(b => 0.01 * b, 16, 64, 256), 256).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.LearningRateGrowsThenFlattens("sgd", Rates(b => 0.01 * b, Bs), null).Outcome);
        // A batch size whose study never reached the target carries no learning rate and is left out.
        var missing = Rates(b => 0.01 * Math.Min(b, 256), Bs).Select(p => p.Item1 == 1024 ? (p.Item1, (double?)null) : p);
        Assert.Contains("(2 points)", VerdictRules.LearningRateGrowsThenFlattens("sgd", missing, 256).Evidence);
    }
}
