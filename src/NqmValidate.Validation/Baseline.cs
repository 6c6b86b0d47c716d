namespace NqmValidate.Validation;

/// <summary>The McCandlish baseline's noise scale for one optimizer, with where it came from.</summary>
public sealed record BaselineNoiseScale(string Optimizer, double? BNoise, string Checkpoint, string Source);

/// <summary>
/// McCandlish et al.'s S(B) = S_min (1 + B_noise/B), per optimizer (issue #10 item 6): B_noise measured at the
/// curvature checkpoint whose loss is nearest the target, the optimizer's own trajectory checkpoints first where
/// measured (the noise scale grows during training; the critical
/// batch size is about the end of the run), S_min from the same calibration scheme as every other predictor.
/// SGD and momentum: the gradient noise scale B_simple = tr Σ / |g|². Adam: the preconditioned noise scale
/// tr(PΣ)/gᵀPg with P = h^−1/2 on the GGN diagonal, the p = 0.5 preconditioner the NQM fit uses for Adam,
/// computed per bin of spectrum.csv with |g_i|² corrected for the sampling noise of the mean gradient (c_i/N); at the
/// optimizer's own trajectory checkpoint measured under its own P (a replayed Adam trial), tr(PΣ)/gᵀPg with that P.
/// </summary>
public static class McCandlishBaseline
{
    /// <summary>
    /// The checkpoint whose measured loss is nearest the target. With trajectory checkpoints of the optimizer's own
    /// trials (labelled OPTIMIZER-bB-rR/…) only those compete: the noise scale where that optimizer's trials arrive.
    /// </summary>
    public static CurvatureResults NearestTarget(IReadOnlyList<CurvatureResults> checkpoints, double targetLoss, string? optimizer = null)
    {
        var own = optimizer is null ? [] : checkpoints.Where(c => c.Name?.StartsWith(optimizer + "-b", StringComparison.Ordinal) == true).ToList();
        return (own.Count > 0 ? own : checkpoints).MinBy(c => c.Summary.InitialLoss is double l ? Math.Abs(l - targetLoss) : double.PositiveInfinity)!;
    }

    public static BaselineNoiseScale For(string optimizer, CurvatureResults checkpoint)
    {
        var s = checkpoint.Summary;
        // The optimizer's own trial measured under its own preconditioner: its noise scale as that optimizer sees it.
        if (s.PreconditionedBSimple is double own && checkpoint.Name?.StartsWith(optimizer + "-b", StringComparison.Ordinal) == true)
            return new BaselineNoiseScale(optimizer, own, checkpoint.Label,
                $"tr(PΣ)/gᵀPg with the trial's own P ({s.PreconditionerSource}) at checkpoint {checkpoint.Label} (loss {s.InitialLoss:G3}, summary.json preconditioned)");
        if (optimizer != "adam")
        {
            double? b = s.GradientNoiseScale ?? s.GradientNoiseScaleTwoBatch;
            string source = s.GradientNoiseScale is not null ? "B_simple from per-example variances" : s.GradientNoiseScaleTwoBatch is not null ? "B_simple from the two-batch estimator" : "unavailable";
            return new BaselineNoiseScale(optimizer, b, checkpoint.Label, $"{source} at checkpoint {checkpoint.Label} (loss {s.InitialLoss:G3}, summary.json)");
        }
        double n = s.Examples ?? double.PositiveInfinity;
        double Scale(double power)
        {
            double trace = 0, norm = 0;
            foreach (var bin in checkpoint.Bins.Where(b => b.H > 0 && b.Count > 0 && b.GradMeanSq is not null))
            {
                double p = Math.Pow(bin.H, -power), c = Math.Max(bin.C, 0);
                trace += bin.Count * p * c;
                norm += bin.Count * p * Math.Max(bin.GradMeanSq!.Value - c / n, 0);
            }
            return norm > 0 ? trace / norm : double.NaN;
        }
        double pre = Scale(0.5), plain = Scale(0);
        return new BaselineNoiseScale(optimizer, double.IsFinite(pre) ? pre : null, checkpoint.Label,
            $"tr(PΣ)/gᵀPg with P = h^-0.5 on the GGN diagonal bins at checkpoint {checkpoint.Label} (loss {s.InitialLoss:G3}); the same bins with P = 1 give {plain:G3} (summary.json B_simple: {s.GradientNoiseScale:G3})");
    }
}
