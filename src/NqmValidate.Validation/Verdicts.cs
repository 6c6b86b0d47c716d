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
/// The verdict rules of VALIDATION.md §4 as pure functions. Thresholds are stated in each rule's
/// text so the report shows exactly how a verdict was reached. The same rules run on measured
/// curves and on predicted ones, so the report can say what the NQM predicts for each claim too.
/// </summary>
public static class VerdictRules
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
            return new Verdict("b", claim, VerdictOutcome.Inconclusive, "no critical batch size for SGD (fit failed)", rule);
        var ratios = sgd.BatchSizes.Where(b => b <= bcrit && momentum.At(b) is not null)
            .Select(b => (B: b, L: Math.Log2(momentum.At(b)!.Value / sgd.At(b)!.Value))).ToArray();
        if (ratios.Length < 2)
            return new Verdict("b", claim, VerdictOutcome.Inconclusive, $"{ratios.Length} shared batch size(s) ≤ B_crit = {bcrit:G3}", rule);
        double median = Stats.Median(ratios.Select(r => Math.Abs(r.L)));
        string evidence = $"B_crit(SGD) = {bcrit:G3}; log2 ratios " + string.Join(", ", ratios.Select(r => $"B={r.B:G}: {r.L:+0.00;-0.00}")) + $"; median |log2| = {median:F2}";
        var outcome = median <= SameLog2 ? VerdictOutcome.Holds : median > 0.58 ? VerdictOutcome.Fails : VerdictOutcome.Inconclusive;
        return new Verdict("b", claim, outcome, evidence, rule);
    }

    /// <summary>(c)/(d): optimizer <paramref name="better"/> reaches a larger critical batch size than <paramref name="baseline"/>.</summary>
    public static Verdict LargerCriticalBatchSize(string id, string better, string baseline, ScalingFitResult? betterFit, ScalingFitResult? baselineFit)
    {
        string rule = $"ratio of fitted critical batch sizes B_noise({better})/B_noise({baseline}) ≥ {LargerFactor}: holds; ≤ {1 / LargerFactor:G3}: fails; in between, or a fit with R² < 0.9 in log space: inconclusive";
        string claim = $"({id}) {better} reaches a larger critical batch size than {baseline}";
        if (betterFit is null || baselineFit is null)
            return new Verdict(id, claim, VerdictOutcome.Inconclusive, "a fit is missing (fewer than 3 batch sizes reached the target)", rule);
        double ratio = betterFit.BNoise / baselineFit.BNoise;
        string evidence = $"B_noise {better} = {betterFit.BNoise:G3} (R² {betterFit.RSquaredLog:F2}), {baseline} = {baselineFit.BNoise:G3} (R² {baselineFit.RSquaredLog:F2}); ratio {ratio:G3}";
        if (betterFit.RSquaredLog < 0.9 || baselineFit.RSquaredLog < 0.9)
            return new Verdict(id, claim, VerdictOutcome.Inconclusive, evidence, rule);
        var outcome = ratio >= LargerFactor ? VerdictOutcome.Holds : ratio <= 1 / LargerFactor ? VerdictOutcome.Fails : VerdictOutcome.Inconclusive;
        return new Verdict(id, claim, outcome, evidence, rule);
    }

    /// <summary>(e) the NQM (one-point calibrated) predicts the measured curve better than McCandlish's baseline with the same calibration.</summary>
    public static Verdict NqmBeatsBaseline(double? nqmMedianAbsLog2, double? baselineMedianAbsLog2, int scoredPoints)
    {
        const string rule = "over all scored points (the calibration point excluded), median |log2(predicted/measured)| of the one-point NQM is at least 0.1 below the baseline's: holds; at least 0.1 above: fails; otherwise or fewer than 3 scored points: inconclusive";
        const string claim = "(e) the NQM predicts the measured scaling better than the McCandlish baseline";
        if (nqmMedianAbsLog2 is not double nqm || baselineMedianAbsLog2 is not double baseline || scoredPoints < 3)
            return new Verdict("e", claim, VerdictOutcome.Inconclusive, $"{scoredPoints} scored points", rule);
        string evidence = $"median |log2| NQM one-point = {nqm:F2}, baseline = {baseline:F2} over {scoredPoints} points";
        var outcome = nqm <= baseline - 0.1 ? VerdictOutcome.Holds : nqm >= baseline + 0.1 ? VerdictOutcome.Fails : VerdictOutcome.Inconclusive;
        return new Verdict("e", claim, outcome, evidence, rule);
    }
}

/// <summary>Result of fitting S(B) = S_min (1 + B_noise / B) to a curve.</summary>
public sealed record ScalingFitResult(double SMin, double BNoise, double RSquaredLog, int Points);

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
