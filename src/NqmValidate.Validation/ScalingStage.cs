namespace NqmValidate.Validation;

/// <summary>
/// scaling.csv's rows and the S(B) curves and fits the verdicts judge: measured per optimizer, and the primary
/// combo's zero-shot per (variant, optimizer).
/// </summary>
internal sealed record ScalingResult(
    IReadOnlyList<ScalingRow> Rows,
    IReadOnlyDictionary<string, ScalingPoints> MeasuredCurves,
    IReadOnlyDictionary<string, ScalingFitResult?> MeasuredFits,
    IReadOnlyDictionary<(string Variant, string Optimizer), ScalingFitResult?> PredictedFits)
{
    /// <summary>An optimizer's measured curve; empty when it was not measured.</summary>
    public ScalingPoints Measured(string optimizer) => MeasuredCurves.GetValueOrDefault(optimizer) ?? new ScalingPoints([], []);
}

/// <summary>
/// The scaling stage: the S(B) = S_min (1 + B_noise/B) fit and the slopes of the optimal learning rate against B,
/// on the measured steps and on each variant's zero-shot prediction; and the zero-shot curves and fits of any combo.
/// </summary>
internal static class ScalingStage
{
    public static ScalingResult Fit(RunFacts facts, Combo primary)
    {
        var rows = new List<ScalingRow>();
        var measuredCurves = new Dictionary<string, ScalingPoints>();
        var measuredFits = new Dictionary<string, ScalingFitResult?>();
        foreach (var optimizer in facts.Optimizers)
        {
            var studies = facts.Inputs.Sweep.Studies.Where(s => s.Optimizer == optimizer).ToArray();
            var curvePoints = ScalingPoints.From(studies.Select(s => ((double)s.BatchSize, s.StepsToTarget)));
            measuredCurves[optimizer] = curvePoints;
            var fit = ScalingFitResult.Fit(curvePoints);
            measuredFits[optimizer] = fit;
            var lrs = studies.Where(s => s.StepsToTarget is not null && s.LearningRate > 0).ToArray();
            rows.Add(Row("measured", optimizer, fit, curvePoints.Count,
                LrSlope(lrs.Select(s => ((double)s.BatchSize, s.LearningRate))),
                LrSlope(lrs.Select(s => ((double)s.BatchSize, EffectiveRate(s.LearningRate, s.Momentum ?? s.Beta1))))));
        }
        var predictedFits = PredictedFits(facts, primary);
        foreach (var group in primary.Predictions.GroupBy(p => (p.Variant, p.Optimizer, p.NqmOptimizer)))
        {
            var predicted = group.Where(p => p.StepsZeroShot is not null).ToArray();
            var points = ScalingPoints.From(predicted.Select(p => (p.BatchSize, p.StepsZeroShot)));
            // An optimizer with several NQM counterparts (Adam, K-FAC) names which one each row is.
            bool several = facts.Inputs.NqmCounterparts.TryGetValue(group.Key.Optimizer, out var names) && names.Count > 1;
            string source = $"nqm {group.Key.Variant}" + (several ? $" [{group.Key.NqmOptimizer}]" : "");
            rows.Add(Row(source, group.Key.Optimizer, ScalingFitResult.Fit(points), points.Count,
                LrSlope(predicted.Select(p => (p.BatchSize, p.LearningRate))), LrSlope(predicted.Select(p => (p.BatchSize, p.EffectiveLearningRate)))));
        }
        return new ScalingResult(rows, measuredCurves, measuredFits, predictedFits);
    }

    /// <summary>
    /// A variant's zero-shot curve per optimizer, from the optimizer's first NQM counterpart that models it in that
    /// variant (<see cref="RunFacts.NqmOptimizersFor"/>: Adam's p = 0.5 mapping on plain spectra, before the measured
    /// preconditioner of diagonal spectra; its own-P mapping on eigen-P spectra).
    /// </summary>
    public static Dictionary<string, ScalingPoints> PredictedCurves(RunFacts facts, Combo combo, string variant)
    {
        var fitted = combo.Fits.FirstOrDefault(f => f.Variant.Name == variant)?.Variant;
        return facts.Optimizers.ToDictionary(o => o, o =>
        {
            string? first = fitted is null ? null : facts.NqmOptimizersFor(o, fitted).FirstOrDefault();
            return ScalingPoints.From(combo.Predictions
                .Where(p => p.Variant == variant && p.Optimizer == o && p.NqmOptimizer == first)
                .Select(p => (p.BatchSize, p.StepsZeroShot)));
        });
    }

    /// <summary>The S(B) fit of every usable variant's zero-shot curve per optimizer (<see cref="PredictedCurves"/>).</summary>
    public static Dictionary<(string Variant, string Optimizer), ScalingFitResult?> PredictedFits(RunFacts facts, Combo combo) =>
        combo.Fits.Where(f => f.Problem is null).SelectMany(f => PredictedCurves(facts, combo, f.Variant.Name)
                .Select(kv => (Key: (f.Variant.Name, kv.Key), Fit: ScalingFitResult.Fit(kv.Value))))
            .ToDictionary(x => x.Key, x => x.Fit);

    /// <summary>Effective learning rate of heavy ball, α/(1−β): the unit in which momentum and SGD learning rates compare.</summary>
    public static double? EffectiveRate(double? lr, double? beta) => lr is double a ? beta is double b && b < 1 ? a / (1 - b) : a : null;

    static ScalingRow Row(string source, string optimizer, ScalingFitResult? fit, int points, double? lrSlope, double? effSlope) =>
        new(source, optimizer, fit?.SMin, fit?.CriticalBatchSize, fit?.Label ?? "fewer than 3 points", fit?.Status ?? "no fit", fit?.RSquaredLog, fit?.RmsLog2Residual, points, lrSlope, effSlope);

    /// <summary>The slope of log(learning rate) against log(B), over the points with a positive rate (null below two).</summary>
    static double? LrSlope(IEnumerable<(double B, double? Lr)> points)
    {
        var p = points.Where(x => x.Lr is > 0).ToArray();
        return p.Length >= 2 ? Stats.Slope(p.Select(x => Math.Log(x.B)).ToArray(), p.Select(x => Math.Log(x.Lr!.Value)).ToArray()) : null;
    }
}
