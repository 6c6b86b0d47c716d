namespace NqmValidate.Validation;

/// <summary>
/// One combo: a curvature checkpoint × floor policy × initial condition, with every variant fitted for it and their
/// zero-shot predictions (<see cref="PredictionRow.StepsCalibrated"/> still empty). A recipe is a combo × variant ×
/// calibration scheme; the primary combo is the spec's, the sensitivity table covers every combo.
/// </summary>
internal sealed record Combo(string Checkpoint, string FloorPolicy, string InitialCondition, IReadOnlyList<VariantFit> Fits, IReadOnlyList<PredictionRow> Predictions)
{
    /// <summary>The zero-shot predictions of one (variant, optimizer, NQM optimizer), in batch-size order.</summary>
    public IEnumerable<PredictionRow> Of(string variant, string optimizer, string nqmOptimizer) =>
        Predictions.Where(p => p.Variant == variant && p.Optimizer == optimizer && p.NqmOptimizer == nqmOptimizer);
}

/// <summary>
/// The predict stage: fit every variant of a checkpoint for one combo (<see cref="FitStage"/>), then the NQM optimum
/// (hyperparameters and steps to the target excess) of every usable variant × optimizer × NQM counterpart × batch size.
/// Zero-shot: no measured steps are read.
/// </summary>
internal static class PredictStage
{
    public static Combo Predict(RunFacts facts, CurvatureResults checkpoint, string floorPolicy, string initialCondition, IProgress<string>? progress)
    {
        var options = facts.Options;
        var fits = FitStage.FitAll(facts, checkpoint, floorPolicy, initialCondition);
        var tasks = fits.Where(f => f.Problem is null)
            .SelectMany(f => facts.Optimizers.SelectMany(o => facts.NqmOptimizersFor(o, f.Variant).SelectMany(n => facts.BatchSizes.Select(b => (f, o, n, b)))))
            .ToArray();
        progress?.Report($"predict checkpoint {checkpoint.Label}, floor {floorPolicy}, s0 {initialCondition}: {tasks.Length} NQM optima");
        var predictions = tasks.AsParallel().AsOrdered().Select(t =>
        {
            var optimum = t.f.Variant.Segments is { } pieces
                ? NqmAdapter.OptimizePiecewise(pieces, t.n, t.b, options.Search == "grid")
                : t.f.Variant.EosMargin > 0
                ? NqmAdapter.OptimizeEosAware(t.f.Variant.Bins, t.n, t.b, t.f.TargetExcess, options.Search == "grid", options.AdamEpsilon, t.f.Variant.EosMargin)
                : NqmAdapter.Optimize(t.f.Variant.Bins, t.n, t.b, t.f.TargetExcess, options.Search == "grid", options.AdamEpsilon);
            return new PredictionRow(t.f.Variant.Name, t.o, t.n, t.b, optimum?.Steps, null, optimum?.LearningRate, optimum?.Momentum, optimum?.EffectiveLearningRate, optimum?.CurvatureCap);
        }).ToList();
        return new Combo(checkpoint.Label, floorPolicy, initialCondition, fits, predictions);
    }
}
