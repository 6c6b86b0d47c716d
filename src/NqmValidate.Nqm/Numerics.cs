namespace NqmValidate.Nqm;

/// <summary>
/// Accurate expm1/log1p. .NET's double.ExpM1/LogP1 are computed as Exp(x)−1 and Log(1+x), which lose
/// all relative accuracy for small x; the closed forms need them near 0 (x = αh can be 1e-9).
/// Kahan's tricks: exact up to a few ulps for all finite x.
/// </summary>
internal static class Numerics
{
    public static double Expm1(double x)
    {
        // Far from 0 the direct form loses nothing (|result| >= 0.39); only near 0 is Kahan's correction needed.
        if (x < -0.5 || x > 0.5) return Math.Exp(x) - 1.0;
        double u = Math.Exp(x);
        if (u == 1.0) return x;
        double um1 = u - 1.0;
        if (um1 == -1.0) return -1.0;
        if (double.IsPositiveInfinity(u)) return u;
        return um1 * x / Math.Log(u);
    }

    public static double Log1p(double x)
    {
        double u = 1.0 + x;
        if (u == 1.0) return x;
        return Math.Log(u) * x / (u - 1.0);
    }

    /// <summary>ln|1 − x| accurately for x near 0 and near 2.</summary>
    public static double LogAbsOneMinus(double x) => x < 1 ? Log1p(-x) : x == 1 ? double.NegativeInfinity : Log1p(x - 2);
}
