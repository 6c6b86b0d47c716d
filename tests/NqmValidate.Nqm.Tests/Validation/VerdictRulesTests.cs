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

    // --- (f)–(k), issue #13 ---

    /// <summary>A learning-rate × momentum grid: α from 1e-3 to 16 in octaves, β ∈ {0, 0.5, 0.75, 0.875, 0.9375}; steps from <paramref name="steps"/>(α, β).</summary>
    static MomentumTrialPoint[] Grid(Func<double, double, double?> steps) =>
        (from i in Enumerable.Range(0, 15) from beta in new[] { 0, 0.5, 0.75, 0.875, 0.9375 }
         let alpha = 1e-3 * Math.Pow(2, i) select new MomentumTrialPoint(alpha, beta, steps(alpha, beta))).ToArray();

    [Fact]
    public void MatchedPairsAreSameEffectiveRateAndDifferentMomentumNearTheOptimum()
    {
        // Fewest steps 50, so trials with at most 100 steps are near the optimum: (0.1, 0) and (0.2, 0.5).
        // (0.1, 0)'s partners at η_eff = 0.1 with 1−β at least two-fold apart: (0.05, 0.5) at 400 steps (|log2| 2) and the
        // diverged (0.025, 0.75) (+∞). Not partners: (0.1, 0.1) (1−β 0.9, within ×2 of 1), and (0.0125, 0.875), pruned after
        // 120 steps (only ×1.2 its 100: not known to be clearly slower). (0.2, 0.5) has η_eff 0.4: no partner.
        var trials = new[] { new MomentumTrialPoint(0.1, 0, 100), new MomentumTrialPoint(0.05, 0.5, 400), new MomentumTrialPoint(0.1, 0.1, 120),
                             new MomentumTrialPoint(0.2, 0.5, 50), new MomentumTrialPoint(0.025, 0.75, null, double.PositiveInfinity),
                             new MomentumTrialPoint(0.0125, 0.875, null, 120) };
        var (reached, near, values, pairs, median) = VerdictRules.SameEffectiveRateSpread(trials);
        Assert.Equal((4, 2, 3, 2), (reached, near, values, pairs));
        Assert.Equal(double.PositiveInfinity, median);
        // Without the diverged partner: the one pair's |log2(400/100)|.
        Assert.Equal(2.0, VerdictRules.SameEffectiveRateSpread(trials.Where(t => t.StepsAtLeast is not double.PositiveInfinity)).MedianAbsLog2!.Value, 6);
    }

    [Fact]
    public void StepsThatFollowTheEffectiveRateAtSmallBatchSizesOnlyHold()
    {
        // Small B: S depends on η = α/(1−β) alone (a U-shape around η = 0.1). Large B: the same U-shape slowed by
        // (1−β)^−0.7, so at one η_eff a twice-smaller 1−β takes ×1.6 the steps: β matters.
        static double U(double eta) => 40 * (0.1 / eta + eta / 0.1);
        var small = Grid((a, b) => 100 * U(a / (1 - b)));
        var large = Grid((a, b) => U(a / (1 - b)) * Math.Pow(1 - b, -0.7));
        var v = VerdictRules.EffectiveLearningRateAlone(16, small, 4096, large);
        Assert.Equal(VerdictOutcome.Holds, v.Outcome);
        Assert.Contains("B=16: 75 reached at 5 momentum value(s)", v.Evidence);
        Assert.Contains("matched pair(s), median |log2| 0.00; B=4096", v.Evidence);
        Assert.Contains("median |log2| 0.00", v.Evidence);
        // η_eff alone at both batch sizes: the second half of the claim fails.
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.EffectiveLearningRateAlone(16, small, 4096, small).Outcome);
        // β matters at the small batch size too: fails.
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.EffectiveLearningRateAlone(16, large.Select(t => t with { Steps = 100 * t.Steps }), 4096, large).Outcome);
    }

    [Fact]
    public void OneMomentumValueOrTooFewReachedTrialsIsInconclusive()
    {
        var fixedBeta = Grid((a, b) => b == 0.5 ? 100 / a : null);
        var v = VerdictRules.EffectiveLearningRateAlone(16, fixedBeta, 4096, fixedBeta);
        Assert.Equal(VerdictOutcome.Inconclusive, v.Outcome);
        Assert.Contains("at 1 momentum value(s), 2 near the optimum, 0 matched pair(s)", v.Evidence);
    }

    [Fact]
    public void TheNqmItselfMakesEffectiveRateInterchangeableOnlyAtSmallBatchSizes()
    {
        // The claim as the model states it: the paper's spectrum (h = 1/i, c = h), heavy ball at every (α, β) of the grid,
        // at a batch size deep in the noise-dominated regime and at one far past its critical batch size.
        var spectrum = Spectrum.PaperPowerLaw();
        double target = 0.01 * 0.5 * spectrum.Rows.Sum(r => r.Count * r.H * r.S0);
        MomentumTrialPoint[] At(double b) => Grid((a, beta) => global::NqmValidate.Nqm.Nqm.StepsToTarget(spectrum, new Momentum(a, beta, Preconditioner.None), b, target, 10_000_000))
            .Select(t => t.Steps is null ? t with { StepsAtLeast = double.PositiveInfinity } : t).ToArray();
        var v = VerdictRules.EffectiveLearningRateAlone(4, At(4), 1 << 20, At(1 << 20));
        Assert.True(v.Outcome == VerdictOutcome.Holds, v.Evidence);
        // At B = 2^20 the fastest run is at a large α/(1−β) that only its high β runs stably: its partners diverge.
        Assert.EndsWith("median |log2| ∞ (partners diverged)", v.Evidence);
    }

    [Fact]
    public void KfacAgainstAdamIsTheCriticalBatchSizeRule()
    {
        var adam = ScalingFitResult.From(1000, 100, 0.99, 0.05, 5, 16, 2048);
        var kfac = ScalingFitResult.From(500, 400, 0.99, 0.05, 5, 16, 2048);
        var v = VerdictRules.KfacLargerCriticalBatchSizeThanAdam(kfac, adam);
        Assert.Equal(("g", VerdictOutcome.Holds), (v.Id, v.Outcome));
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.KfacLargerCriticalBatchSizeThanAdam(adam, kfac).Outcome);
        var notMeasured = VerdictRules.NotMeasured(VerdictRules.KfacLargerCriticalBatchSizeThanAdam(null, adam), "the study has no kfac optimizer");
        Assert.Equal((VerdictOutcome.Inconclusive, "not measured: the study has no kfac optimizer"), (notMeasured.Outcome, notMeasured.Evidence));
        Assert.Equal(v.Rule, notMeasured.Rule);
    }

    [Fact]
    public void EmaThatHalvesStepsAtSmallBatchSizesOnlyHolds()
    {
        var sgd = Curve(b => 1000 * (1 + 256 / b), Bs);
        // EMA removes the noise part (half the steps at B = 16), not the curvature part (same steps at B = 4096).
        var ema = Curve(b => 1000 * (1 + 256 / b) * (b <= 16 ? 0.5 : b >= 4096 ? 1.05 : 0.8), Bs);
        var v = VerdictRules.EmaHelpsAtSmallBatchSizes(sgd, ema);
        Assert.Equal(VerdictOutcome.Holds, v.Outcome);
        Assert.Contains("-1.00 at B=16, +0.07 at B=4096", v.Evidence);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.EmaHelpsAtSmallBatchSizes(sgd, sgd).Outcome);                       // no cut at all
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.EmaHelpsAtSmallBatchSizes(sgd, Curve(b => 400 * (1 + 256 / b), Bs)).Outcome); // still ×2.5 at B = 4096
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.EmaHelpsAtSmallBatchSizes(sgd, Curve(b => 500 * (1 + 256 / b), 16)).Outcome);
    }

    [Fact]
    public void ATighterTargetWithALargerKneeHolds_ASmallerOneFails_OneTargetIsNotMeasured()
    {
        var loose = Curve(b => 1000 * (1 + 100 / b), Octaves);
        var tight = Curve(b => 3000 * (1 + 400 / b), Octaves);
        var v = VerdictRules.TighterTargetRaisesCriticalBatchSize("sgd", [(0.5, loose), (0.35, tight)]);
        Assert.Equal(VerdictOutcome.Holds, v.Outcome);
        Assert.StartsWith("target 0.5: B_noise 100, target 0.35: B_noise 400", v.Evidence);
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.TighterTargetRaisesCriticalBatchSize("sgd", [(0.35, loose), (0.5, tight)]).Outcome);
        // Three targets whose middle one dips: the ends say "holds", the neighbours do not agree: inconclusive.
        var dip = Curve(b => 2000 * (1 + 40 / b), Octaves);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.TighterTargetRaisesCriticalBatchSize("sgd", [(0.5, loose), (0.4, dip), (0.35, tight)]).Outcome);
        var one = VerdictRules.TighterTargetRaisesCriticalBatchSize(null, [(0.35, tight)]);
        Assert.Equal(VerdictOutcome.Inconclusive, one.Outcome);
        Assert.StartsWith("not measured: the study has one target (train loss 0.35)", one.Evidence);
        Assert.Equal("(i) a tighter target raises the critical batch size", one.Claim);
    }

    static MeasuredDrift Drift(string checkpoint, long step, double lambdaMax, double traceGgn, double traceSigma, double? overlapPrevious, double bSimple = 50) =>
        new("sgd-b16-r0", "sgd", 16, checkpoint, step, 1.0, lambdaMax, traceGgn, traceSigma, traceSigma / bSimple, bSimple, overlapPrevious, overlapPrevious, 10);

    [Fact]
    public void SpectraThatMoveEarlyAndSettleLaterHold_OnesThatKeepMovingFail()
    {
        // λ_max triples early and moves 10% late; the top eigenspace turns early (overlap 0.1) and stays later (0.6).
        // B_simple grows ten-fold at the end (|g| falls): not judged.
        var settling = new[] { Drift("init", 0, 1.5, 30, 31, null), Drift("loss-1", 1000, 4.5, 50, 60, 0.1), Drift("loss-0.35", 3000, 4.1, 47, 55, 0.6, bSimple: 500) };
        var v = VerdictRules.SpectraStabilise("sgd-b16-r0", settling.Reverse());
        Assert.Equal(VerdictOutcome.Holds, v.Outcome);
        Assert.StartsWith("init→loss-1: largest |log2| change 1.58, overlap 0.10; loss-1→loss-0.35: 0.13, overlap 0.60", v.Evidence);
        Assert.Equal("(k) sgd-b16-r0: the curvature and noise spectra stabilise after the initial phase", v.Claim);
        // λ_max keeps doubling: fails. The eigenspace turns more later: fails.
        var sharpening = new[] { Drift("init", 0, 1, 30, 31, null), Drift("loss-1", 1000, 2, 30, 31, 0.5), Drift("loss-0.35", 3000, 4, 30, 31, 0.6) };
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.SpectraStabilise("t", sharpening).Outcome);
        var turning = new[] { Drift("init", 0, 1, 30, 31, null), Drift("loss-1", 1000, 3, 30, 31, 0.8), Drift("loss-0.35", 3000, 3.1, 30, 31, 0.3) };
        Assert.Equal(VerdictOutcome.Fails, VerdictRules.SpectraStabilise("t", turning).Outcome);
        Assert.Equal(VerdictOutcome.Inconclusive, VerdictRules.SpectraStabilise("t", settling.Take(2)).Outcome);
    }

    [Fact]
    public void TheCommittedFullStudysTrajectoriesAreJudged()
    {
        // Real drift.csv: the committed fmnist-mlp study measured six trajectories at init, at loss levels and at the target.
        var drift = TrajectoryDrift.Read(Path.Combine(CommittedRuns.Run("fmnist-mlp"), "validation", "drift.csv"));
        var verdicts = drift.GroupBy(d => d.Trajectory).Select(g => VerdictRules.SpectraStabilise(g.Key, g)).ToList();
        Assert.Equal(6, verdicts.Count);
        // sgd-b2048-r0: largest |log2| change 1.78 early, 0.27 late (λ_max 1.64 → 5.62 → 3.71), overlap 0.04 then 0.66: holds.
        var b2048 = verdicts.Single(v => v.Claim.StartsWith("(k) sgd-b2048-r0:"));
        Assert.Equal(VerdictOutcome.Holds, b2048.Outcome);
        // sgd-b16-r0: 2.88 early but still 0.89 late (λ_max 1.51 → 11.1 → 3.30; tr Σ 31 → 71 → 48): not settled, inconclusive.
        var b16 = verdicts.Single(v => v.Claim.StartsWith("(k) sgd-b16-r0:"));
        Assert.Equal(VerdictOutcome.Inconclusive, b16.Outcome);
    }
}
