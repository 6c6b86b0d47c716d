namespace NqmValidate.Validation;

/// <summary>predictions.csv, comparison.csv and errors.csv: the primary combo's predictions set against the measured steps.</summary>
internal sealed record PrimaryComparison(IReadOnlyList<PredictionRow> Predictions, IReadOnlyList<ComparisonRow> Comparison, IReadOnlyList<ErrorRow> Errors);

/// <summary>
/// The compare stage, on the primary combo: every usable variant × optimizer × NQM counterpart under the primary
/// calibration scheme point by point (with the zero-shot prediction and the baseline beside it), and its median
/// |log2 error| under every scheme; then the baseline's errors under every scheme that has a measured point to use.
/// </summary>
internal static class CompareStage
{
    public static PrimaryComparison Compare(RunFacts facts, Combo primary)
    {
        string scheme = facts.Options.Calibration;
        var predictions = new List<PredictionRow>();
        var comparison = new List<ComparisonRow>();
        var errors = new List<ErrorRow>();
        foreach (var f in primary.Fits.Where(f => f.Problem is null))
            foreach (var optimizer in facts.Optimizers)
                foreach (var nqm in facts.NqmOptimizersFor(optimizer, f.Variant))
                {
                    string label = facts.Label(f.Variant, optimizer, nqm);
                    var calibrated = CalibrateStage.Nqm(facts, primary, f.Variant.Name, optimizer, nqm, scheme);
                    var zero = CalibrateStage.Nqm(facts, primary, f.Variant.Name, optimizer, nqm, "zero-shot");
                    var baseline = CalibrateStage.Baseline(facts, optimizer, scheme);
                    foreach (var p in primary.Of(f.Variant.Name, optimizer, nqm))
                        predictions.Add(p with { StepsCalibrated = calibrated.FirstOrDefault(c => c.BatchSize == p.BatchSize)?.Predicted });
                    foreach (var c in calibrated)
                    {
                        var m = facts.Measured[(optimizer, c.BatchSize)];
                        var z = zero.First(x => x.BatchSize == c.BatchSize);
                        var bl = baseline.First(x => x.BatchSize == c.BatchSize);
                        comparison.Add(new ComparisonRow(label, optimizer, c.BatchSize, m.StepsToTarget, m.StepsMin, m.StepsMax,
                            z.Predicted, c.Predicted, bl.Predicted, z.Log2, c.Log2, bl.Log2, c.Excluded));
                    }
                    foreach (var s in FitOptions.CalibrationSchemes)
                    {
                        var e = Calibration.Summarize(CalibrateStage.Nqm(facts, primary, f.Variant.Name, optimizer, nqm, s));
                        errors.Add(new ErrorRow(label, optimizer, CalibrateStage.SchemeLabel(f.Variant, s), e.MedianAbsLog2, e.Points, e.Slope));
                    }
                }
        foreach (var optimizer in facts.Optimizers)
            foreach (var s in FitOptions.CalibrationSchemes.Where(s => s != "zero-shot"))
            {
                var e = Calibration.Summarize(CalibrateStage.Baseline(facts, optimizer, s));
                errors.Add(new ErrorRow("mccandlish", optimizer, s, e.MedianAbsLog2, e.Points, e.Slope));
            }
        return new PrimaryComparison(predictions, comparison, errors);
    }
}
