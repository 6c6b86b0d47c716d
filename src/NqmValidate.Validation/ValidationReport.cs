using System.Globalization;
using System.Text.Json;
using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// Builds report.md and report.html of a validation directory from its CSV/JSON files only, so
/// every number shown is traceable to a file of the run (and `nqm report DIR` can rebuild it).
/// </summary>
public static class ValidationReport
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static ReportDocument Build(string directory)
    {
        string F(string name) => Path.Combine(directory, name);
        var comparison = CsvFiles.Read<ComparisonRow>(F(ValidationFileNames.Comparison));
        var predictions = CsvFiles.Read<PredictionRow>(F(ValidationFileNames.Predictions));
        var errors = CsvFiles.Read<ErrorRow>(F(ValidationFileNames.Errors));
        var scaling = CsvFiles.Read<ScalingRow>(F(ValidationFileNames.Scaling));
        var verdicts = CsvFiles.Read<VerdictRow>(F(ValidationFileNames.Verdicts));
        var spectra = CsvFiles.Read<FittedSpectrumRow>(F(ValidationFileNames.Spectra));
        var measured = CsvFiles.Read<MeasuredRow>(F(ValidationFileNames.Measured));
        using var fit = JsonDocument.Parse(File.ReadAllText(F(ValidationFileNames.Fit)));
        string primary = fit.RootElement.GetProperty("primary_variant").GetString()!;
        var optimizers = comparison.Select(c => c.Optimizer).Distinct().ToArray();

        var doc = new ReportDocument("Does the NQM predict this network's batch-size scaling?");
        doc.Add(new Paragraph(
            "Measured steps-to-target per batch size (sweep) against the predictions of a Noisy Quadratic Model fitted to the network's " +
            $"measured curvature and gradient noise. Primary NQM variant: `{primary}`. Zero-shot predictions use no measured steps; " +
            "one-point predictions fit one time-scale factor on the calibration point named below (excluded from scoring); the baseline is " +
            "McCandlish et al.'s S = S_min (1 + B_noise/B) with B_noise from the measured gradient noise scale and the same calibration point."));

        doc.Add(new Heading(1, "Verdicts"));
        doc.Add(new Table(["claim", "measured", "evidence (measured)", "NQM predicts", "evidence (NQM)"],
            verdicts.Select(v => (IReadOnlyList<string>)[v.Claim, v.Measured, v.MeasuredEvidence, v.Predicted, v.PredictedEvidence]).ToList(),
            ValidationFileNames.Verdicts));
        doc.Add(new BulletList(verdicts.Select(v => $"({v.Id}) rule: {v.Rule}").ToList()));

        doc.Add(new Heading(1, "Prediction error: median |log2(predicted / measured)|"));
        var variantsInOrder = errors.Select(e => e.Variant).Distinct().OrderBy(v => v == primary ? 0 : v == "mccandlish" ? 2 : 1).ToArray();
        doc.Add(new Table(["variant", "predictor", .. optimizers],
            errors.GroupBy(e => (e.Variant, e.Predictor))
                .OrderBy(g => Array.IndexOf(variantsInOrder, g.Key.Variant)).ThenBy(g => g.Key.Predictor)
                .Select(g => (IReadOnlyList<string>)[g.Key.Variant, g.Key.Predictor,
                    .. optimizers.Select(o => g.FirstOrDefault(e => e.Optimizer == o) is { } e ? $"{Num(e.MedianAbsLog2, "F2")} (n={e.Points})" : "")])
                .ToList(),
            ValidationFileNames.Errors));
        doc.Add(new Paragraph("0 = exact; 1 = off by a factor of 2. Adam rows name the NQM preconditioner in brackets: p = 0.5 or the measured 1/(√v + ε)."));

        doc.Add(new Heading(1, "Steps to target against batch size"));
        foreach (var optimizer in optimizers)
            doc.Add(new Figure($"steps-{optimizer}.png", Charts.Png(StepsChart(optimizer, primary, comparison, predictions)),
                $"{optimizer}: measured steps-to-target (bars: spread over seeds) and predictions (from {ValidationFileNames.Comparison}, {ValidationFileNames.Predictions})"));
        doc.Add(new Figure("steps-measured.png", Charts.Png(new ChartSpec("Measured steps to target", "batch size", "steps",
            optimizers.Select(o => Measured(o, comparison.Where(c => c.Variant == primary || c.Variant.StartsWith(primary + " [")).ToList())).ToList(), LogX: true, LogY: true)),
            "All optimizers, measured"));

        doc.Add(new Heading(1, "Optimal learning rate against batch size"));
        doc.Add(new Figure("learning-rate.png", Charts.Png(LearningRateChart(primary, predictions, measured)),
            $"Best measured learning rate per batch size ({ValidationFileNames.Measured}) and the NQM-optimal one ({ValidationFileNames.Predictions}); slopes below"));
        doc.Add(new Table(["curve", "optimizer", "S_min", "B_noise (critical batch size)", "R² (log)", "points", "slope of log(lr) vs log(B)"],
            scaling.Select(s => (IReadOnlyList<string>)[s.Source, s.Optimizer, Num(s.SMin, "G4"), Num(s.BNoise, "G4"), Num(s.RSquaredLog, "F3"), s.Points.ToString(Inv), Num(s.LearningRateSlope, "F2")]).ToList(),
            ValidationFileNames.Scaling));

        doc.Add(new Heading(1, "Measured against predicted, point by point (primary variant)"));
        doc.Add(new Table(["optimizer", "B", "measured", "seed min–max", "NQM zero-shot", "NQM one-point", "baseline", "log2 zero-shot", "log2 one-point", "log2 baseline"],
            comparison.Where(c => c.Variant == primary || c.Variant.StartsWith(primary + " ["))
                .Select(c => (IReadOnlyList<string>)[c.Optimizer + (c.CalibrationPoint ? " (calibration point)" : ""), Num(c.BatchSize, "G"), Num(c.MeasuredSteps, "F0"),
                    c.MeasuredMin is null ? "" : $"{Num(c.MeasuredMin, "F0")}–{Num(c.MeasuredMax, "F0")}",
                    Num(c.ZeroShot, "F0"), Num(c.OnePoint, "F0"), Num(c.Baseline, "F0"), Num(c.Log2ZeroShot, "+0.00;-0.00"), Num(c.Log2OnePoint, "+0.00;-0.00"), Num(c.Log2Baseline, "+0.00;-0.00")])
                .ToList(),
            ValidationFileNames.Comparison));

        doc.Add(new Heading(1, "The fitted spectra"));
        foreach (var variant in spectra.Select(s => s.Variant).Distinct().Where(v => !v.Contains("c=h")))
        {
            var rows = spectra.Where(s => s.Variant == variant && s.H > 0 && s.Count > 0).OrderBy(s => s.H).ToArray();
            doc.Add(new Figure($"spectrum-{Slug(variant)}.png", Charts.Png(new ChartSpec($"{variant}: curvature h and noise c per bin", "h", "count / c",
                [new ChartSeries("count of directions", rows.Select(r => r.H).ToArray(), rows.Select(r => r.Count).ToArray(), SeriesStyle.LineAndMarkers),
                 new ChartSeries("c (noise variance)", rows.Select(r => r.H).ToArray(), rows.Select(r => r.C).ToArray(), SeriesStyle.Markers),
                 new ChartSeries("c = h", rows.Select(r => r.H).ToArray(), rows.Select(r => r.H).ToArray(), SeriesStyle.Line, Dashed: true)],
                LogX: true, LogY: true)),
                $"{variant}: distribution of curvature and measured noise against c = h ({ValidationFileNames.Spectra})"));
        }

        doc.Add(new Heading(1, "Calibration choices"));
        doc.Add(new Preformatted(File.ReadAllText(F(ValidationFileNames.Fit))));
        if (File.Exists(F(ValidationFileNames.Provenance)))
        {
            doc.Add(new Heading(1, "Provenance"));
            doc.Add(new Paragraph(MachineLine(F(ValidationFileNames.Provenance))));
            doc.Add(new Preformatted(File.ReadAllText(F(ValidationFileNames.Provenance))));
        }
        return doc;
    }

    /// <summary>
    /// The machine the run's numbers depend on, from provenance.json's `machine` (written by the Training project's
    /// MachineProvenance), and what that means for repeating it.
    /// </summary>
    static string MachineLine(string provenancePath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(provenancePath));
        if (!doc.RootElement.TryGetProperty("machine", out var m) || m.ValueKind != JsonValueKind.Object)
            return "Machine: not recorded (this run predates machine provenance). `nqm verify` re-runs a sample of its trials and reports how closely they repeat here.";
        string S(string name) => m.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "unknown";
        string flags = m.TryGetProperty("cpu_flags", out var f) && f.ValueKind == JsonValueKind.Array
            ? string.Join(" ", f.EnumerateArray().Select(x => x.GetString())) : "unknown";
        string env = m.TryGetProperty("environment", out var e) && e.ValueKind == JsonValueKind.Object && e.EnumerateObject().Any()
            ? string.Join(" ", e.EnumerateObject().Select(p => $"{p.Name}={p.Value.GetString()}")) : "none set";
        return $"Machine: {S("cpu_model")} ({S("cpu_signature")}); SIMD {flags}; ATen CPU capability {S("aten_cpu_capability")}; " +
               $"numerics environment: {env}. The trials repeat bit for bit on a machine of the same kind at the same threads; " +
               "on another CPU they differ in the last bits, which training can amplify (`nqm verify DIR` measures it).";
    }

    /// <summary>Three lines for the terminal: the verdicts in brief and the headline errors.</summary>
    public static IReadOnlyList<string> Summary(string directory)
    {
        var verdicts = CsvFiles.Read<VerdictRow>(Path.Combine(directory, ValidationFileNames.Verdicts));
        var errors = CsvFiles.Read<ErrorRow>(Path.Combine(directory, ValidationFileNames.Errors));
        using var fit = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, ValidationFileNames.Fit)));
        string primary = fit.RootElement.GetProperty("primary_variant").GetString()!;
        string Err(string variant, string predictor) => string.Join(", ", errors.Where(e => e.Variant == variant && e.Predictor == predictor)
            .Select(e => $"{e.Optimizer} {Num(e.MedianAbsLog2, "F2")}"));
        return
        [
            "claims (measured): " + string.Join("  ", verdicts.Select(v => $"({v.Id}) {v.Measured}")),
            "claims (NQM predicts): " + string.Join("  ", verdicts.Where(v => v.Predicted != "—").Select(v => $"({v.Id}) {v.Predicted}")),
            $"median |log2 pred/meas| {primary}: zero-shot {Err(primary, "zero-shot")}; one-point {Err(primary, "one-point")}; baseline {Err("mccandlish", "baseline")}",
        ];
    }

    static ChartSpec StepsChart(string optimizer, string primary, IReadOnlyList<ComparisonRow> comparison, IReadOnlyList<PredictionRow> predictions)
    {
        var series = new List<ChartSeries>();
        var primaryRows = comparison.Where(c => c.Optimizer == optimizer && (c.Variant == primary || c.Variant.StartsWith(primary + " ["))).ToList();
        series.Add(Measured(optimizer, primaryRows));
        foreach (var group in predictions.Where(p => p.Optimizer == optimizer).GroupBy(p => (p.Variant, p.NqmOptimizer)))
        {
            var rows = group.OrderBy(p => p.BatchSize).ToArray();
            string label = group.Key.Variant + (optimizer == "adam" ? $" [{group.Key.NqmOptimizer}]" : "");
            bool isPrimary = group.Key.Variant == primary;
            series.Add(new ChartSeries($"NQM zero-shot {label}", rows.Select(r => r.BatchSize).ToArray(), rows.Select(r => r.StepsZeroShot ?? double.NaN).ToArray(), SeriesStyle.Line));
            if (isPrimary)
                series.Add(new ChartSeries($"NQM one-point {label}", rows.Select(r => r.BatchSize).ToArray(), rows.Select(r => r.StepsOnePoint ?? double.NaN).ToArray(), SeriesStyle.Line, Dashed: true));
        }
        var baseline = primaryRows.GroupBy(c => c.BatchSize).Select(g => g.First()).OrderBy(c => c.BatchSize).ToArray();
        series.Add(new ChartSeries("baseline (McCandlish, one-point)", baseline.Select(c => c.BatchSize).ToArray(), baseline.Select(c => c.Baseline ?? double.NaN).ToArray(), SeriesStyle.Line, Dashed: true));
        return new ChartSpec($"{optimizer}: steps to target", "batch size", "steps", series, LogX: true, LogY: true);
    }

    static ChartSeries Measured(string optimizer, IReadOnlyList<ComparisonRow> rows)
    {
        var m = rows.Where(c => c.Optimizer == optimizer).GroupBy(c => c.BatchSize).Select(g => g.First()).OrderBy(c => c.BatchSize).ToArray();
        return new ChartSeries($"measured {optimizer}", m.Select(c => c.BatchSize).ToArray(), m.Select(c => c.MeasuredSteps ?? double.NaN).ToArray(),
            SeriesStyle.MarkersWithRange, m.Select(c => c.MeasuredMin ?? c.MeasuredSteps ?? double.NaN).ToArray(), m.Select(c => c.MeasuredMax ?? c.MeasuredSteps ?? double.NaN).ToArray());
    }

    static ChartSpec LearningRateChart(string primary, IReadOnlyList<PredictionRow> predictions, IReadOnlyList<MeasuredRow> measured)
    {
        var series = measured.Where(m => m.StepsToTarget is not null && m.LearningRate > 0).GroupBy(m => m.Optimizer)
            .Select(g => new ChartSeries($"measured {g.Key} lr", g.Select(m => m.BatchSize).ToArray(), g.Select(m => m.LearningRate!.Value).ToArray(), SeriesStyle.Markers))
            .ToList();
        series.AddRange(predictions.Where(p => p.Variant == primary).GroupBy(p => (p.Optimizer, p.NqmOptimizer))
            .Select(g => g.OrderBy(p => p.BatchSize).ToArray())
            .Select(rows => new ChartSeries($"NQM {rows[0].Optimizer} [{rows[0].NqmOptimizer}] effective lr", rows.Select(r => r.BatchSize).ToArray(),
                rows.Select(r => r.EffectiveLearningRate ?? double.NaN).ToArray())));
        return new ChartSpec($"NQM-optimal (effective) learning rate, {primary}", "batch size", "learning rate", series, LogX: true, LogY: true);
    }

    static string Num(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, Inv) : "";

    static string Slug(string s) => string.Concat(s.Select(ch => char.IsLetterOrDigit(ch) ? ch : '-'));
}
