namespace NqmValidate.Nqm;

/// <summary>
/// One row of constant-rate SGD in closed form (notation of docs/nqm-engine.md: x = αPh, n = α²P²c/B, r = 1 − x):
/// G_k² = r^{2k}, N_k = s*(1 − r^{2k}). Built once per row and configuration (<see cref="LossModel"/>), evaluated at any k.
/// </summary>
internal readonly struct SgdRow
{
    /// <summary>ln r² = 2 ln|1 − x| (−∞ when x = 1), so that r^{2k} = exp(k ln r²) for any sign of r.</summary>
    public readonly double LogR2;
    /// <summary>Stationary second moment s* = n / (1 − r²) = n / (x(2 − x)) (+ the notebook's regulariser in the denominator).</summary>
    public readonly double Stationary;

    /// <param name="x">αPh.</param>
    /// <param name="noise">n = α²P²c/B.</param>
    /// <param name="regularizer">Added to 1 − r² (1e-8 reproduces the notebook, 0 is the exact model).</param>
    public SgdRow(double x, double noise, double regularizer)
    {
        LogR2 = 2 * Numerics.LogAbsOneMinus(x);
        Stationary = noise / (x * (2 - x) + regularizer);
    }

    /// <summary>G_k² and N_k at step k &gt;= 1.</summary>
    public void Moments(long k, out double g2, out double noise)
    {
        double e = k * LogR2;
        double r2k = Math.Exp(e);
        g2 = r2k;
        // 1 − r^{2k}: direct once r^{2k} < e^{-1/2}, accurate expm1 near 1 (tiny x, small k).
        noise = Stationary * (e < -0.5 ? 1 - r2k : -Numerics.Expm1(e));
    }
}
