using ScottPlot;
using NqmValidate.Common;

namespace NqmValidate.Reports;

/// <summary>One line of an NQM figure.</summary>
public sealed record NqmSeries(string Label, IReadOnlyList<double> X, IReadOnlyList<double> Y, bool Dashed = false);

/// <summary>
/// The `nqm simulate` figures, written as PNG and SVG with ScottPlot. Log axes are drawn by plotting
/// log10 values with decade ticks labelled 10^k (ScottPlot 5 has no native log scale).
/// </summary>
public static class NqmPlots
{
    /// <summary>Writes <paramref name="pathWithoutExtension"/>.png and .svg atomically.</summary>
    public static void Save(string pathWithoutExtension, string title, string xLabel, string yLabel, IReadOnlyList<NqmSeries> series,
        bool logX = true, bool logY = true, int width = 900, int height = 650)
    {
        var plot = new Plot();
        foreach (var s in series)
        {
            var pts = s.X.Zip(s.Y).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second) && (!logX || p.First > 0) && (!logY || p.Second > 0)).ToArray();
            if (pts.Length == 0) continue;
            var xs = pts.Select(p => logX ? Math.Log10(p.First) : p.First).ToArray();
            var ys = pts.Select(p => logY ? Math.Log10(p.Second) : p.Second).ToArray();
            var sc = plot.Add.Scatter(xs, ys);
            sc.LegendText = s.Label;
            sc.LineWidth = 2;
            sc.MarkerSize = s.Dashed ? 0 : 5;
            if (s.Dashed) sc.LinePattern = LinePattern.Dashed;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        if (logX) plot.Axes.Bottom.TickGenerator = LogTicks();
        if (logY) plot.Axes.Left.TickGenerator = LogTicks();
        plot.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(pathWithoutExtension + ".png", plot.GetImageBytes(width, height, ImageFormat.Png));
        AtomicFile.WriteAllText(pathWithoutExtension + ".svg", plot.GetSvgXml(width, height));
    }

    static ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
    {
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
        IntegerTicksOnly = true,
        LabelFormatter = v => $"1e{v:0}",
    };
}
