namespace NqmValidate.Validation;

/// <summary>
/// The verdicts stage (verdicts.csv): claims (a)–(d) judged on the measured curves and on the primary recipe's
/// predicted curves, then claim (e), the NQM against the McCandlish baseline, per predicted optimizer under the
/// primary calibration scheme; each with how many recipes of the sensitivity table agree (<see cref="RecipeTally"/>).
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
        var predictedVerdicts = Predicted(ScalingStage.PredictedCurves(facts, primary, primaryName),
            o => scaling.PredictedFits.GetValueOrDefault((primaryName, o))).ToArray();
        var verdicts = measuredVerdicts.Zip(predictedVerdicts).Select(x => new VerdictRow(x.First.Id, x.First.Claim, x.First.OutcomeText, x.First.Evidence,
            x.Second.OutcomeText, x.Second.Evidence, tally.Describe(x.First.Id, RecipesAd), x.First.Rule)).ToList();
        verdicts.AddRange(LearningRateVerdicts(facts, primary, primaryName, scaling));
        foreach (var optimizer in facts.Optimizers)
        {
            // An optimizer no NQM optimizer models is measured, not predicted: no verdict (e) for it.
            if (facts.NqmOptimizersFor(optimizer, primaryFit.Variant).FirstOrDefault() is not { } nqm) continue;
            var e = Calibration.Summarize(CalibrateStage.Nqm(facts, primary, primaryName, optimizer, nqm, options.Calibration));
            var b = Calibration.Summarize(CalibrateStage.Baseline(facts, optimizer, options.Calibration));
            var v = VerdictRules.NqmBeatsBaseline(optimizer, options.Calibration, e.MedianAbsLog2, b.MedianAbsLog2, Math.Min(e.Points, b.Points));
            verdicts.Add(new VerdictRow(v.Id, v.Claim, v.OutcomeText, v.Evidence + $"; slope of log2 error vs log2 B: NQM {e.Slope:+0.00;-0.00}, baseline {b.Slope:+0.00;-0.00}",
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
                "not tallied over recipes", measured.Rule);
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
