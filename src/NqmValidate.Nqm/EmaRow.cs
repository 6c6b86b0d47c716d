namespace NqmValidate.Nqm;

/// <summary>How D_k = (r^k − γ^k)/(r − γ) of an EMA row is evaluated, by the sign of r = 1 − x.</summary>
internal enum EmaRegime : byte
{
    /// <summary>0 &lt; r ≠ γ: D_k = big^k(1 − (small/big)^k)/(big − small), big and small being the larger and smaller of r, γ.</summary>
    PositiveDistinct,
    /// <summary>r = γ: D_k = k γ^{k−1}.</summary>
    PositiveEqual,
    /// <summary>r = 0 (x = 1): D_k by powers; |G_k| = γ^k is monotone.</summary>
    Zero,
    /// <summary>r &lt; 0 (or not a number): D_k by powers; G_k = Aγ^k + B r^{k+1} may change sign (two-exponential bound).</summary>
    Negative,
}

/// <summary>
/// One row of SGD with an exponential moving average θ̃' = γθ̃ + (1 − γ)θ' of the iterates, the loss measured at θ̃
/// (docs/design/nqm.md): with r = 1 − x, G_k = γ^k + (1−γ) r D_k. N_k = Σ22 − Q_k, Q_k the noiseless evolution of the
/// stationary covariance Σ of (θ, θ̃) split into independent parts θ̃ = κθ + ε: Q_k = (c1 + κγ^k)²Σ11 + γ^{2k} var(θ̃ | θ),
/// c1 = (1−γ) r D_k. Fields of the other regimes are 0.
/// </summary>
internal readonly struct EmaRow
{
    public readonly EmaRegime Regime;
    /// <summary>r = 1 − x.</summary>
    public readonly double R;
    /// <summary>ln γ.</summary>
    public readonly double LogGamma;

    // PositiveDistinct and PositiveEqual: D_k = big^k (1 − (small/big)^k) / (big − small).
    /// <summary>ln big (ln r or ln γ).</summary>
    public readonly double LogBig;
    /// <summary>big − small (0 for PositiveEqual).</summary>
    public readonly double BigMinusSmall;
    /// <summary>ln(small/big) &lt; 0 (0 for PositiveEqual).</summary>
    public readonly double LogSmallOverBig;

    /// <summary>Σ11 = n/(x(2 − x)), the stationary E θ².</summary>
    public readonly double Sigma11;
    /// <summary>κ = Σ12/Σ11 = (1 − γ)/(1 − γr), the regression coefficient of θ̃ on θ.</summary>
    public readonly double Kappa;
    /// <summary>var(θ̃ | θ) = Σ22 − Σ12²/Σ11.</summary>
    public readonly double Sigma22GivenTheta;
    /// <summary>Σ22, the stationary E θ̃² (= N_∞).</summary>
    public readonly double Sigma22;

    // Negative: |G_k| >= |A|γ^k − |B||r|^{k+1}.
    public readonly double AbsA, AbsB;

    /// <param name="x">αPh.</param>
    /// <param name="noise">n = α²P²c/B.</param>
    /// <param name="gamma">γ in (0, 1).</param>
    public EmaRow(double x, double noise, double gamma)
    {
        double r = 1 - x;
        double s11 = noise / (x * (2 - x));
        double gr = gamma * r;
        R = r; LogGamma = Math.Log(gamma);
        if (r > 0)
        {
            // D_k = big^k (1 − (small/big)^k)/(big − small): precompute ln big, ln(small/big), big − small.
            bool rBig = r >= gamma;
            double big = rBig ? r : gamma, small = rBig ? gamma : r;
            LogBig = rBig ? Numerics.LogAbsOneMinus(x) : LogGamma;
            BigMinusSmall = big - small;
            Regime = big == small ? EmaRegime.PositiveEqual : EmaRegime.PositiveDistinct;
            LogSmallOverBig = big == small ? 0 : Numerics.Log1p(-(big - small) / big);
        }
        else Regime = r == 0 ? EmaRegime.Zero : EmaRegime.Negative;
        Sigma11 = s11;
        Kappa = (1 - gamma) / (1 - gr);
        Sigma22GivenTheta = (1 - gamma) * noise * gamma * gamma / ((1 - gr) * (1 - gr) * (1 + gamma));
        Sigma22 = (1 - gamma) * s11 * (1 + gr) / ((1 - gr) * (1 + gamma));
        if (Regime == EmaRegime.Negative)
        {
            // G_k = A γ^k + B r^{k+1}, A = 1 + (1 − γ) r/(γ − r), B = −(1 − γ)/(γ − r).
            AbsA = Math.Abs(1 + (1 - gamma) * r / (gamma - r));
            AbsB = (1 - gamma) / (gamma - r);
        }
    }

    /// <summary>G_k² and N_k at step k &gt;= 1 (<paramref name="gamma"/>: the γ this row was built with).</summary>
    public void Moments(long k, double gamma, out double g2, out double noise)
    {
        double gk = Math.Exp(k * LogGamma);
        double c1 = (1 - gamma) * R * D(k, gamma);
        double g = gk + c1;
        double y = c1 + Kappa * gk;
        g2 = g * g;
        noise = Sigma22 - (y * y * Sigma11 + gk * gk * Sigma22GivenTheta);
    }

    /// <summary>
    /// A lower bound of G_k² on [a, b] for <see cref="EmaRegime.Negative"/>: |G_k| &gt;= |A|γ^b − |B||r|^{a+1}, squared when positive.
    /// </summary>
    public double TwoExponentialLowerBound(long a, long b)
    {
        double lo = AbsA * Math.Exp(b * LogGamma) - AbsB * Math.Pow(Math.Abs(R), a + 1);
        return lo > 0 ? lo * lo : 0;
    }

    /// <summary>D_k = (r^k − γ^k)/(r − γ), continuous through r = γ.</summary>
    double D(long k, double gamma)
    {
        if (R > 0)
        {
            double bk1 = Math.Exp((k - 1) * LogBig);
            if (Regime == EmaRegime.PositiveEqual) return k * bk1;
            double bk = bk1 * Math.Exp(LogBig);
            double e = k * LogSmallOverBig;
            return bk * (e < -0.5 ? 1 - Math.Exp(e) : -Numerics.Expm1(e)) / BigMinusSmall;
        }
        return (Math.Pow(R, k) - Math.Pow(gamma, k)) / (R - gamma);
    }
}
