namespace NqmValidate.Nqm;

/// <summary>
/// How the divided difference S_j = (λ1^j − λ2^j)/(λ1 − λ2) of a heavy-ball row is evaluated, by the roots λ1,2 of
/// z² − (1−x+β)z + β. The roots' product is β, so they are σρe^{±ψ}, σρe^{±iφ} or σρ with ρ = √β and
/// σ = sign(1 + β − x); the discriminant is ((1−√β)² − x)((1+√β)² − x).
/// </summary>
internal enum HeavyBallRegime : byte
{
    /// <summary>Real roots far apart (tanh ψ &gt; ½): S_j from the powers λ1^j, λ2^j directly.</summary>
    SeparatedRealRoots,
    /// <summary>Real roots σρe^{±ψ} with tanh ψ &lt;= ½: S_j = σ^{j−1}ρ^{j−1} sinh(jψ)/sinh ψ, no cancellation as ψ → 0.</summary>
    CloseRealRoots,
    /// <summary>Complex roots σρe^{±iφ}: S_j = σ^{j−1}ρ^{j−1} sin(jφ)/sin φ; |G_k| oscillates (phase bound).</summary>
    ComplexRoots,
    /// <summary>λ1 = λ2 = σρ (zero discriminant: x = (1 ± √β)² exactly): S_j = σ^{j−1}ρ^{j−1} j.</summary>
    RepeatedRoot,
}

/// <summary>
/// One row of heavy-ball momentum in closed form (docs/nqm-engine.md, Closed forms): with S_j as in
/// <see cref="HeavyBallRegime"/>, G_k = S_{k+1} − βS_k and N_k = a − Q_k,
/// Q_k = S_k²·v1 + (S_{k+1} − β²S_{k−1})²·a/(1+β)². Fields of the other regimes are 0.
/// </summary>
internal readonly struct HeavyBallRow
{
    public readonly HeavyBallRegime Regime;
    /// <summary>a = n(1+β)/((1−β)x(2+2β−x)): the stationary E θ² (= N_∞).</summary>
    public readonly double Stationary;
    /// <summary>v1 = nβ²/(1−β²): the weight of S_k² in Q_k.</summary>
    public readonly double V1;
    /// <summary>ρ = √β = |λ1λ2|^{1/2}.</summary>
    public readonly double Rho;
    /// <summary>ln ρ.</summary>
    public readonly double LogRho;
    /// <summary>σ = ±1, the sign of 1 + β − x (of the roots' real part).</summary>
    public readonly double Sigma;

    // SeparatedRealRoots: the roots themselves (λ2 = β/λ1) and ln|λ|.
    public readonly double Lambda1, Lambda2, LogAbsLambda1, LogAbsLambda2;

    // CloseRealRoots: λ1,2 = σρe^{±ψ}.
    public readonly double Psi, SinhPsi, CoshPsi;

    // ComplexRoots: λ1,2 = σρe^{±iφ}, and the exact envelope of G: |G_k| = ρ^k (R/sin φ)|sin(kφ + ω)| with
    // R cos ω = cos φ − σρ, R sin ω = sin φ.
    public readonly double Phi, SinPhi, CosPhi;
    /// <summary>ω, the phase of G_k (ComplexRoots).</summary>
    public readonly double Omega;
    /// <summary>(R / sin φ)², the squared amplitude of G_k/ρ^k (ComplexRoots).</summary>
    public readonly double EnvelopeSquared;

    /// <param name="x">αPh.</param>
    /// <param name="noise">n = α²P²c/B.</param>
    /// <param name="beta">β in (0, 1).</param>
    public HeavyBallRow(double x, double noise, double beta)
    {
        double sq = Math.Sqrt(beta);
        double lo = (1 - sq) * (1 - sq), hi = (1 + sq) * (1 + sq);
        double disc = (lo - x) * (hi - x);          // (1+β−x)² − 4β without cancellation
        double m = 0.5 * (1 + beta - x);
        double sigma = m < 0 ? -1 : 1, am = Math.Abs(m);
        LogRho = Math.Log(sq); Rho = sq; Sigma = sigma;
        Stationary = noise * (1 + beta) / ((1 - beta) * x * (2 + 2 * beta - x));
        V1 = noise * beta * beta / ((1 - beta) * (1 + beta));
        if (disc > 0)
        {
            double d = 0.5 * Math.Sqrt(disc), t = d / am;
            if (t > 0.5)
            {
                double l1 = sigma * (am + d);
                Regime = HeavyBallRegime.SeparatedRealRoots;
                Lambda1 = l1; Lambda2 = beta / l1;
                LogAbsLambda1 = Math.Log(Math.Abs(l1)); LogAbsLambda2 = Math.Log(Math.Abs(beta / l1));
            }
            else
            {
                double psi = Math.Atanh(t); // am ± d = ρ(cosh ψ ± sinh ψ) since (am + d)(am − d) = β
                Regime = HeavyBallRegime.CloseRealRoots;
                Psi = psi; SinhPsi = Math.Sinh(psi); CoshPsi = Math.Cosh(psi);
            }
        }
        else if (disc < 0)
        {
            double phi = Math.Atan2(0.5 * Math.Sqrt(-disc), am);
            var (s, c) = Math.SinCos(phi);
            Regime = HeavyBallRegime.ComplexRoots;
            Phi = phi; SinPhi = s; CosPhi = c;
            Omega = Math.Atan2(s, c - sigma * sq);
            double rOverSin = Math.Sqrt((c - sigma * sq) * (c - sigma * sq) + s * s) / s;
            EnvelopeSquared = rOverSin * rOverSin;
        }
        else
        {
            Regime = HeavyBallRegime.RepeatedRoot;
        }
    }

    /// <summary>G_k² and N_k at step k &gt;= 1 (<paramref name="beta"/>: the β this row was built with).</summary>
    public void Moments(long k, double beta, out double g2, out double noise)
    {
        S(k, out double sm, out double s, out double sp);
        double g = sp - beta * s;
        double hh = sp - beta * beta * sm;
        double q = s * s * V1 + hh * hh * Stationary / ((1 + beta) * (1 + beta));
        g2 = g * g;
        noise = Stationary - q;
    }

    /// <summary>
    /// A lower bound of G_k² on [a, b] for <see cref="HeavyBallRegime.ComplexRoots"/>: ρ^{2b}(R/sin φ)²·min sin² over the
    /// phase interval [aφ + ω, bφ + ω] (0 if it contains a multiple of π).
    /// </summary>
    public double PhaseLowerBound(long a, long b)
    {
        double ta = a * Phi + Omega, tb = b * Phi + Omega;
        double minSin2;
        if (tb - ta >= Math.PI) minSin2 = 0;
        else
        {
            double next = (Math.Floor(ta / Math.PI) + 1) * Math.PI;
            if (next <= tb) minSin2 = 0;
            else { double sa = Math.Sin(ta), sb = Math.Sin(tb); minSin2 = Math.Min(sa * sa, sb * sb); }
        }
        return minSin2 == 0 ? 0 : Math.Exp(2 * b * LogRho) * EnvelopeSquared * minSin2;
    }

    /// <summary>S_{k−1}, S_k, S_{k+1} (k &gt;= 1).</summary>
    void S(long k, out double sm, out double s, out double sp)
    {
        switch (Regime)
        {
            case HeavyBallRegime.SeparatedRealRoots:
            {
                double l1 = Lambda1, l2 = Lambda2, den = l1 - l2;
                // λ^{k−1} = sign^{k−1} exp((k−1) ln|λ|) (cheaper than Math.Pow, same accuracy); λ1, λ2 share a sign.
                bool odd = ((k - 1) & 1) == 1;
                double p1 = Math.Exp((k - 1) * LogAbsLambda1), p2 = Math.Exp((k - 1) * LogAbsLambda2);
                if (odd && l1 < 0) { p1 = -p1; p2 = -p2; }
                sm = (p1 - p2) / den;
                s = (p1 * l1 - p2 * l2) / den;
                sp = (p1 * l1 * l1 - p2 * l2 * l2) / den;
                return;
            }
            case HeavyBallRegime.CloseRealRoots:
            {
                // B = σ^{k−1} ρ^{k−1}; BU = B sinh(kψ)/sinh ψ, BC = B cosh(kψ).
                double lnB = (k - 1) * LogRho, kpsi = k * Psi;
                double sign = (Sigma < 0 && ((k - 1) & 1) == 1) ? -1 : 1;
                double bu, bc;
                if (kpsi < 0.5)
                {
                    double bb = Math.Exp(lnB);
                    bu = bb * Math.Sinh(kpsi) / SinhPsi;
                    bc = bb * Math.Cosh(kpsi);
                }
                else
                {
                    double ep = Math.Exp(lnB + kpsi), em = Math.Exp(lnB - kpsi);
                    bu = 0.5 * (ep - em) / SinhPsi;
                    bc = 0.5 * (ep + em);
                }
                bu *= sign; bc *= sign;
                double sr = Sigma * Rho;
                s = bu;
                sp = sr * (bu * CoshPsi + bc);
                sm = (bu * CoshPsi - bc) / sr;
                return;
            }
            case HeavyBallRegime.ComplexRoots:
            {
                double bb = Math.Exp((k - 1) * LogRho);
                if (Sigma < 0 && ((k - 1) & 1) == 1) bb = -bb;
                var (sn, cs) = Math.SinCos(k * Phi);
                double bu = bb * sn / SinPhi, bc = bb * cs;
                double sr = Sigma * Rho;
                s = bu;
                sp = sr * (bu * CosPhi + bc);
                sm = (bu * CosPhi - bc) / sr;
                return;
            }
            default:
            {
                double bb = Math.Exp((k - 1) * LogRho);
                if (Sigma < 0 && ((k - 1) & 1) == 1) bb = -bb;
                double sr = Sigma * Rho;
                s = bb * k;
                sp = sr * bb * (k + 1);
                sm = bb * (k - 1) / sr;
                return;
            }
        }
    }
}
