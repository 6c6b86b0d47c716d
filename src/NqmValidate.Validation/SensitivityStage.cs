namespace NqmValidate.Validation;

/// <summary>
/// How many recipes the NQM predicts a claim holds in, per verdict key ("a"–"d", and "e OPTIMIZER"): counted over the
/// sensitivity table's recipes, shown in verdicts.csv's `recipes` column.
/// </summary>
internal sealed class RecipeTally
{
    readonly Dictionary<string, (int Holds, int Total)> _counts = [];

    public void Add(string key, Verdict verdict)
    {
        var (h, t) = _counts.GetValueOrDefault(key);
        _counts[key] = (h + (verdict.Outcome == VerdictOutcome.Holds ? 1 : 0), t + 1);
    }

    /// <summary>"NQM predicts holds in H of T <paramref name="recipes"/>", or empty when no recipe judged <paramref name="key"/>.</summary>
    public string Describe(string key, string recipes) =>
        _counts.TryGetValue(key, out var c) ? $"NQM predicts holds in {c.Holds} of {c.Total} {recipes}" : "";
}

/// <summary>sensitivity.csv's rows, and the tally of predicted verdicts over the same recipes.</summary>
internal sealed record SensitivityResult(IReadOnlyList<SensitivityRow> Rows, RecipeTally Tally);

/// <summary>
/// The sensitivity stage: the whole comparison repeated for every checkpoint × floor policy × initial condition ×
/// variant × calibration (the primary combo first, then the others: <see cref="Combos"/>), one row per recipe and
/// optimizer; the predicted verdicts (a)–(d) and (e) are tallied over the same recipes. The primary stays the spec's.
/// </summary>
internal static class SensitivityStage
{
    public static SensitivityResult Run(RunFacts facts, Combo primary, IProgress<string>? progress)
    {
        var rows = new List<SensitivityRow>();
        var tally = new RecipeTally();
        foreach (var combo in Combos(facts, primary, progress))
            Score(facts, combo, combo == primary, rows, tally);
        return new SensitivityResult(rows, tally);
    }

    /// <summary>
    /// The primary combo, then (with fit.sensitivity) every other checkpoint × floor policy × initial condition, predicted:
    /// floor policies fitted to the curve only where there is one (curve-unweighted: the fit before it weighted evaluations
    /// by log-step; curve-recorded only where the longer curve replaced it), zero, and the spec's own; initial condition
    /// measured only with a curve.
    /// </summary>
    static List<Combo> Combos(RunFacts facts, Combo primary, IProgress<string>? progress)
    {
        var options = facts.Options;
        var combos = new List<Combo> { primary };
        if (!options.Sensitivity) return combos;
        var floorPolicies = new List<string> { "zero" };
        if (facts.FitCurve is not null) floorPolicies.InsertRange(0, ["curve", "curve-low", "curve-high", "curve-unweighted"]);
        if (facts.FitCurve is not null && !ReferenceEquals(facts.FitCurve, facts.RecordedCurve)) floorPolicies.Insert(4, "curve-recorded");
        if (!floorPolicies.Contains(options.Floor)) floorPolicies.Add(options.Floor);
        var initialConditions = facts.FitCurve is not null ? new[] { "measured", "isotropic" } : ["isotropic"];
        foreach (var checkpoint in facts.Inputs.Checkpoints.OrderBy(c => c.Label, StringComparer.Ordinal))
            foreach (var floorPolicy in floorPolicies)
                foreach (var initialCondition in initialConditions)
                    if (!(checkpoint == facts.PrimaryCheckpoint && floorPolicy == options.Floor && initialCondition == options.InitialCondition))
                        combos.Add(PredictStage.Predict(facts, checkpoint, floorPolicy, initialCondition, progress));
        return combos;
    }

    /// <summary>One combo's rows: per usable variant, its verdicts (a)–(d) (calibration does not move them), then per optimizer × NQM counterpart × scheme its errors and (e).</summary>
    static void Score(RunFacts facts, Combo combo, bool isPrimaryCombo, List<SensitivityRow> rows, RecipeTally tally)
    {
        var options = facts.Options;
        var fitsByVariant = ScalingStage.PredictedFits(facts, combo);
        foreach (var f in combo.Fits.Where(f => f.Problem is null))
        {
            ScalingFitResult? predictedFit(string optimizer) => fitsByVariant.GetValueOrDefault((f.Variant.Name, optimizer));
            foreach (var v in VerdictStage.Predicted(ScalingStage.PredictedCurves(facts, combo, f.Variant.Name), predictedFit)) tally.Add(v.Id, v);
            foreach (var optimizer in facts.Optimizers)
                foreach (var nqm in facts.NqmOptimizersFor(optimizer, f.Variant))
                    foreach (var scheme in FitOptions.CalibrationSchemes)
                    {
                        var e = Calibration.Summarize(CalibrateStage.Nqm(facts, combo, f.Variant.Name, optimizer, nqm, scheme));
                        var b = scheme == "zero-shot" ? null : Calibration.Summarize(CalibrateStage.Baseline(facts, optimizer, scheme));
                        // Adam's measured preconditioner has a curve of its own; every other counterpart is the variant's curve.
                        var bn = nqm == "precond-measured"
                            ? ScalingFitResult.Fit(ScalingPoints.From(combo.Of(f.Variant.Name, optimizer, nqm).Select(p => (p.BatchSize, p.StepsZeroShot))))
                            : predictedFit(optimizer);
                        bool isPrimary = isPrimaryCombo && f.Variant.Name == options.PrimaryVariant && scheme == options.Calibration && nqm != "precond-measured";
                        rows.Add(new SensitivityRow(combo.Checkpoint, combo.FloorPolicy, f.Floor, combo.InitialCondition, facts.Label(f.Variant, optimizer, nqm),
                            CalibrateStage.SchemeLabel(f.Variant, scheme), optimizer, e.MedianAbsLog2, e.Points, e.Slope, b?.MedianAbsLog2, bn?.CriticalBatchSize, bn?.Label ?? "no fit", isPrimary));
                        if (scheme != "zero-shot" && nqm != "precond-measured" && f.Variant.Calibration == "none")
                            tally.Add("e " + optimizer, VerdictRules.NqmBeatsBaseline(optimizer, scheme, e.MedianAbsLog2, b?.MedianAbsLog2, Math.Min(e.Points, b?.Points ?? 0)));
                    }
        }
    }
}
