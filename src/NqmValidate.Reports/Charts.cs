using ScottPlot;
using NqmValidate.Common;

namespace NqmValidate.Reports;

/// <summary>How a series is drawn.</summary>
public enum SeriesStyle
{
    Line,
    Markers,
    LineAndMarkers,
    /// <summary>Markers with vertical error bars from <see cref="ChartSeries.Low"/> to <see cref="ChartSeries.High"/>.</summary>
    MarkersWithRange,
}

/// <summary>One named series of a chart. Low/High (same length as Y) are optional ranges, e.g. the spread over seeds.</summary>
public sealed record ChartSeries(
    string Label,
    IReadOnlyList<double> X,
    IReadOnlyList<double> Y,
    SeriesStyle Style = SeriesStyle.LineAndMarkers,
    IReadOnlyList<double>? Low = null,
    IReadOnlyList<double>? High = null,
    bool Dashed = false);

/// <summary>A 2-D chart: title, axis labels, whether each axis is logarithmic, and its series.</summary>
public sealed record ChartSpec(
    string Title,
    string XLabel,
    string YLabel,
    IReadOnlyList<ChartSeries> Series,
    bool LogX = false,
    bool LogY = false,
    int Width = 800,
    int Height = 520);

/// <summary>Renders <see cref="ChartSpec"/>s with ScottPlot to PNG and SVG.</summary>
/// <remarks>
/// ScottPlot 5 has no logarithmic axis type: log axes are drawn by plotting log10 of the data and
/// labelling the ticks with powers of ten (with log-spaced minor ticks). Non-positive values cannot
/// be shown on a log axis and are dropped from that series.
/// </remarks>
public static class Charts
{
    public static byte[] Png(ChartSpec spec) => Build(spec).GetImageBytes(spec.Width, spec.Height, ImageFormat.Png);

    public static string Svg(ChartSpec spec) => Build(spec).GetSvgXml(spec.Width, spec.Height);

    /// <summary>Writes DIR/NAME.png and DIR/NAME.svg atomically.</summary>
    public static void Save(ChartSpec spec, string directory, string name)
    {
        AtomicFile.WriteAllBytes(Path.Combine(directory, name + ".png"), Png(spec));
        AtomicFile.WriteAllText(Path.Combine(directory, name + ".svg"), Svg(spec));
    }

    static Plot Build(ChartSpec spec)
    {
        var plot = new Plot();
        plot.Title(spec.Title);
        plot.XLabel(spec.XLabel);
        plot.YLabel(spec.YLabel);
        var palette = new ScottPlot.Palettes.Category10();
        int index = 0;
        foreach (var series in spec.Series)
        {
            var color = palette.GetColor(index++);
            var points = Enumerable.Range(0, series.X.Count)
                .Where(i => Finite(series.X[i], spec.LogX) && Finite(series.Y[i], spec.LogY))
                .ToArray();
            if (points.Length == 0) continue;
            double[] xs = points.Select(i => Map(series.X[i], spec.LogX)).ToArray();
            double[] ys = points.Select(i => Map(series.Y[i], spec.LogY)).ToArray();
            var scatter = plot.Add.Scatter(xs, ys, color);
            scatter.LegendText = series.Label;
            scatter.LineWidth = series.Style is SeriesStyle.Markers or SeriesStyle.MarkersWithRange ? 0 : 2;
            scatter.MarkerSize = series.Style == SeriesStyle.Line ? 0 : 7;
            if (series.Dashed) scatter.LinePattern = LinePattern.Dashed;
            if (series.Style == SeriesStyle.MarkersWithRange && series.Low is not null && series.High is not null)
            {
                foreach (int i in points)
                {
                    if (!Finite(series.Low[i], spec.LogY) || !Finite(series.High[i], spec.LogY)) continue;
                    double x = Map(series.X[i], spec.LogX);
                    var bar = plot.Add.Line(x, Map(series.Low[i], spec.LogY), x, Map(series.High[i], spec.LogY));
                    bar.Color = color;
                    bar.LineWidth = 2;
                }
            }
        }
        if (spec.LogX) UseLogTicks(plot.Axes.Bottom);
        if (spec.LogY) UseLogTicks(plot.Axes.Left);
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    static bool Finite(double v, bool log) => double.IsFinite(v) && (!log || v > 0);

    static double Map(double v, bool log) => log ? Math.Log10(v) : v;

    static void UseLogTicks(ScottPlot.IAxis axis)
    {
        var ticks = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = v => FormatPower(Math.Pow(10, v)),
        };
        axis.TickGenerator = ticks;
    }

    static string FormatPower(double v) =>
        v >= 1e-3 && v < 1e6 ? v.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)
                             : v.ToString("0E0", System.Globalization.CultureInfo.InvariantCulture);
}
