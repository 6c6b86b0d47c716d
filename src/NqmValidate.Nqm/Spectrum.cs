using System.Collections.Immutable;

namespace NqmValidate.Nqm;

/// <summary>
/// One row of a spectrum: <see cref="Count"/> dimensions sharing curvature <see cref="H"/>,
/// per-example gradient-noise variance <see cref="C"/> and initial second moment <see cref="S0"/> = E θ².
/// <see cref="P"/> is an optional measured diagonal preconditioner for these dimensions (null = none).
/// </summary>
public sealed record SpectrumRow(double H, double C, double S0, double Count, double? P = null);

/// <summary>
/// A (binned) diagonal NQM: loss ½ Σ_i count_i h_i E θ_i². Rows with h = 0 are kept for the record
/// (they carry no loss and do not move under any optimizer: ½ h θ² with h = 0 is flat) and are
/// excluded from the dynamics; h &lt; 0 is rejected (no quadratic has negative curvature). Immutable; built through the named factories.
/// </summary>
public sealed record Spectrum
{
    public ImmutableArray<SpectrumRow> Rows { get; }

    /// <summary>Number of dimensions (sum of counts), including zero-curvature rows.</summary>
    public double Dimensions { get; }

    /// <summary>Dimensions whose curvature is &lt;= 0 (zero-curvature rows): no loss, no dynamics.</summary>
    public double ZeroCurvatureDimensions { get; }

    /// <summary>True when every row carries a measured preconditioner P.</summary>
    public bool HasRowPreconditioner { get; }

    public Spectrum(IEnumerable<SpectrumRow> rows)
    {
        Rows = rows.ToImmutableArray();
        if (Rows.Length == 0) throw new SpectrumFormatException("spectrum has no rows");
        for (int i = 0; i < Rows.Length; i++)
        {
            var r = Rows[i];
            if (!double.IsFinite(r.H)) throw new SpectrumFormatException($"row {i}: h = {r.H} is not finite");
            // A negative curvature is no quadratic's: silently treating it as h = 0 would hide a measurement problem.
            if (r.H < 0) throw new SpectrumFormatException($"row {i}: h = {r.H} must be >= 0 (put flat or negative-curvature directions in an h = 0 row)");
            if (!double.IsFinite(r.C) || r.C < 0) throw new SpectrumFormatException($"row {i}: c = {r.C} must be finite and >= 0");
            if (!double.IsFinite(r.S0) || r.S0 < 0) throw new SpectrumFormatException($"row {i}: s0 = {r.S0} must be finite and >= 0");
            if (!double.IsFinite(r.Count) || r.Count < 0) throw new SpectrumFormatException($"row {i}: count = {r.Count} must be finite and >= 0");
            if (r.P is { } p && (!double.IsFinite(p) || p <= 0)) throw new SpectrumFormatException($"row {i}: preconditioner p = {p} must be finite and > 0");
        }
        Dimensions = Rows.Sum(r => r.Count);
        ZeroCurvatureDimensions = Rows.Where(r => r.H <= 0).Sum(r => r.Count);
        HasRowPreconditioner = Rows.All(r => r.P.HasValue);
        if (!Rows.Any(r => r.H > 0 && r.Count > 0))
            throw new SpectrumFormatException("spectrum has no row with h > 0 and count > 0: the loss is identically zero");
    }

    /// <summary>Largest curvature among rows with count &gt; 0.</summary>
    public double MaxCurvature => Rows.Where(r => r.Count > 0).Max(r => r.H);

    /// <summary>Smallest positive curvature among rows with count &gt; 0.</summary>
    public double MinPositiveCurvature => Rows.Where(r => r.Count > 0 && r.H > 0).Min(r => r.H);

    /// <summary>Expected loss at step 0: ½ Σ count h s0.</summary>
    public double InitialLoss => Rows.Where(r => r.H > 0).Sum(r => 0.5 * r.H * r.S0 * r.Count);

    /// <summary>
    /// The paper's spectrum h_i = 1/i^exponent, i = 1..dimensions, c_i = noiseScale · h_i, s0 = 1.
    /// With <paramref name="bins"/> the notebook's compression is applied exactly: bin edges are
    /// numpy.geomspace(h_max, h_min, bins); walking h in descending order, each h_i goes to the first
    /// edge at or below it (h rounded DOWN to an edge), and each row is (edge, count) — empty edges
    /// are kept with count 0, as the notebook keeps them (they carry no loss).
    /// </summary>
    public static Spectrum PaperPowerLaw(int dimensions = 10_000, double exponent = 1.0, int? bins = 100, double noiseScale = 1.0, double s0 = 1.0)
    {
        if (dimensions < 1) throw new NqmArgumentException($"dimensions = {dimensions}: must be >= 1");
        if (!(exponent > 0)) throw new NqmArgumentException($"exponent = {exponent}: must be > 0");
        if (!(noiseScale >= 0)) throw new NqmArgumentException($"noise scale = {noiseScale}: must be >= 0");
        var full = new double[dimensions];
        for (int i = 0; i < dimensions; i++) full[i] = exponent == 1.0 ? 1.0 / (i + 1) : 1.0 / Math.Pow(i + 1, exponent);
        if (bins is null)
            return new Spectrum(full.Select(h => new SpectrumRow(h, noiseScale * h, s0, 1)));
        int nb = bins.Value;
        if (nb < 2) throw new NqmArgumentException($"bins = {nb}: must be >= 2");
        var edges = NumpyCompat.Geomspace(full[0], full[^1], nb);
        var counts = new double[nb];
        int cur = 0, k = 0;
        // Literal transcription of the notebook's binning loop (toy_problem).
        while (k < dimensions)
        {
            while (k < dimensions && full[k] >= edges[cur]) { counts[cur] += 1; k++; }
            cur++;
            if (cur >= nb && k < dimensions)
                throw new InvalidOperationException("binning ran past the last edge (cannot happen: the last edge is h_min)");
        }
        return new Spectrum(Enumerable.Range(0, nb).Select(j => new SpectrumRow(edges[j], noiseScale * edges[j], s0, counts[j])));
    }

    /// <summary>
    /// Bins measured per-parameter arrays into <paramref name="bins"/> geometric bins of h between the
    /// smallest and largest positive h. Each row holds the bin means of h, c, s0 (and P when given) and
    /// the count. Entries with h &lt;= 0 (zero or negative measured curvature: flat or non-convex
    /// directions that a convex quadratic cannot represent) are collected into one separate row with
    /// h = 0 (mean c and s0 of those entries): it is reported, contributes no loss and no dynamics.
    /// </summary>
    public static Spectrum FromParameters(ReadOnlySpan<double> h, ReadOnlySpan<double> c, int bins,
        ReadOnlySpan<double> s0 = default, ReadOnlySpan<double> preconditioner = default)
    {
        if (bins < 1) throw new NqmArgumentException($"bins = {bins}: must be >= 1");
        if (h.Length == 0) throw new SpectrumFormatException("no parameters given (h is empty)");
        if (c.Length != h.Length) throw new SpectrumFormatException($"c has {c.Length} entries, h has {h.Length}");
        if (!s0.IsEmpty && s0.Length != h.Length) throw new SpectrumFormatException($"s0 has {s0.Length} entries, h has {h.Length}");
        if (!preconditioner.IsEmpty && preconditioner.Length != h.Length) throw new SpectrumFormatException($"preconditioner has {preconditioner.Length} entries, h has {h.Length}");
        double lo = double.PositiveInfinity, hi = 0;
        for (int i = 0; i < h.Length; i++)
        {
            if (!double.IsFinite(h[i])) throw new SpectrumFormatException($"parameter {i}: h = {h[i]} is not finite");
            if (!double.IsFinite(c[i]) || c[i] < 0) throw new SpectrumFormatException($"parameter {i}: c = {c[i]} must be finite and >= 0");
            if (h[i] > 0) { lo = Math.Min(lo, h[i]); hi = Math.Max(hi, h[i]); }
        }
        var sh = new double[bins + 1]; var sc = new double[bins + 1]; var ss = new double[bins + 1]; var sp = new double[bins + 1]; var n = new double[bins + 1];
        double logLo = Math.Log(lo), span = hi > lo ? Math.Log(hi) - logLo : 0;
        for (int i = 0; i < h.Length; i++)
        {
            int b;
            if (h[i] <= 0) b = bins; // the zero-curvature row
            else b = span == 0 ? 0 : Math.Min(bins - 1, (int)((Math.Log(h[i]) - logLo) / span * bins));
            sh[b] += Math.Max(h[i], 0); sc[b] += c[i]; ss[b] += s0.IsEmpty ? 1.0 : s0[i]; sp[b] += preconditioner.IsEmpty ? 0 : preconditioner[i]; n[b]++;
        }
        var rows = new List<SpectrumRow>();
        for (int b = bins - 1; b >= 0; b--) // descending h, like the paper's spectrum
            if (n[b] > 0) rows.Add(new SpectrumRow(sh[b] / n[b], sc[b] / n[b], ss[b] / n[b], n[b], preconditioner.IsEmpty ? null : sp[b] / n[b]));
        if (n[bins] > 0) rows.Add(new SpectrumRow(0, sc[bins] / n[bins], ss[bins] / n[bins], n[bins], preconditioner.IsEmpty ? null : Math.Max(sp[bins] / n[bins], double.Epsilon)));
        if (double.IsPositiveInfinity(lo)) throw new SpectrumFormatException("every parameter has h <= 0: the quadratic has no curvature to fit");
        return new Spectrum(rows);
    }

    /// <summary>The same spectrum with noise c scaled by <paramref name="factor"/> (e.g. to tie c = factor·h).</summary>
    public Spectrum WithNoiseScaled(double factor) => new(Rows.Select(r => r with { C = r.C * factor }));
}

/// <summary>numpy's linspace/logspace/geomspace, reproduced operation by operation so grids match bit for bit.</summary>
public static class NumpyCompat
{
    /// <summary>numpy.linspace(start, stop, num): start + i·step with step = (stop-start)/(num-1), last = stop.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        if (num == 1) { y[0] = start; return y; }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) y[i] = i * step + start;
        y[^1] = stop;
        return y;
    }

    /// <summary>numpy.logspace(start, stop, num) = 10 ** linspace(start, stop, num).</summary>
    public static double[] Logspace(double start, double stop, int num) => Linspace(start, stop, num).Select(v => Math.Pow(10, v)).ToArray();

    /// <summary>numpy.geomspace(start, stop, num) for positive start/stop: logspace of log10, endpoints set exactly.</summary>
    public static double[] Geomspace(double start, double stop, int num)
    {
        var y = Logspace(Math.Log10(start), Math.Log10(stop), num);
        y[0] = start; y[^1] = stop;
        return y;
    }
}
