using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// The verdicts stage (verdicts.csv): claims (a)–(d) judged on the measured curves and on the primary recipe's
/// predicted curves; issue #13's further claims (f)–(i), (j) per optimizer and (k) per measured trajectory, the same
/// way (or "not measured" with what the study lacks); then claim (e), the NQM against the McCandlish baseline, per
/// predicted optimizer under the primary calibration scheme. (a)–(e) say how many recipes of the sensitivity table
/// agree (<see cref="RecipeTally"/>); (f)–(k) are not tallied.
/// </summary>
internal static class VerdictStage
{
    const string RecipesAd = "recipes (variant × checkpoint × floor × initial condition; calibration does not move these)";
    const string RecipesE = "recipes (variant × checkpoint × floor × initial condition × calibration; zero-shot and divergence-calibrated excluded: the baseline needs a measured point)";

    public static List<VerdictRow> Judge(RunFacts facts, Combo primary, VariantFit primaryFit, ScalingResult scaling, RecipeTally tally)
    {
        var options = facts.Options;
        string primaryName = primaryFit.Variant.Name;
        ScalingFitResult? measuredFit(string optimizer) => scaling.MeasuredFits.GetValueOrDefault(optimizer);
        var measuredVerdicts = new[]
        {
            VerdictRules.PerfectScalingThenDiminishingReturns("sgd", scaling.Measured("sgd")),
            VerdictRules.MomentumMatchesSgdBelowCritical(scaling.Measured("sgd"), scaling.Measured("momentum"), measuredFit("sgd")?.CriticalBatchSize),
            VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", measuredFit("momentum"), measuredFit("sgd")),
            VerdictRules.LargerCriticalBatchSize("d", "adam", "momentum", measuredFit("adam"), measuredFit("momentum")),
        };
        var predictedCurves = ScalingStage.PredictedCurves(facts, primary, primaryName);
        var predictedVerdicts = Predicted(predictedCurves,
            o => scaling.PredictedFits.GetValueOrDefault((primaryName, o))).ToArray();
        var verdicts = measuredVerdicts.Zip(predictedVerdicts).Select(x => new VerdictRow(x.First.Id, x.First.Claim, x.First.OutcomeText, x.First.Evidence,
            x.Second.OutcomeText, x.Second.Evidence, tally.Describe(x.First.Id, RecipesAd), x.First.Rule)).ToList();
        verdicts.AddRange(FurtherVerdicts(facts, primaryFit, scaling, predictedCurves, primaryName));
        verdicts.AddRange(LearningRateVerdicts(facts, primary, primaryName, scaling));
        verdicts.AddRange(StabilityVerdicts(facts.Drift));
        foreach (var optimizer in facts.Optimizers)
        {
            // An optimizer no NQM optimizer models is measured, not predicted: no verdict (e) for it.
            if (facts.NqmOptimizersFor(optimizer, primaryFit.Variant).FirstOrDefault() is not { } nqm) continue;
            var e = Calibration.Summarize(CalibrateStage.Nqm(facts, primary, primaryName, optimizer, nqm, options.Calibration));
            var b = Calibration.Summarize(CalibrateStage.Baseline(facts, optimizer, options.Calibration));
            var v = VerdictRules.NqmBeatsBaseline(optimizer, options.Calibration, e.MedianAbsLog2, b.MedianAbsLog2, Math.Min(e.Points, b.Points));
            verdicts.Add(new VerdictRow(v.Id, v.Claim, v.OutcomeText, v.Evidence + $"; slope of log2 error vs log2 B: NQM {Numbers.Signed(e.Slope)}, baseline {Numbers.Signed(b.Slope)}",
                "—", $"primary recipe, variant {primaryName}", tally.Describe("e " + optimizer, RecipesE), v.Rule));
        }
        return verdicts;
    }

    /// <summary>
    /// (j) for SGD and heavy-ball momentum, measured (the sweep's best learning rate per batch size) and as the primary
    /// recipe predicts (the NQM optimum's), each against its own curve's critical batch size. Not tallied over the
    /// sensitivity table's recipes yet.
    /// </summary>
    static IEnumerable<VerdictRow> LearningRateVerdicts(RunFacts facts, Combo primary, string primaryName, ScalingResult scaling)
    {
        foreach (var optimizer in facts.Optimizers.Where(o => o is "sgd" or "momentum"))
        {
            var measured = VerdictRules.LearningRateGrowsThenFlattens(optimizer,
                facts.Inputs.Sweep.Studies.Where(s => s.Optimizer == optimizer && s.StepsToTarget is not null)
                    .Select(s => ((double)s.BatchSize, ScalingStage.EffectiveRate(s.LearningRate, s.Momentum ?? s.Beta1))),
                scaling.MeasuredFits.GetValueOrDefault(optimizer)?.CriticalBatchSize);
            string? nqm = facts.NqmOptimizersFor(optimizer, primary.Fits.First(f => f.Variant.Name == primaryName).Variant).FirstOrDefault();
            var predicted = VerdictRules.LearningRateGrowsThenFlattens(optimizer,
                primary.Of(primaryName, optimizer, nqm ?? "").Where(p => p.StepsZeroShot is not null).Select(p => (p.BatchSize, p.EffectiveLearningRate)),
                scaling.PredictedFits.GetValueOrDefault((primaryName, optimizer))?.CriticalBatchSize);
            yield return new VerdictRow(measured.Id, measured.Claim, measured.OutcomeText, measured.Evidence, predicted.OutcomeText, predicted.Evidence,
                NotTallied, measured.Rule);
        }
    }

    const string NotTallied = "not tallied over recipes";

    /// <summary>
    /// (f), (g), (h) and (i), measured and as the primary recipe predicts. None is tallied over the sensitivity table's
    /// recipes, as (j) is not: (f) evaluates the NQM at every momentum trial of two batch sizes, per recipe a second search's
    /// worth of work, and (g)–(i) need optimizers or targets the committed studies do not have, so a tally would count
    /// "not measured" hundreds of times.
    /// </summary>
    static IEnumerable<VerdictRow> FurtherVerdicts(RunFacts facts, VariantFit primaryFit, ScalingResult scaling, IReadOnlyDictionary<string, ScalingPoints> predictedCurves, string primaryName)
    {
        VerdictRow Row(Verdict measured, Verdict predicted) =>
            new(measured.Id, measured.Claim, measured.OutcomeText, measured.Evidence, predicted.OutcomeText, predicted.Evidence, NotTallied, measured.Rule);
        ScalingFitResult? predictedFit(string o) => scaling.PredictedFits.GetValueOrDefault((primaryName, o));
        ScalingPoints predictedCurve(string o) => predictedCurves.GetValueOrDefault(o) ?? new ScalingPoints([], []);

        yield return EffectiveRateVerdict(facts, primaryFit, Row);

        bool Has(string o) => facts.Optimizers.Contains(o);
        string Missing(string o, string example) => $"the study has no {o} optimizer; add {example} to the spec's optimizers (beside {string.Join(", ", facts.Optimizers)})";
        var g = VerdictRules.KfacLargerCriticalBatchSizeThanAdam(scaling.MeasuredFits.GetValueOrDefault("kfac"), scaling.MeasuredFits.GetValueOrDefault("adam"));
        var gPredicted = VerdictRules.KfacLargerCriticalBatchSizeThanAdam(predictedFit("kfac"), predictedFit("adam"));
        yield return Has("kfac") && Has("adam")
            ? Row(g, gPredicted with { Evidence = gPredicted.Evidence + $"; NQM counterparts {CounterpartOf(facts, "kfac", primaryFit)} (kfac), {CounterpartOf(facts, "adam", primaryFit)} (adam)" })
            : Row(VerdictRules.NotMeasured(g, Missing(Has("kfac") ? "adam" : "kfac", Has("kfac") ? "`{\"name\": \"adam\"}`" : "`{\"name\": \"kfac\"}`")),
                  VerdictRules.NotMeasured(g, "the NQM predicts only the optimizers the sweep measured"));

        var h = VerdictRules.EmaHelpsAtSmallBatchSizes(scaling.Measured("sgd"), scaling.Measured("ema"));
        yield return Has("ema") && Has("sgd")
            ? Row(h, VerdictRules.EmaHelpsAtSmallBatchSizes(predictedCurve("sgd"), predictedCurve("ema")))
            : Row(VerdictRules.NotMeasured(h, Missing(Has("ema") ? "sgd" : "ema", Has("ema") ? "`{\"name\": \"sgd\"}`" : "`{\"name\": \"ema\"}` (SGD with an average of its iterates)")),
                  VerdictRules.NotMeasured(h, "the NQM predicts only the optimizers the sweep measured"));

        foreach (var row in TargetVerdicts(facts, primaryFit, scaling, predictedCurve, Row)) yield return row;
    }

    /// <summary>The NQM optimizer that predicts <paramref name="optimizer"/>'s curve in the primary variant (its first counterpart there).</summary>
    static string CounterpartOf(RunFacts facts, string optimizer, VariantFit primaryFit) =>
        facts.NqmOptimizersFor(optimizer, primaryFit.Variant).FirstOrDefault() ?? "none";

    /// <summary>
    /// (f): heavy ball's trials at its smallest and largest batch size, measured (the sweep's steps of the trials that
    /// reached the target) and as the primary recipe's NQM predicts at the same (α, β) (<see cref="NqmAdapter.HeavyBallStepsAt"/>:
    /// every trial the sweep ran there, whatever its outcome, since the NQM decides for itself which reach).
    /// </summary>
    static VerdictRow EffectiveRateVerdict(RunFacts facts, VariantFit primaryFit, Func<Verdict, Verdict, VerdictRow> row)
    {
        var trials = facts.Inputs.Sweep.Trials.Where(t => t.Optimizer == "momentum" && t.Momentum is >= 0 and < 1 && t.LearningRate > 0).ToArray();
        var batchSizes = trials.Select(t => t.BatchSize).Distinct().Order().ToArray();
        if (batchSizes.Length < 2)
        {
            var shape = VerdictRules.EffectiveLearningRateAlone(0, [], 0, []);
            string reason = batchSizes.Length == 0
                ? "the study has no heavy-ball (momentum) trials; add `{\"name\": \"momentum\"}` with a search over learning rate and momentum to the spec's optimizers"
                : "heavy-ball trials at one batch size only";
            return row(VerdictRules.NotMeasured(shape, reason), VerdictRules.NotMeasured(shape, reason));
        }
        int small = batchSizes[0], large = batchSizes[^1];
        MomentumTrialPoint[] Measured(int b) => trials.Where(t => t.BatchSize == b)
            .Select(t => new MomentumTrialPoint(t.LearningRate, t.Momentum!.Value, t.Status == "reached" ? t.StepsToTarget : null,
                // Diverged: no number of steps reaches. Pruned or out of budget: it ran that many steps without reaching. A crash says nothing.
                t.Status switch { "diverged" => double.PositiveInfinity, "pruned" or "budget_exhausted" => t.StepsRun, _ => null })).ToArray();
        MomentumTrialPoint[] Predicted(int b) => trials.Where(t => t.BatchSize == b).Select(t => (t.LearningRate, Beta: t.Momentum!.Value)).Distinct().AsParallel().AsOrdered()
            .Select(t => NqmAdapter.HeavyBallStepsAt(primaryFit.Variant, primaryFit.TargetExcess, b, t.LearningRate, t.Beta) is long k
                ? new MomentumTrialPoint(t.LearningRate, t.Beta, k)
                : new MomentumTrialPoint(t.LearningRate, t.Beta, null, double.PositiveInfinity)).ToArray(); // unstable, or past 10^8 steps
        var measured = VerdictRules.EffectiveLearningRateAlone(small, Measured(small), large, Measured(large));
        var predicted = VerdictRules.EffectiveLearningRateAlone(small, Predicted(small), large, Predicted(large));
        return row(measured, predicted with { Evidence = predicted.Evidence + $"; the NQM at the (α, β) of the sweep's {Measured(small).Length} + {Measured(large).Length} heavy-ball trials there, variant {primaryFit.Variant.Name}" });
    }

    /// <summary>
    /// (i) per optimizer, on one S(B) curve per target loss (<see cref="CurvesByTarget"/>: steps-by-target.csv when the
    /// sweep recorded looser targets). A study with one target gets one row saying so.
    /// </summary>
    static IEnumerable<VerdictRow> TargetVerdicts(RunFacts facts, VariantFit primaryFit, ScalingResult scaling, Func<string, ScalingPoints> predictedCurve,
        Func<Verdict, Verdict, VerdictRow> row)
    {
        var byTarget = CurvesByTarget(facts, scaling);
        if (byTarget.Values.All(curves => curves.Count < 2))
        {
            // One target: one row (the same "not measured" per optimizer would only repeat it).
            var v = VerdictRules.TighterTargetRaisesCriticalBatchSize(null, byTarget.Values.FirstOrDefault() ?? []);
            yield return row(v, v);
            yield break;
        }
        foreach (var (optimizer, curves) in byTarget)
        {
            var measured = VerdictRules.TighterTargetRaisesCriticalBatchSize(optimizer, curves);
            Verdict predicted;
            if (PredictedByTarget(facts, primaryFit, optimizer, curves.Select(c => c.TargetLoss), predictedCurve(optimizer)) is { } p)
            {
                var v = VerdictRules.TighterTargetRaisesCriticalBatchSize(optimizer, p);
                predicted = v with { Evidence = v.Evidence + $"; the primary recipe's NQM (variant {primaryFit.Variant.Name}, floor {primaryFit.Floor:G3}) optimised to each target's excess" };
            }
            else predicted = VerdictRules.NotMeasured(VerdictRules.TighterTargetRaisesCriticalBatchSize(optimizer, []),
                primaryFit.Variant.Segments is not null ? "the piecewise variant's segments end at the primary target's loss levels" : $"no NQM counterpart for {optimizer}");
            yield return row(measured, predicted);
        }
    }

    /// <summary>
    /// The primary recipe's zero-shot S(B) at every measured target: at the study's own target its predicted curve, at
    /// another the same fitted NQM (spectrum, floor, initial condition) optimised to that target's excess over the floor.
    /// Null when the variant is piecewise (its pieces are cut at the primary target's levels) or has no counterpart.
    /// </summary>
    static IReadOnlyList<(double TargetLoss, ScalingPoints Curve)>? PredictedByTarget(RunFacts facts, VariantFit fit, string optimizer,
        IEnumerable<double> targets, ScalingPoints atPrimary)
    {
        if (fit.Variant.Segments is not null || facts.NqmOptimizersFor(optimizer, fit.Variant).FirstOrDefault() is not { } nqm) return null;
        var options = facts.Options;
        return targets.Select(t =>
        {
            if (t == facts.Inputs.TargetLoss) return (t, atPrimary);
            double excess = t - fit.Floor;
            if (!(excess > 0) || !(excess < fit.InitialExcess)) return (t, new ScalingPoints([], []));
            var points = facts.BatchSizes.AsParallel().AsOrdered().Select(b =>
            {
                var optimum = fit.Variant.EosMargin > 0
                    ? NqmAdapter.OptimizeEosAware(fit.Variant.Bins, nqm, b, excess, options.Search == "grid", options.AdamEpsilon, fit.Variant.EosMargin)
                    : NqmAdapter.Optimize(fit.Variant.Bins, nqm, b, excess, options.Search == "grid", options.AdamEpsilon);
                return ((double)b, optimum?.Steps);
            }).ToList();
            return (t, ScalingPoints.From(points));
        }).ToList();
    }

    /// <summary>
    /// The measured S(B) curves per optimizer and target loss: those of steps-by-target.csv when the sweep recorded
    /// looser targets, else the study's one target and its curves.
    /// </summary>
    static Dictionary<string, IReadOnlyList<(double TargetLoss, ScalingPoints Curve)>> CurvesByTarget(RunFacts facts, ScalingResult scaling)
    {
        var measured = facts.Inputs.Sweep.CurvesByTarget();
        return facts.Optimizers.ToDictionary(o => o, o => measured.TryGetValue(o, out var curves) && curves.Count > 1
            ? curves : (IReadOnlyList<(double, ScalingPoints)>)[(facts.Inputs.TargetLoss, scaling.Measured(o))]);
    }

    /// <summary>
    /// (k) per measured trajectory (drift.csv), measured only: the NQM holds one spectrum fixed for a whole run (the
    /// piecewise variant takes the measured pieces as given), so it predicts nothing about whether the spectrum settles.
    /// </summary>
    static IEnumerable<VerdictRow> StabilityVerdicts(IReadOnlyList<MeasuredDrift> drift)
    {
        const string fixedSpectrum = "the NQM assumes a fixed spectrum (one per recipe; the piecewise variant takes the measured pieces as given): no prediction";
        if (drift.Count == 0)
        {
            var v = VerdictRules.NotMeasured(VerdictRules.SpectraStabilise(null, []),
                "no trajectory measured; set the spec's curvature.trajectory to measure the curvature along the sweep's best trials");
            yield return new VerdictRow(v.Id, v.Claim, v.OutcomeText, v.Evidence, "—", fixedSpectrum, NotTallied, v.Rule);
            yield break;
        }
        foreach (var trajectory in drift.GroupBy(d => d.Trajectory))
        {
            var v = VerdictRules.SpectraStabilise(trajectory.Key, trajectory);
            yield return new VerdictRow(v.Id, v.Claim, v.OutcomeText, v.Evidence, "—", fixedSpectrum, NotTallied, v.Rule);
        }
    }

    /// <summary>Predicted verdicts (a)–(d) on one recipe's zero-shot curves and their S(B) fits.</summary>
    public static IEnumerable<Verdict> Predicted(IReadOnlyDictionary<string, ScalingPoints> curves, Func<string, ScalingFitResult?> fit)
    {
        ScalingPoints P(string o) => curves.GetValueOrDefault(o) ?? new ScalingPoints([], []);
        yield return VerdictRules.PerfectScalingThenDiminishingReturns("sgd", P("sgd"));
        yield return VerdictRules.MomentumMatchesSgdBelowCritical(P("sgd"), P("momentum"), fit("sgd")?.CriticalBatchSize);
        yield return VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", fit("momentum"), fit("sgd"));
        yield return VerdictRules.LargerCriticalBatchSize("d", "adam", "momentum", fit("adam"), fit("momentum"));
    }
}
