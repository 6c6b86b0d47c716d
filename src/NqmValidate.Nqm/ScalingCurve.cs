namespace NqmValidate.Nqm;

/// <summary>
/// Fit of S(B) = S_min (1 + B_noise / B) (McCandlish et al. 2018) to steps-to-target per batch size.
/// <see cref="RSquaredLog"/> is R² of log S (the fit is done in log space so every batch size weighs the
/// same relative error); <see cref="RmsLogResidual"/> is the root-mean-square of ln(S/Ŝ).
/// </summary>
public sealed record ScalingFit(double StepsMin, double BatchNoise, double RSquaredLog, double RmsLogResidual, int Points)
{
    public double Predict(double batchSize) => StepsMin * (1 + BatchNoise / batchSize);
}

public static class ScalingCurve
{
    /// <summary>
    /// Least squares in log space. For a fixed B_noise the best ln S_min is the mean of ln S − ln(1 + B_noise/B)
    /// (closed form), so the fit is a 1-D minimisation over ln B_noise: a dense scan over [ln B_min − 12,
    /// ln B_max + 12] followed by golden-section refinement; B_noise → 0 (pure plateau) and B_noise → ∞
    /// (perfect scaling throughout) are both representable at the ends of the range.
    /// </summary>
    public static ScalingFit Fit(IReadOnlyList<double> batchSizes, IReadOnlyList<double> steps)
    {
        if (batchSizes.Count != steps.Count) throw new NqmArgumentException($"{batchSizes.Count} batch sizes but {steps.Count} step counts");
        var pts = batchSizes.Zip(steps).Where(p => p.First > 0 && p.Second > 0 && double.IsFinite(p.Second)).ToArray();
        if (pts.Length < 2) throw new NqmArgumentException($"scaling fit needs at least 2 points with steps > 0, got {pts.Length}");
        // One point per batch size: a repeated B would count as extra evidence for the fit (two points repeated pass a 3-point minimum with R² = 1).
        if (pts.GroupBy(p => p.First).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new NqmArgumentException($"scaling fit: batch size {dup.Key} appears {dup.Count()} times; give one steps-to-target per batch size");
        var lb = pts.Select(p => p.First).ToArray();
        var ls = pts.Select(p => Math.Log(p.Second)).ToArray();
        (double sse, double lnSmin) Sse(double lnBn)
        {
            double bn = Math.Exp(lnBn), mean = 0;
            for (int i = 0; i < lb.Length; i++) mean += ls[i] - Math.Log(1 + bn / lb[i]);
            mean /= lb.Length;
            double sse = 0;
            for (int i = 0; i < lb.Length; i++) { double r = ls[i] - mean - Math.Log(1 + bn / lb[i]); sse += r * r; }
            return (sse, mean);
        }
        double lo = Math.Log(lb.Min()) - 12, hi = Math.Log(lb.Max()) + 12;
        int scan = 400; double bestX = lo, bestF = double.PositiveInfinity;
        for (int j = 0; j <= scan; j++) { double x = lo + (hi - lo) * j / scan; double f = Sse(x).sse; if (f < bestF) { bestF = f; bestX = x; } }
        double step = (hi - lo) / scan, a = Math.Max(lo, bestX - step), b = Math.Min(hi, bestX + step);
        const double g = 0.6180339887498949;
        for (int it = 0; it < 80; it++)
        {
            double c = b - g * (b - a), d = a + g * (b - a);
            if (Sse(c).sse <= Sse(d).sse) b = d; else a = c;
        }
        double xb = 0.5 * (a + b);
        if (Sse(xb).sse > bestF) xb = bestX;
        var (sseBest, lnS) = Sse(xb);
        double meanLs = ls.Average(), sst = ls.Sum(v => (v - meanLs) * (v - meanLs));
        double r2 = sst > 0 ? 1 - sseBest / sst : 1;
        return new ScalingFit(Math.Exp(lnS), Math.Exp(xb), r2, Math.Sqrt(sseBest / lb.Length), lb.Length);
    }
}
