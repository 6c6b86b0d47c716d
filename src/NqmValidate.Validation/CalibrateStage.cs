namespace NqmValidate.Validation;

/// <summary>
/// The calibrate stage: one predictor's curve for one optimizer under one calibration scheme (<see cref="Calibration"/>),
/// on that optimizer's measured points, with the fit point (SGD at the fit curve's batch size) never scored. The NQM's
/// shape is its zero-shot steps; the McCandlish baseline's is 1 + B_noise/B.
/// </summary>
internal static class CalibrateStage
{
    /// <summary>A variant's prediction (through one NQM counterpart of <paramref name="optimizer"/>) in <paramref name="combo"/>, calibrated.</summary>
    public static IReadOnlyList<CalibratedPoint> Nqm(RunFacts facts, Combo combo, string variant, string optimizer, string nqmOptimizer, string scheme)
    {
        var fit = combo.Fits.First(f => f.Variant.Name == variant);
        var points = MeasuredBatchSizes(facts, optimizer)
            .Select(b => new CurvePoint(b, facts.Measured[(optimizer, b)].StepsToTarget,
                combo.Of(variant, optimizer, nqmOptimizer).FirstOrDefault(p => p.BatchSize == b)?.StepsZeroShot))
            .ToArray();
        return Calibration.Apply(scheme, points, hasZeroShot: fit.Variant.Calibration == "none", FitPointFor(facts, optimizer));
    }

    /// <summary>The McCandlish baseline of <paramref name="optimizer"/>, calibrated (it has no zero-shot: no time unit of its own).</summary>
    public static IReadOnlyList<CalibratedPoint> Baseline(RunFacts facts, string optimizer, string scheme)
    {
        double? bn = facts.Baselines.First(b => b.Optimizer == optimizer).BNoise;
        var points = MeasuredBatchSizes(facts, optimizer)
            .Select(b => new CurvePoint(b, facts.Measured[(optimizer, b)].StepsToTarget, bn is double n ? 1 + n / b : null)).ToArray();
        return Calibration.Apply(scheme, points, hasZeroShot: false, FitPointFor(facts, optimizer));
    }

    /// <summary>How a scheme is named in the tables: a divergence-calibrated variant's zero-shot is not zero-shot.</summary>
    public static string SchemeLabel(NqmVariant variant, string scheme) => scheme == "zero-shot" && variant.Calibration == "divergence" ? "calibrated on divergence" : scheme;

    static IEnumerable<double> MeasuredBatchSizes(RunFacts facts, string optimizer) => facts.BatchSizes.Where(b => facts.Measured.ContainsKey((optimizer, b)));

    /// <summary>The fit point is SGD's: other optimizers score every batch size.</summary>
    static double? FitPointFor(RunFacts facts, string optimizer) => optimizer == "sgd" ? facts.FitPointBatchSize : null;
}
