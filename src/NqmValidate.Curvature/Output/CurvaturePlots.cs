using NqmValidate.Curvature.Spectral;
using ScottPlot;

namespace NqmValidate.Curvature.Output;

/// <summary>
/// PNG views of a curvature report: the distributions of h and c (log10), c against h per bin with the line
/// c = h (the NQM's assumption C = H), the top eigenvalues, and the SLQ spectral density.
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

    static void Save(Plot plot, string path)
    {
        string temp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileNameWithoutExtension(path)}.{Guid.NewGuid():N}.tmp.png");
        try
        {
            plot.SavePng(temp, Width, Height);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    static void Distributions(CurvatureReport r, string path)
    {
        var h = r.Diagonals.Parameters.SelectMany(p => p.Curvature).Where(v => v > 0).Select(Math.Log10).ToArray();
        var c = r.Diagonals.Parameters.SelectMany(p => p.NoiseVariance).Where(v => v > 0).Select(Math.Log10).ToArray();
        var plot = new Plot();
        var all = h.Concat(c).ToArray();
        if (all.Length > 0)
        {
            double lo = all.Min(), hi = all.Max() + 1e-9;
            foreach (var (values, label, color) in new[] { (h, $"h ({r.HSource})", Colors.Blue), (c, "c (noise variance)", Colors.Orange) })
            {
                if (values.Length == 0) continue;
                var hist = ScottPlot.Statistics.Histogram.WithBinCount(60, lo, hi);
                hist.AddRange(values);
                var line = plot.Add.ScatterLine(hist.Bins, hist.Counts.Select(n => (double)n).ToArray(), color);
                line.LegendText = label;
            }
        }
        plot.Title($"{r.Checkpoint}: distribution of per-parameter h and c");
        plot.XLabel("log10 value");
        plot.YLabel("parameters");
        plot.ShowLegend();
        Save(plot, path);
    }

    static void NoiseVersusCurvature(CurvatureReport r, string path)
    {
        var plot = new Plot();
        foreach (var layer in r.Bins.GroupBy(b => b.Layer))
        {
            var bins = layer.Where(b => b.H > 0 && b.C > 0).ToArray();
            if (bins.Length == 0) continue;
            var s = plot.Add.Scatter(bins.Select(b => Math.Log10(b.H)).ToArray(), bins.Select(b => Math.Log10(b.C)).ToArray());
            s.LegendText = layer.Key;
            if (layer.Key == Spectrum.Total) { s.MarkerSize = 9; s.LineWidth = 2; }
            else { s.LineWidth = 0; s.MarkerSize = 5; }
        }
        var positive = r.Bins.Where(b => b.H > 0 && b.C > 0).ToArray();
        if (positive.Length > 0)
        {
            double lo = Math.Min(positive.Min(b => Math.Log10(b.H)), positive.Min(b => Math.Log10(b.C)));
            double hi = Math.Max(positive.Max(b => Math.Log10(b.H)), positive.Max(b => Math.Log10(b.C)));
            var diag = plot.Add.Line(lo, lo, hi, hi);
            diag.LinePattern = LinePattern.Dashed;
            diag.Color = Colors.Black;
            diag.LegendText = "c = h";
        }
        plot.Title($"{r.Checkpoint}: noise c vs curvature h per bin (fit γ = {r.NoiseVsCurvature.Exponent:F2})");
        plot.XLabel("log10 h (bin mean)");
        plot.YLabel("log10 c (bin mean)");
        plot.ShowLegend();
        Save(plot, path);
    }

    static void TopEigenvalues(CurvatureReport r, string path)
    {
        var plot = new Plot();
        foreach (var op in r.Eigen.GroupBy(e => e.Operator))
        {
            var rows = op.OrderBy(e => e.Index).ToArray();
            var s = plot.Add.Scatter(rows.Select(e => (double)e.Index).ToArray(), rows.Select(e => e.Eigenvalue).ToArray());
            s.LegendText = op.Key;
        }
        plot.Title($"{r.Checkpoint}: top eigenvalues (Lanczos)");
        plot.XLabel("index");
        plot.YLabel("eigenvalue");
        plot.ShowLegend();
        Save(plot, path);
    }

    /// <summary>The SLQ nodes smoothed with a Gaussian kernel, on a log10 |λ| axis where most of the mass sits near zero.</summary>
    static void Density(CurvatureReport r, string path)
    {
        var plot = new Plot();
        foreach (var (op, nodes) in r.Density)
        {
            var (xs, ys) = Smooth(nodes, 300);
            var s = plot.Add.ScatterLine(xs, ys);
            s.LegendText = op;
        }
        plot.Title($"{r.Checkpoint}: spectral density (SLQ, Gaussian-smoothed)");
        plot.XLabel("eigenvalue");
        plot.YLabel("density");
        plot.ShowLegend();
        Save(plot, path);
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
