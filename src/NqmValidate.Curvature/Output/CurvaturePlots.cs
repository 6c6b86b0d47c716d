using NqmValidate.Common;
using NqmValidate.Curvature.Spectral;
using NqmValidate.Reports;

namespace NqmValidate.Curvature.Output;

/// <summary>
/// PNG views of a curvature report, drawn with <see cref="Charts"/>: the distributions of h and c (log10), c against h
/// per bin on log axes with the line c = h (the NQM's assumption C = H), the top eigenvalues, and the SLQ spectral density.
/// </summary>
public static class CurvaturePlots
{
    const int Width = 800, Height = 500;

    public static void WriteAll(CurvatureReport report, string dir)
    {
        Distributions(report, Path.Combine(dir, "h_c_distribution.png"));
        NoiseVersusCurvature(report, Path.Combine(dir, "c_vs_h.png"));
        if (report.Eigen.Count > 0) TopEigenvalues(report, Path.Combine(dir, "eigenvalues.png"));
        if (report.Density.Count > 0) Density(report, Path.Combine(dir, "density.png"));
    }

    static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, bool log = false) =>
        AtomicFile.WriteAllBytes(path, Charts.Png(new ChartSpec(title, xLabel, yLabel, series, LogX: log, LogY: log, Width: Width, Height: Height)));

    static void Distributions(CurvatureReport r, string path)
    {
        var h = r.Diagonals.Parameters.SelectMany(p => p.Curvature).Where(v => v > 0).Select(Math.Log10).ToArray();
        var c = r.Diagonals.Parameters.SelectMany(p => p.NoiseVariance).Where(v => v > 0).Select(Math.Log10).ToArray();
        var series = new List<ChartSeries>();
        var all = h.Concat(c).ToArray();
        if (all.Length > 0)
        {
            double lo = all.Min(), hi = all.Max() + 1e-9;
            foreach (var (values, label) in new[] { (h, $"h ({r.HSource})"), (c, "c (noise variance)") })
            {
                if (values.Length == 0) continue;
                var hist = ScottPlot.Statistics.Histogram.WithBinCount(60, lo, hi);
                hist.AddRange(values);
                series.Add(new ChartSeries(label, hist.Bins, hist.Counts.Select(n => (double)n).ToArray(), SeriesStyle.Line));
            }
        }
        Save(path, $"{r.Checkpoint}: distribution of per-parameter h and c", "log10 value", "parameters", series);
    }

    static void NoiseVersusCurvature(CurvatureReport r, string path)
    {
        var series = new List<ChartSeries>();
        foreach (var layer in r.Bins.GroupBy(b => b.Layer))
        {
            var bins = layer.Where(b => b.H > 0 && b.C > 0).ToArray();
            if (bins.Length == 0) continue;
            series.Add(new ChartSeries(layer.Key, bins.Select(b => b.H).ToArray(), bins.Select(b => b.C).ToArray(),
                layer.Key == SpectrumBinning.Total ? SeriesStyle.LineAndMarkers : SeriesStyle.Markers));
        }
        var positive = r.Bins.Where(b => b.H > 0 && b.C > 0).ToArray();
        if (positive.Length > 0)
        {
            double lo = Math.Min(positive.Min(b => b.H), positive.Min(b => b.C));
            double hi = Math.Max(positive.Max(b => b.H), positive.Max(b => b.C));
            series.Add(new ChartSeries("c = h", [lo, hi], [lo, hi], SeriesStyle.Line, Dashed: true));
        }
        Save(path, $"{r.Checkpoint}: noise c vs curvature h per bin (fit γ = {r.NoiseVsCurvature.Exponent:F2})",
            "h (bin mean)", "c (bin mean)", series, log: true);
    }

    static void TopEigenvalues(CurvatureReport r, string path)
    {
        var series = r.Eigen.GroupBy(e => e.Operator)
            .Select(op =>
            {
                var rows = op.OrderBy(e => e.Index).ToArray();
                return new ChartSeries(op.Key, rows.Select(e => (double)e.Index).ToArray(), rows.Select(e => e.Eigenvalue).ToArray());
            })
            .ToList();
        Save(path, $"{r.Checkpoint}: top eigenvalues (Lanczos)", "index", "eigenvalue", series);
    }

    /// <summary>The SLQ nodes smoothed with a Gaussian kernel.</summary>
    static void Density(CurvatureReport r, string path)
    {
        var series = new List<ChartSeries>();
        foreach (var (op, nodes) in r.Density)
        {
            var (xs, ys) = Smooth(nodes, 300);
            series.Add(new ChartSeries(op, xs, ys, SeriesStyle.Line));
        }
        Save(path, $"{r.Checkpoint}: spectral density (SLQ, Gaussian-smoothed)", "eigenvalue", "density", series);
    }

    internal static (double[] X, double[] Y) Smooth(IReadOnlyList<DensityNode> nodes, int points)
    {
        double lo = nodes.Min(n => n.Eigenvalue), hi = nodes.Max(n => n.Eigenvalue);
        double span = Math.Max(hi - lo, 1e-12), sigma = span / 100;
        lo -= 3 * sigma; hi += 3 * sigma;
        var xs = Enumerable.Range(0, points).Select(i => lo + (hi - lo) * i / (points - 1)).ToArray();
        var ys = xs.Select(x => nodes.Sum(n => n.Weight * Math.Exp(-0.5 * Math.Pow((x - n.Eigenvalue) / sigma, 2)) / (sigma * Math.Sqrt(2 * Math.PI)))).ToArray();
        return (xs, ys);
    }
}
