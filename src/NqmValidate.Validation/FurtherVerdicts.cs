using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// One trial of a learning-rate × momentum search: α, β and its steps-to-target (null: it did not reach the target).
/// <see cref="StepsAtLeast"/>, for a trial that did not reach: a bound its steps are known to exceed (+∞ when it diverged,
/// or the NQM's iteration is unstable; the steps it ran when a budget stopped it; null when nothing is known).
/// </summary>
public sealed record MomentumTrialPoint(double LearningRate, double Momentum, double? Steps, double? StepsAtLeast = null)
{
    /// <summary>α/(1−β): the heavy-ball rate that SGD's α is compared with.</summary>
    public double EffectiveLearningRate => LearningRate / (1 - Momentum);

    public bool Reached => Steps is > 0 && double.IsFinite(Steps.Value);
}

/// <summary>
/// The further claims of issue #13 ((f)–(i), (k); (j) is beside (a)–(e) in Verdicts.cs), as pure functions with their
/// thresholds in the rule text. Like (a)–(e), each runs on measured numbers and on what the fitted NQM predicts.
/// </summary>
public static partial class VerdictRules
{
    /// <summary>Trials count as "at the same effective learning rate" when their α/(1−β) agree within this log2 (×1.25, as <see cref="SameLog2"/>).</summary>
    public const double SameEffectiveRateLog2 = 0.32;
    /// <summary>... and as "at different momentum" when their 1−β differ by at least this log2 (a factor of 2).</summary>
    public const double DifferentMomentumLog2 = 1.0;
    /// <summary>Fewest matched pairs a batch size needs before its spread says anything.</summary>
    public const int MinMatchedPairs = 2;
    /// <summary>A median |log2| beyond this (×1.5) is "clearly different", as in (b).</summary>
    public const double ClearlyDifferentLog2 = 0.58;

    /// <summary>Trials within this factor of a batch size's fewest steps are "near the optimum", where (f) is judged.</summary>
    public const double NearOptimalFactor = 2;

    /// <summary>
    /// Whether steps near the optimum depend on α/(1−β) alone: for every trial within ×2 of the fewest steps at this batch
    /// size, its partners are the other trials at the same effective learning rate (within ×1.25) and different momentum
    /// (1−β at least ×2 apart), and the pair's spread is |log2(S_partner/S_trial)|. A partner that did not reach counts when
    /// its bound says it is clearly slower (bound ≥ ×1.5 the trial's steps; +∞ when it diverged), and is left out otherwise.
    /// Near the optimum, because away from it every heavy-ball run is governed by its slowest direction at the rate
    /// α/(1−β)·h whatever β is (even at large batch sizes, where what differs is which α/(1−β) each β can run stably).
    /// </summary>
    public static (int Reached, int NearOptimal, int MomentumValues, int Pairs, double? MedianAbsLog2) SameEffectiveRateSpread(IEnumerable<MomentumTrialPoint> trials)
    {
        var all = trials.Where(t => t.LearningRate > 0 && t.Momentum is >= 0 and < 1).ToArray();
        var reached = all.Where(t => t.Reached).ToArray();
        if (reached.Length == 0) return (0, 0, 0, 0, null);
        double best = reached.Min(t => t.Steps!.Value);
        var near = reached.Where(t => t.Steps!.Value <= NearOptimalFactor * best).ToArray();
        var spreads = new List<double>();
        for (int i = 0; i < all.Length; i++)
        {
            var t = all[i];
            if (!near.Contains(t)) continue;
            for (int j = 0; j < all.Length; j++)
            {
                var p = all[j];
                if (j == i || (near.Contains(p) && j < i)) continue; // a pair of two near-optimal trials counts once
                if (Math.Abs(Math.Log2(t.EffectiveLearningRate / p.EffectiveLearningRate)) > SameEffectiveRateLog2) continue;
                if (Math.Abs(Math.Log2((1 - t.Momentum) / (1 - p.Momentum))) < DifferentMomentumLog2) continue;
                if (p.Reached) spreads.Add(Math.Abs(Math.Log2(p.Steps!.Value / t.Steps!.Value)));
                else if (p.StepsAtLeast is double bound && Math.Log2(bound / t.Steps!.Value) >= ClearlyDifferentLog2) spreads.Add(Math.Log2(bound / t.Steps!.Value));
            }
        }
        return (reached.Length, near.Length, reached.Select(t => t.Momentum).Distinct().Count(), spreads.Count, spreads.Count > 0 ? Stats.Median(spreads) : null);
    }

    /// <summary>
    /// (f) at small batch sizes steps depend on the effective learning rate α/(1−β) alone, at large batch sizes they do
    /// not: the spread of steps among matched pairs (same α/(1−β) within ×1.25, 1−β at least ×2 apart; <see cref="SameEffectiveRateSpread"/>)
    /// at the smallest batch size against the largest. Pairs avoid fitting a shape to log S(η_eff), which a handful of
    /// trials cannot support, and compare only trials that differ in momentum (same-β neighbours agree trivially).
    /// </summary>
    public static Verdict EffectiveLearningRateAlone(double smallBatchSize, IEnumerable<MomentumTrialPoint> small, double largeBatchSize, IEnumerable<MomentumTrialPoint> large)
    {
        string rule = $"pairs of heavy-ball trials at the same effective learning rate α/(1−β) (within ×1.25) and different momentum (1−β at least ×2 apart), one of them within ×{NearOptimalFactor:G} of the batch size's fewest steps " +
                      $"(the other, if it did not reach, counted only when clearly slower: diverged, or stopped after ≥ ×1.5 the steps): " +
                      $"median |log2(S_i/S_j)| ≤ {SameLog2} at the smallest batch size and ≥ {ClearlyDifferentLog2} at the largest: holds; > {ClearlyDifferentLog2} at the smallest or ≤ {SameLog2} at the largest: fails; " +
                      $"fewer than {MinMatchedPairs} pairs at either batch size or in between: inconclusive";
        const string claim = "(f) at small batch sizes steps depend on the effective learning rate α/(1−β) alone, at large batch sizes they do not";
        var s = SameEffectiveRateSpread(small);
        var l = SameEffectiveRateSpread(large);
        static string Describe(double b, (int Reached, int NearOptimal, int MomentumValues, int Pairs, double? Median) x) =>
            $"B={b:G}: {x.Reached} reached at {x.MomentumValues} momentum value(s), {x.NearOptimal} near the optimum, {x.Pairs} matched pair(s)" + (x.Median is double m ? $", median |log2| {(double.IsPositiveInfinity(m) ? "∞ (partners diverged)" : m.ToString("F2", System.Globalization.CultureInfo.InvariantCulture))}" : "");
        string evidence = $"{Describe(smallBatchSize, s)}; {Describe(largeBatchSize, l)}";
        if (s.Pairs < MinMatchedPairs || l.Pairs < MinMatchedPairs)
            return new Verdict("f", claim, VerdictOutcome.Inconclusive, evidence, rule);
        double atSmall = s.MedianAbsLog2!.Value, atLarge = l.MedianAbsLog2!.Value;
        var outcome = atSmall <= SameLog2 && atLarge >= ClearlyDifferentLog2 ? VerdictOutcome.Holds
                    : atSmall > ClearlyDifferentLog2 || atLarge <= SameLog2 ? VerdictOutcome.Fails
                    : VerdictOutcome.Inconclusive;
        return new Verdict("f", claim, outcome, evidence, rule);
    }

    /// <summary>(g) K-FAC reaches a larger critical batch size than Adam: (c)/(d)'s rule on the two families' S(B) fits.</summary>
    public static Verdict KfacLargerCriticalBatchSizeThanAdam(ScalingFitResult? kfac, ScalingFitResult? adam) =>
        LargerCriticalBatchSize("g", "kfac", "adam", kfac, adam);

    /// <summary>A log2 ratio beyond which EMA "cuts" steps at small batch sizes (a factor of 1.07: less is no cut at all).</summary>
    public const double NoCutLog2 = -0.1;

    /// <summary>
    /// (h) an exponential moving average of the iterates cuts steps at small batch sizes and matters little at large ones:
    /// log2(S_ema/S_sgd) at the smallest and the largest batch size both curves reached.
    /// </summary>
    public static Verdict EmaHelpsAtSmallBatchSizes(ScalingPoints sgd, ScalingPoints ema)
    {
        string rule = $"r = log2(S_ema/S_sgd) at the smallest and the largest batch size both reached: r_small ≤ −{SameLog2} (EMA at least ×1.25 faster) and |r_large| ≤ {SameLog2}: holds; " +
                      $"r_small > −{-NoCutLog2} (no cut) or |r_large| > {ClearlyDifferentLog2} (EMA still matters, ×1.5): fails; fewer than 2 shared batch sizes or in between: inconclusive";
        const string claim = "(h) EMA of the iterates cuts steps at small batch sizes and matters little at large ones";
        var shared = sgd.BatchSizes.Where(b => ema.At(b) is not null).ToArray();
        if (shared.Length < 2)
            return new Verdict("h", claim, VerdictOutcome.Inconclusive, $"{shared.Length} batch size(s) reached by both sgd and ema", rule);
        double R(double b) => Math.Log2(ema.At(b)!.Value / sgd.At(b)!.Value);
        double rSmall = R(shared[0]), rLarge = R(shared[^1]);
        string evidence = $"log2(S_ema/S_sgd) {Numbers.Signed(rSmall)} at B={shared[0]:G}, {Numbers.Signed(rLarge)} at B={shared[^1]:G}";
        var outcome = rSmall <= -SameLog2 && Math.Abs(rLarge) <= SameLog2 ? VerdictOutcome.Holds
                    : rSmall > NoCutLog2 || Math.Abs(rLarge) > ClearlyDifferentLog2 ? VerdictOutcome.Fails
                    : VerdictOutcome.Inconclusive;
        return new Verdict("h", claim, outcome, evidence, rule);
    }

    /// <summary>
    /// (i) a tighter target raises the critical batch size: one S(B) curve per target loss (same optimizer), each fitted
    /// with the guard; (c)/(d)'s rule on B_noise at the tightest (lowest) target against the loosest. With three or more
    /// targets, "holds" also needs no step between neighbouring targets to fail that rule (the rise is monotone).
    /// </summary>
    public static Verdict TighterTargetRaisesCriticalBatchSize(string? optimizer, IEnumerable<(double TargetLoss, ScalingPoints Curve)> perTarget)
    {
        string claim = optimizer is null ? "(i) a tighter target raises the critical batch size" : $"(i) {optimizer}: a tighter target raises the critical batch size";
        var targets = perTarget.OrderByDescending(t => t.TargetLoss).Select(t => (t.TargetLoss, Fit: ScalingFitResult.Fit(t.Curve))).ToArray();
        string Name(double target) => $"B_noise(target {target:G3})";
        string rule = $"one S(B) curve per target loss: ratio B_noise(tightest target)/B_noise(loosest target) ≥ {LargerFactor}: holds (with three or more targets, only if no tighter neighbour fails the same test against the looser one); " +
                      $"≤ {1 / LargerFactor:G3}: fails; in between, a fit the guard rejects, or fewer than 2 targets: inconclusive";
        if (targets.Length < 2)
            return new Verdict("i", claim, VerdictOutcome.Inconclusive,
                $"not measured: the study has {(targets.Length == 1 ? $"one target (train loss {targets[0].TargetLoss:G3})" : "no target")}; the claim needs steps-to-target at two or more targets", rule);
        var overall = LargerCriticalBatchSize("i", Name(targets[^1].TargetLoss), Name(targets[0].TargetLoss), targets[^1].Fit, targets[0].Fit);
        var steps = targets.Zip(targets.Skip(1), (loose, tight) => LargerCriticalBatchSize("i", Name(tight.TargetLoss), Name(loose.TargetLoss), tight.Fit, loose.Fit)).ToArray();
        string evidence = string.Join(", ", targets.Select(t => $"target {t.TargetLoss:G3}: B_noise {t.Fit?.Label ?? "no fit (fewer than 3 batch sizes)"}"));
        var outcome = overall.Outcome == VerdictOutcome.Holds && steps.Any(s => s.Outcome == VerdictOutcome.Fails) ? VerdictOutcome.Inconclusive : overall.Outcome;
        return new Verdict("i", claim, outcome, evidence + (targets.Length > 2 && outcome != overall.Outcome ? "; not monotone between neighbouring targets" : ""), rule);
    }

    /// <summary>A log2 change of a spectrum's scalar between checkpoints at most this (×1.41) counts as "stable".</summary>
    public const double StableLog2 = 0.5;
    /// <summary>How far the later overlap may fall below the earlier one before the eigenspace counts as "moving more later".</summary>
    public const double OverlapSlack = 0.1;

    /// <summary>
    /// (k) the curvature and noise spectra stabilise after the initial phase, along one measured trajectory (drift.csv,
    /// its checkpoints by step): the largest |log2| change of λ_max, tr GGN and tr Σ between the first two checkpoints
    /// (D_early) and between the last two (D_late), and the top-eigenspace overlap of each checkpoint with the one before
    /// (O_early at the second checkpoint, O_late at the last). B_simple = tr Σ/|g|² is shown but not judged: it moves
    /// with the gradient norm, which falls as the loss does, not with the spectrum.
    /// </summary>
    public static Verdict SpectraStabilise(string? trajectory, IEnumerable<MeasuredDrift> checkpoints)
    {
        string rule = $"along one trajectory, D = largest |log2| change of λ_max, tr GGN and tr Σ between consecutive checkpoints and O = top-eigenspace overlap with the previous checkpoint: " +
                      $"D_late ≤ D_early/2 and D_late ≤ {StableLog2} (within ×1.41) and O_late ≥ O_early: holds; D_late ≥ D_early or O_late < O_early − {OverlapSlack}: fails; " +
                      "fewer than 3 checkpoints or in between: inconclusive (early = first two checkpoints, late = last two; B_simple moves with |g|², not the spectrum, and is not judged)";
        string claim = (trajectory is null ? "(k) " : $"(k) {trajectory}: ") + "the curvature and noise spectra stabilise after the initial phase";
        var c = checkpoints.OrderBy(d => d.Step).ToArray();
        if (c.Length < 3)
            return new Verdict("k", claim, VerdictOutcome.Inconclusive, $"{c.Length} checkpoint(s) measured", rule);
        static double? Change(double? from, double? to) => from is > 0 && to is > 0 ? Math.Abs(Math.Log2(to.Value / from.Value)) : null;
        static double Largest(MeasuredDrift a, MeasuredDrift b) =>
            new[] { Change(a.LambdaMax, b.LambdaMax), Change(a.TraceGgn, b.TraceGgn), Change(a.TraceSigma, b.TraceSigma) }.OfType<double>().DefaultIfEmpty(double.NaN).Max();
        double early = Largest(c[0], c[1]), late = Largest(c[^2], c[^1]);
        double? oEarly = c[1].OverlapPrevious, oLate = c[^1].OverlapPrevious;
        string evidence = $"{c[0].Checkpoint}→{c[1].Checkpoint}: largest |log2| change {early:F2}, overlap {Fmt(oEarly)}; {c[^2].Checkpoint}→{c[^1].Checkpoint}: {late:F2}, overlap {Fmt(oLate)} " +
                          $"(λ_max {c[0].LambdaMax:G3} → {c[1].LambdaMax:G3} → {c[^1].LambdaMax:G3}; tr Σ {c[0].TraceSigma:G3} → {c[1].TraceSigma:G3} → {c[^1].TraceSigma:G3}; B_simple {c[0].SimpleNoiseScale:G3} → {c[^1].SimpleNoiseScale:G3})";
        if (!double.IsFinite(early) || !double.IsFinite(late))
            return new Verdict("k", claim, VerdictOutcome.Inconclusive, evidence, rule);
        bool overlapRises = oEarly is double oe && oLate is double ol && ol >= oe;
        bool overlapFalls = oEarly is double oe2 && oLate is double ol2 && ol2 < oe2 - OverlapSlack;
        var outcome = late <= early / 2 && late <= StableLog2 && overlapRises ? VerdictOutcome.Holds
                    : late >= early || overlapFalls ? VerdictOutcome.Fails
                    : VerdictOutcome.Inconclusive;
        return new Verdict("k", claim, outcome, evidence, rule);
    }

    /// <summary>A claim the study cannot test: inconclusive, with the rule it would be judged by and what the study lacks.</summary>
    public static Verdict NotMeasured(Verdict shape, string reason) => shape with { Outcome = VerdictOutcome.Inconclusive, Evidence = "not measured: " + reason };

    static string Fmt(double? v) => v is double d ? d.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "—";
}
