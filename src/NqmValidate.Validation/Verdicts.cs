using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>How a claim fared.</summary>
public enum VerdictOutcome { Holds, Fails, Inconclusive }

/// <summary>One claim of the paper checked against a curve: the outcome, the numbers behind it and the rule used.</summary>
public sealed record Verdict(string Id, string Claim, VerdictOutcome Outcome, string Evidence, string Rule)
{
    public string OutcomeText => Outcome switch
    {
        VerdictOutcome.Holds => "holds",
        VerdictOutcome.Fails => "fails",
        _ => "inconclusive",
    };
}

/// <summary>A steps-vs-batch-size curve: points sorted by batch size (only batch sizes with a finite step count).</summary>
public sealed record ScalingPoints(IReadOnlyList<double> BatchSizes, IReadOnlyList<double> Steps)
{
    public static ScalingPoints From(IEnumerable<(double B, double? S)> points)
    {
        var kept = points.Where(p => p.S is > 0 && double.IsFinite(p.S.Value)).OrderBy(p => p.B).ToArray();
        return new ScalingPoints(kept.Select(p => p.B).ToArray(), kept.Select(p => p.S!.Value).ToArray());
    }

    public int Count => BatchSizes.Count;

    /// <summary>Slope of log S against log B between points i and i+1.</summary>
    public double LocalSlope(int i) => Math.Log(Steps[i + 1] / Steps[i]) / Math.Log(BatchSizes[i + 1] / BatchSizes[i]);

    public double? At(double batchSize)
    {
        for (int i = 0; i < Count; i++) if (BatchSizes[i] == batchSize) return Steps[i];
        return null;
    }
}

/// <summary>
/// The verdict rules of docs/design/validation-protocol.md §4 as pure functions. Thresholds are stated in each rule's
/// text so the report shows exactly how a verdict was reached. The same rules run on measured
/// curves and on predicted ones, so the report can say what the NQM predicts for each claim too.
/// </summary>
public static partial class VerdictRules
{
    /// <summary>A log2 ratio below this is "about equal" (a factor of 1.25: grid searches resolve steps to roughly this).</summary>
    public const double SameLog2 = 0.32;
    /// <summary>A ratio of critical batch sizes beyond this factor counts as larger / smaller.</summary>
    public const double LargerFactor = 1.25;

    /// <summary>(a) perfect scaling (slope ≈ −1 of log S vs log B) at small B, then diminishing returns (slope → 0).</summary>
    public static Verdict PerfectScalingThenDiminishingReturns(string optimizer, ScalingPoints curve)
    {
        const string rule = "slope of log S vs log B between the two smallest batch sizes ≤ −0.6 (near-perfect scaling) and between the two largest ≥ −0.4 (diminishing returns): holds; " +
                            "first slope > −0.4 or last slope < −0.6: fails; fewer than 3 batch sizes or in between: inconclusive";
        string claim = $"(a) {optimizer}: perfect scaling, then diminishing returns";
        if (curve.Count < 3) return new Verdict("a", claim, VerdictOutcome.Inconclusive, $"{curve.Count} batch sizes reached the target", rule);
        double first = curve.LocalSlope(0), last = curve.LocalSlope(curve.Count - 2);
        string evidence = $"slope {first:F2} at B {curve.BatchSizes[0]:G}→{curve.BatchSizes[1]:G}, {last:F2} at B {curve.BatchSizes[^2]:G}→{curve.BatchSizes[^1]:G}";
        var outcome = first <= -0.6 && last >= -0.4 ? VerdictOutcome.Holds
                    : first > -0.4 || last < -0.6 ? VerdictOutcome.Fails
                    : VerdictOutcome.Inconclusive;
        return new Verdict("a", claim, outcome, evidence, rule);
    }

    /// <summary>(b) momentum ≈ SGD at batch sizes below SGD's critical batch size.</summary>
    public static Verdict MomentumMatchesSgdBelowCritical(ScalingPoints sgd, ScalingPoints momentum, double? sgdCriticalBatchSize)
    {
        string rule = $"at batch sizes ≤ SGD's critical batch size (B_noise of its S(B) fit), median |log2(S_momentum/S_sgd)| ≤ {SameLog2} (within ×1.25): holds; > 0.58 (beyond ×1.5): fails; fewer than 2 shared batch sizes or in between: inconclusive";
        const string claim = "(b) momentum ≈ SGD below the critical batch size";
        if (sgdCriticalBatchSize is not double bcrit || !double.IsFinite(bcrit))
            return new Verdict("b", claim, VerdictOutcome.Inconclusive, "no critical batch size for SGD (fit missing or rejected by the guard)", rule);
        var ratios = sgd.BatchSizes.Where(b => b <= bcrit && momentum.At(b) is not null)
            .Select(b => (B: b, L: Math.Log2(momentum.At(b)!.Value / sgd.At(b)!.Value))).ToArray();
        if (ratios.Length < 2)
            return new Verdict("b", claim, VerdictOutcome.Inconclusive, $"{ratios.Length} shared batch size(s) ≤ B_crit = {Numbers.Figures3(bcrit)}", rule);
        double median = Stats.Median(ratios.Select(r => Math.Abs(r.L)));
        string evidence = $"B_crit(SGD) = {Numbers.Figures3(bcrit)}; log2 ratios " + string.Join(", ", ratios.Select(r => $"B={r.B:G}: {Numbers.Signed(r.L)}")) + $"; median |log2| = {median:F2}";
        var outcome = median <= SameLog2 ? VerdictOutcome.Holds : median > 0.58 ? VerdictOutcome.Fails : VerdictOutcome.Inconclusive;
        return new Verdict("b", claim, outcome, evidence, rule);
    }

    /// <summary>(c)/(d): optimizer <paramref name="better"/> reaches a larger critical batch size than <paramref name="baseline"/>.</summary>
    public static Verdict LargerCriticalBatchSize(string id, string better, string baseline, ScalingFitResult? betterFit, ScalingFitResult? baselineFit)
    {
        string rule = $"ratio of critical batch sizes B_noise({better})/B_noise({baseline}) ≥ {LargerFactor}: holds; ≤ {1 / LargerFactor:G3}: fails; in between, or a fit the guard rejects (knee outside the measured batch sizes, " +
                      $"RMS log2 residual > {ScalingFitResult.MaxRmsLog2Residual}): inconclusive — except that a curve with no plateau in the measured range has B_noise > its largest batch size, a bound the rule uses when it decides";
        string claim = $"({id}) {better} reaches a larger critical batch size than {baseline}";
        if (betterFit is null || baselineFit is null)
            return new Verdict(id, claim, VerdictOutcome.Inconclusive, "a fit is missing (fewer than 3 batch sizes reached the target)", rule);
        string evidence = $"B_noise {better} = {betterFit.Label} (R² {betterFit.RSquaredLog:F2}, RMS log2 residual {betterFit.RmsLog2Residual:F2}), {baseline} = {baselineFit.Label} (R² {baselineFit.RSquaredLog:F2}, RMS log2 residual {baselineFit.RmsLog2Residual:F2})";
        if (betterFit.Status == ScalingFitResult.InRange && baselineFit.Status == ScalingFitResult.InRange)
        {
            double ratio = betterFit.BNoise / baselineFit.BNoise;
            var outcome = ratio >= LargerFactor ? VerdictOutcome.Holds : ratio <= 1 / LargerFactor ? VerdictOutcome.Fails : VerdictOutcome.Inconclusive;
            return new Verdict(id, claim, outcome, evidence + $"; ratio {ratio:G3}", rule);
        }
        // Bounds: "no plateau" means B_noise > B_max of that curve (only a lower bound is known).
        if (betterFit.Status == ScalingFitResult.NoPlateau && baselineFit.Status == ScalingFitResult.InRange && betterFit.BMax / baselineFit.BNoise >= LargerFactor)
            return new Verdict(id, claim, VerdictOutcome.Holds, evidence + $"; ratio > {betterFit.BMax / baselineFit.BNoise:G3}", rule);
        if (baselineFit.Status == ScalingFitResult.NoPlateau && betterFit.Status == ScalingFitResult.InRange && betterFit.BNoise / baselineFit.BMax <= 1 / LargerFactor)
            return new Verdict(id, claim, VerdictOutcome.Fails, evidence + $"; ratio < {betterFit.BNoise / baselineFit.BMax:G3}", rule);
        return new Verdict(id, claim, VerdictOutcome.Inconclusive, evidence, rule);
    }

    /// <summary>Least-squares slope of log2(effective learning rate) on log2 B at or below the critical batch size that counts as "about linear" growth.</summary>
    public const double GrowingSlope = 0.5;

    /// <summary>
    /// (j) the best effective learning rate (α for SGD, α/(1−β) for heavy ball) grows about linearly with B below the
    /// critical batch size and flattens above it: least-squares slopes of log2 η_eff on log2 B over the batch sizes at or
    /// below B_crit and at or above it (B_crit from the same curve's S(B) fit; a grid-searched learning rate moves in
    /// steps of the grid, so only the slope over several batch sizes means anything).
    /// </summary>
    public static Verdict LearningRateGrowsThenFlattens(string optimizer, IEnumerable<(double B, double? EffectiveLearningRate)> points, double? criticalBatchSize)
    {
        string rule = $"slope of log2 η_eff vs log2 B at B ≤ B_crit ≥ {GrowingSlope} and at B ≥ B_crit at most half of it: holds; slope below B_crit < {GrowingSlope / 2} or " +
                      $"slope above ≥ slope below (no flattening): fails; fewer than 2 batch sizes on either side, no critical batch size, or in between: inconclusive";
        string claim = $"(j) {optimizer}: the best effective learning rate grows about linearly with B below the critical batch size and flattens above it";
        if (criticalBatchSize is not double bcrit || !double.IsFinite(bcrit))
            return new Verdict("j", claim, VerdictOutcome.Inconclusive, "no critical batch size (fit missing or rejected by the guard)", rule);
        var kept = points.Where(p => p.EffectiveLearningRate is > 0).Select(p => (p.B, Eta: p.EffectiveLearningRate!.Value)).OrderBy(p => p.B).ToArray();
        var below = kept.Where(p => p.B <= bcrit).ToArray();
        var above = kept.Where(p => p.B >= bcrit).ToArray();
        if (below.Length < 2 || above.Length < 2)
            return new Verdict("j", claim, VerdictOutcome.Inconclusive, $"B_crit = {Numbers.Figures3(bcrit)}: {below.Length} batch size(s) at or below, {above.Length} at or above", rule);
        static double SlopeOf((double B, double Eta)[] ps) => Stats.Slope(ps.Select(p => Math.Log2(p.B)).ToArray(), ps.Select(p => Math.Log2(p.Eta)).ToArray());
        double slopeBelow = SlopeOf(below), slopeAbove = SlopeOf(above);
        string evidence = $"B_crit = {Numbers.Figures3(bcrit)}; slope {Numbers.Signed(slopeBelow)} over B {below[0].B:G}–{below[^1].B:G} ({below.Length} points), " +
                          $"{Numbers.Signed(slopeAbove)} over B {above[0].B:G}–{above[^1].B:G} ({above.Length} points)";
        var outcome = slopeBelow >= GrowingSlope && slopeAbove <= slopeBelow / 2 ? VerdictOutcome.Holds
                    : slopeBelow < GrowingSlope / 2 || slopeAbove >= slopeBelow ? VerdictOutcome.Fails
                    : VerdictOutcome.Inconclusive;
        return new Verdict("j", claim, outcome, evidence, rule);
    }

    /// <summary>(e) the NQM (one-point calibrated) predicts the measured curve better than McCandlish's baseline with the same calibration.</summary>
    public static Verdict NqmBeatsBaseline(string optimizer, string scheme, double? nqmMedianAbsLog2, double? baselineMedianAbsLog2, int scoredPoints)
    {
        string rule = $"{optimizer} alone, both predictors calibrated the same way ({scheme}), over the same scored points (calibration and floor-fit points excluded): median |log2(predicted/measured)| of the NQM at least 0.1 below the per-optimizer McCandlish baseline's: holds; at least 0.1 above: fails; otherwise or fewer than 3 scored points: inconclusive";
        string claim = $"(e) {optimizer}: the NQM predicts the measured scaling better than the McCandlish baseline";
        if (nqmMedianAbsLog2 is not double nqm || baselineMedianAbsLog2 is not double baseline || scoredPoints < 3)
            return new Verdict("e", claim, VerdictOutcome.Inconclusive, $"{scoredPoints} scored points" + (scheme == "zero-shot" ? " (the baseline has no zero-shot form: S_min needs a measured point)" : ""), rule);
        string evidence = $"median |log2| NQM = {nqm:F2}, baseline = {baseline:F2} over {scoredPoints} points ({scheme})";
        var outcome = nqm <= baseline - 0.1 ? VerdictOutcome.Holds : nqm >= baseline + 0.1 ? VerdictOutcome.Fails : VerdictOutcome.Inconclusive;
        return new Verdict("e", claim, outcome, evidence, rule);
    }
}

/// <summary>
/// Result of fitting S(B) = S_min (1 + B_noise / B) to a curve, with the guard that says whether B_noise is a
/// measurement: <see cref="Status"/> is "in range" only when the knee lies within the measured batch sizes and
/// the RMS of the log2 residuals is at most <see cref="MaxRmsLog2Residual"/>. Otherwise B_noise is not reported
/// as a number: "no plateau in the measured range" (knee above the largest batch size: the fitted value is the
/// search's bound or an extrapolation), "no perfect scaling in the measured range" (knee below the smallest),
/// or "poor fit" (the curve does not have the model's shape). R² cannot serve as that guard: log S spans
/// several octaves, so even a knee-less power law B^−0.7 over 16…2048 has R² ≈ 0.97.
/// </summary>
public sealed record ScalingFitResult(double SMin, double BNoise, double RSquaredLog, int Points, double RmsLog2Residual, double BMin, double BMax, string Status)
{
    /// <summary>Half the verdicts' resolution (log2 1.25 = 0.32): a fit whose typical residual is that large cannot place the knee.</summary>
    public const double MaxRmsLog2Residual = 0.16;
    public const string InRange = "in range", NoPlateau = "no plateau in the measured range", NoPerfectScaling = "no perfect scaling in the measured range", PoorFit = "poor fit";

    public static ScalingFitResult From(double sMin, double bNoise, double r2, double rmsLog2, int points, double bMin, double bMax)
    {
        string status = rmsLog2 > MaxRmsLog2Residual ? PoorFit : bNoise > bMax ? NoPlateau : bNoise < bMin ? NoPerfectScaling : InRange;
        return new ScalingFitResult(sMin, bNoise, r2, points, rmsLog2, bMin, bMax, status);
    }

    /// <summary>S(B) fit (the engine's least squares in log space) with its guard; null with fewer than 3 points (two points always fit exactly and say nothing).</summary>
    public static ScalingFitResult? Fit(ScalingPoints curve)
    {
        if (curve.Count < 3) return null;
        var fit = NqmValidate.Nqm.ScalingCurve.Fit(curve.BatchSizes, curve.Steps);
        return From(fit.StepsMin, fit.BatchNoise, fit.RSquaredLog, fit.RmsLogResidual / Math.Log(2), fit.Points, curve.BatchSizes[0], curve.BatchSizes[^1]);
    }

    /// <summary>B_noise when it is a measurement, else null.</summary>
    public double? CriticalBatchSize => Status == InRange ? BNoise : null;

    /// <summary>How the report states B_noise: the number, or the label with the bound it implies.</summary>
    public string Label => Status switch
    {
        InRange => Numbers.Figures3(BNoise),
        NoPlateau => $"> {BMax:G} ({NoPlateau})",
        NoPerfectScaling => $"< {BMin:G} ({NoPerfectScaling})",
        _ => $"{PoorFit} (RMS log2 residual {RmsLog2Residual:F2})",
    };
}

public static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) return double.NaN;
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
    }

    /// <summary>Least-squares slope of y on x.</summary>
    public static double Slope(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0;
        for (int i = 0; i < x.Count; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); }
        return sxy / sxx;
    }
}
