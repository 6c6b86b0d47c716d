namespace NqmValidate.Curvature;

/// <summary>
/// One row of spectrum.csv: a geometric bin of h within one layer (or the whole network, layer "total").
/// h, c, grad_mean_sq and second_moment are means over the bin's parameters; h_lo/h_hi are the bin edges.
/// </summary>
public sealed record SpectrumBin(string Layer, double H, double C, long Count, double S0, double GradMeanSq, double SecondMoment, double HLo, double HHi);

/// <summary>Power law c ≈ a·h^γ fitted by least squares in log-log over parameters with h, c &gt; 0, and the log-log correlation.</summary>
public sealed record PowerLawFit(double Exponent, double Prefactor, double LogCorrelation, long Points);

/// <summary>The GGN/Fisher diagonal binned into spectrum.csv rows, and the noise-to-curvature power law (the NQM's spectrum type is NqmValidate.Nqm.Spectrum).</summary>
public static class SpectrumBinning
{
    public const string Total = "total";

    /// <summary>
    /// Bins parameters by h into geometric bins aligned to decades (<paramref name="binsPerDecade"/> per factor of
    /// ten), so bin edges do not move between runs. Parameters with h ≤ 0 carry no loss in the NQM and are left
    /// out (their number is reported separately). Rows: one set per layer, then the "total" set.
    /// </summary>
    public static IReadOnlyList<SpectrumBin> Bin(CurvatureDiagonals d, int binsPerDecade)
    {
        if (binsPerDecade < 1) throw new CurvatureInputException($"bins per decade must be ≥ 1; got {binsPerDecade}.");
        var rows = new List<SpectrumBin>();
        foreach (var layer in d.Parameters.GroupBy(p => p.Layer))
            rows.AddRange(BinGroup(layer.Key, layer, binsPerDecade));
        rows.AddRange(BinGroup(Total, d.Parameters, binsPerDecade));
        return rows;
    }

    static IEnumerable<SpectrumBin> BinGroup(string name, IEnumerable<ParameterDiagonal> parameters, int binsPerDecade)
    {
        var sums = new SortedDictionary<long, (double H, double C, long N, double G2, double M2)>();
        foreach (var p in parameters)
        {
            var h = p.Curvature;
            var c = p.NoiseVariance;
            for (int i = 0; i < h.Length; i++)
            {
                if (!(h[i] > 0) || !double.IsFinite(h[i])) continue;
                long key = (long)Math.Floor(Math.Log10(h[i]) * binsPerDecade);
                sums.TryGetValue(key, out var s);
                double g = p.MeanGradient[i];
                sums[key] = (s.H + h[i], s.C + c[i], s.N + 1, s.G2 + g * g, s.M2 + p.SecondMoment[i]);
            }
        }
        foreach (var (key, s) in sums)
            yield return new SpectrumBin(name, s.H / s.N, s.C / s.N, s.N, 1.0, s.G2 / s.N, s.M2 / s.N,
                Math.Pow(10, (double)key / binsPerDecade), Math.Pow(10, (double)(key + 1) / binsPerDecade));
    }

    /// <summary>Parameters with h ≤ 0 (not in any bin).</summary>
    public static long ZeroCurvatureCount(CurvatureDiagonals d) => d.Parameters.Sum(p => (long)p.Curvature.Count(h => !(h > 0)));

    /// <summary>Fits log c = log a + γ log h over every parameter with h &gt; 0 and c &gt; 0.</summary>
    public static PowerLawFit FitNoiseToCurvature(CurvatureDiagonals d)
    {
        double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        long n = 0;
        foreach (var p in d.Parameters)
        {
            var h = p.Curvature;
            var c = p.NoiseVariance;
            for (int i = 0; i < h.Length; i++)
            {
                if (!(h[i] > 0) || !(c[i] > 0)) continue;
                double x = Math.Log(h[i]), y = Math.Log(c[i]);
                sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y; n++;
            }
        }
        if (n < 2) return new PowerLawFit(double.NaN, double.NaN, double.NaN, n);
        double cov = sxy / n - sx / n * (sy / n), vx = sxx / n - Math.Pow(sx / n, 2), vy = syy / n - Math.Pow(sy / n, 2);
        double gamma = cov / vx;
        double intercept = sy / n - gamma * sx / n;
        return new PowerLawFit(gamma, Math.Exp(intercept), cov / Math.Sqrt(vx * vy), n);
    }
}
