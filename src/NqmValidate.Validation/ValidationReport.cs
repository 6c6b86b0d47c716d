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
        var sensitivity = File.Exists(F(ValidationFileNames.Sensitivity)) ? CsvFiles.Read<SensitivityRow>(F(ValidationFileNames.Sensitivity)) : [];
        using var fit = JsonDocument.Parse(File.ReadAllText(F(ValidationFileNames.Fit)));
        var recipe = fit.RootElement.GetProperty("primary_recipe");
        string primary = recipe.GetProperty("variant").GetString()!;
        string scheme = recipe.GetProperty("calibration").GetString()!;
        var optimizers = comparison.Select(c => c.Optimizer).Distinct().ToArray();
        bool IsPrimary(string variant) => variant == primary || variant == primary + " [precond-p0.5]";

        var doc = new ReportDocument("Does the NQM predict this network's batch-size scaling?");
        doc.Add(new Paragraph(
            "Measured steps-to-target per batch size (sweep) against the predictions of a Noisy Quadratic Model fitted to the network's " +
            $"measured curvature and gradient noise. Pre-registered primary recipe (the spec's fit section, fixed before the results): checkpoint `{recipe.GetProperty("checkpoint").GetString()}`, " +
            $"floor `{recipe.GetProperty("floor").GetString()}`, initial condition `{recipe.GetProperty("initial_condition").GetString()}`, variant `{primary}`, calibration `{scheme}`. " +
            "Zero-shot predictions use no measured steps; every calibrated predictor (NQM variants and the per-optimizer McCandlish baseline S = S_min (1 + B_noise/B)) " +
            "is calibrated by the same scheme on each optimizer's own points; calibration points and the floor-fit point are not scored. " +
            $"Floor and initial condition: {Str(fit.RootElement, "fit_curve")}; fit point {Str(fit.RootElement, "fit_point")}."));

        doc.Add(new Heading(1, "Verdicts"));
        doc.Add(new Table(["claim", "measured", "evidence (measured)", "NQM predicts (primary)", "evidence (NQM)", "across recipes"],
            verdicts.Select(v => (IReadOnlyList<string>)[v.Claim, v.Measured, v.MeasuredEvidence, v.Predicted, v.PredictedEvidence, v.Recipes]).ToList(),
            ValidationFileNames.Verdicts));
        doc.Add(new BulletList(verdicts.Select(v => $"({v.Id}) rule: {v.Rule}").ToList()));

        doc.Add(new Heading(1, "Critical batch size and error per optimizer (primary recipe)"));
        ScalingRow? Sc(string source, string o) => scaling.FirstOrDefault(s => s.Source == source && s.Optimizer == o);
        doc.Add(new Table(["optimizer", "B_noise measured", "B_noise NQM", "predicted / measured", $"NQM median |log2| ({scheme})", "slope vs log2 B", $"baseline median |log2| ({scheme})", "slope vs log2 B"],
            optimizers.Select(o =>
            {
                var m = Sc("measured", o);
                var p = Sc($"nqm {primary}", o) ?? Sc($"nqm {primary} [precond-p0.5]", o);
                var e = errors.FirstOrDefault(x => IsPrimary(x.Variant) && x.Optimizer == o && x.Calibration == scheme);
                var bl = errors.FirstOrDefault(x => x.Variant == "mccandlish" && x.Optimizer == o && x.Calibration == scheme);
                return (IReadOnlyList<string>)[o, m?.BNoiseLabel ?? "", p?.BNoiseLabel ?? "",
                    m?.BNoise is double mb && p?.BNoise is double pb ? (pb / mb).ToString("G3", Inv) : "—",
                    e is null ? "" : $"{Num(e.MedianAbsLog2, "F2")} (n={e.Points})", Num(e?.Slope, "+0.00;-0.00"),
                    bl is null ? "" : $"{Num(bl.MedianAbsLog2, "F2")} (n={bl.Points})", Num(bl?.Slope, "+0.00;-0.00")];
            }).ToList(), $"{ValidationFileNames.Scaling}, {ValidationFileNames.Errors}"));
        doc.Add(new Paragraph("B_noise is a number only when the S(B) fit's knee lies within the measured batch sizes and its RMS log2 residual is at most " +
            $"{ScalingFitResult.MaxRmsLog2Residual}; otherwise the label says what the curve shows (e.g. no plateau in the measured range). The slope is that of log2(predicted/measured) " +
            "against log2 B over the scored points: a median can hide a steady trend with B."));

        doc.Add(new Heading(1, "Prediction error: median |log2(predicted / measured)| by calibration scheme"));
        var variantsInOrder = errors.Select(e => e.Variant).Distinct().OrderBy(v => IsPrimary(v) ? 0 : v == "mccandlish" ? 2 : 1).ToArray();
        doc.Add(new Table(["variant", "calibration", .. optimizers],
            errors.GroupBy(e => (e.Variant, e.Calibration))
                .OrderBy(g => Array.IndexOf(variantsInOrder, g.Key.Variant)).ThenBy(g => Array.IndexOf(FitOptions.CalibrationSchemes, g.Key.Calibration))
                .Select(g => (IReadOnlyList<string>)[g.Key.Variant, g.Key.Calibration,
                    .. optimizers.Select(o => g.FirstOrDefault(e => e.Optimizer == o) is { } e && e.Points > 0 ? $"{Num(e.MedianAbsLog2, "F2")} (n={e.Points}, slope {Num(e.Slope, "+0.00;-0.00")})" : "")])
                .ToList(),
            ValidationFileNames.Errors));
        doc.Add(new Paragraph("0 = exact; 1 = off by a factor of 2. Adam rows of diagonal variants name the NQM preconditioner in brackets: p = 0.5 or the measured 1/(√v + ε). " +
            "\"calibrated on divergence\" marks a variant whose curvature scale was set from the sweep's smallest diverging learning rate: it uses no steps-to-target, but it is not zero-shot."));

        doc.Add(new Heading(1, "Steps to target against batch size"));
        foreach (var optimizer in optimizers)
            doc.Add(new Figure($"steps-{optimizer}.png", Charts.Png(StepsChart(optimizer, primary, scheme, comparison, predictions)),
                $"{optimizer}: measured steps-to-target (bars: spread over seeds) and predictions (from {ValidationFileNames.Comparison}, {ValidationFileNames.Predictions})"));
        doc.Add(new Figure("steps-measured.png", Charts.Png(new ChartSpec("Measured steps to target", "batch size", "steps",
            optimizers.Select(o => Measured(o, comparison.Where(c => IsPrimary(c.Variant)).ToList())).ToList(), LogX: true, LogY: true)),
            "All optimizers, measured"));

        var coverage = SearchCoverage.SamePointAtLargeBatchSizes(measured,
            scaling.Where(s => s.Source == "measured").ToDictionary(s => s.Optimizer, s => s.Status == "in range" ? s.BNoise : null));
        doc.Add(new Heading(1, "Optimal learning rate against batch size"));
        if (coverage.Count > 0)
            doc.Add(new BulletList(coverage.Select(c => $"Search coverage — {c} ({ValidationFileNames.Measured})").ToList()));
        doc.Add(new Figure("learning-rate.png", Charts.Png(LearningRateChart(primary, predictions, measured)),
            $"Effective learning rate α/(1−β) (= α for SGD) of the best measured trial ({ValidationFileNames.Measured}) and of the NQM optimum ({ValidationFileNames.Predictions}). " +
            "Adam is left out of the chart: its learning rate acts on normalised gradients, so it has another unit; the table has it."));
        doc.Add(new Table(["optimizer", "B", "measured lr", "measured β", "measured α/(1−β)", "NQM lr", "NQM β", "NQM α/(1−β)"],
            measured.Select(m =>
            {
                var p = predictions.FirstOrDefault(x => x.Variant == primary && x.Optimizer == m.Optimizer && x.BatchSize == m.BatchSize && x.NqmOptimizer != "precond-measured");
                return (IReadOnlyList<string>)[m.Optimizer, Num(m.BatchSize, "G"), Num(m.LearningRate, "G3"), Num(m.Momentum ?? m.Beta1, "G3"), Num(m.EffectiveLearningRate, "G3"),
                    Num(p?.LearningRate, "G3"), Num(p?.Momentum, "G3"), Num(p?.EffectiveLearningRate, "G3")];
            }).ToList(), $"{ValidationFileNames.Measured}, {ValidationFileNames.Predictions}"));
        doc.Add(new Table(["curve", "optimizer", "S_min", "B_noise (critical batch size)", "R² (log)", "RMS log2 residual", "points", "slope of log(lr) vs log(B)", "slope of log(α/(1−β)) vs log(B)"],
            scaling.Select(s => (IReadOnlyList<string>)[s.Source, s.Optimizer, Num(s.SMin, "G4"), s.BNoiseLabel, Num(s.RSquaredLog, "F3"), Num(s.RmsLog2Residual, "F3"), s.Points.ToString(Inv),
                Num(s.LearningRateSlope, "F2"), Num(s.EffectiveLearningRateSlope, "F2")]).ToList(),
            ValidationFileNames.Scaling));

        doc.Add(new Heading(1, "Measured against predicted, point by point (primary recipe)"));
        doc.Add(new Table(["optimizer", "B", "measured", "seed min–max", "NQM zero-shot", $"NQM {scheme}", $"baseline {scheme}", "log2 zero-shot", $"log2 NQM", "log2 baseline", "not scored"],
            comparison.Where(c => IsPrimary(c.Variant))
                .Select(c => (IReadOnlyList<string>)[c.Optimizer, Num(c.BatchSize, "G"), Num(c.MeasuredSteps, "F0"),
                    c.MeasuredMin is null ? "" : $"{Num(c.MeasuredMin, "F0")}–{Num(c.MeasuredMax, "F0")}",
                    Num(c.ZeroShot, "F0"), Num(c.Calibrated, "F0"), Num(c.Baseline, "F0"), Num(c.Log2ZeroShot, "+0.00;-0.00"), Num(c.Log2Calibrated, "+0.00;-0.00"), Num(c.Log2Baseline, "+0.00;-0.00"), c.Excluded ?? ""])
                .ToList(),
            ValidationFileNames.Comparison));

        if (sensitivity.Count > 0)
        {
            doc.Add(new Heading(1, "Sensitivity: every recipe"));
            doc.Add(new Paragraph("Each row is one recipe (curvature checkpoint × floor policy × initial condition × variant); per optimizer the predicted critical batch size " +
                "and the median |log2| error under each calibration scheme (zs = zero-shot, small/large = one point at the smallest/largest batch size, loo = leave-one-out; " +
                "the baseline's errors are in the error table). ★ marks the primary recipe. The primary stays what the spec said, whatever this table shows."));
            string[] schemes = ["zero-shot", "one-point-smallest", "one-point-largest", "leave-one-out"];
            var keyed = sensitivity.Where(r => !r.Variant.EndsWith("[precond-measured]"))
                .GroupBy(r => (r.Checkpoint, r.FloorPolicy, r.InitialCondition, Variant: r.Variant.Replace(" [precond-p0.5]", "")));
            doc.Add(new Table(["checkpoint", "floor", "s0", "variant", .. optimizers.SelectMany(o => new[] { $"{o} B_noise", $"{o} zs / small / large / loo" })],
                keyed.Select(g =>
                {
                    bool star = g.Any(r => r.Primary);
                    double? floor = g.First().Floor;
                    return (IReadOnlyList<string>)[(star ? "★ " : "") + g.Key.Checkpoint, $"{g.Key.FloorPolicy} ({Num(floor, "F3")})", g.Key.InitialCondition, g.Key.Variant,
                        .. optimizers.SelectMany(o =>
                        {
                            var rows = g.Where(r => r.Optimizer == o).ToArray();
                            string bn = rows.FirstOrDefault()?.PredictedBNoiseLabel ?? "";
                            string errs = string.Join(" / ", schemes.Select(sc => rows.FirstOrDefault(r => r.Calibration == sc || (sc == "zero-shot" && r.Calibration == "calibrated on divergence")) is { } r ? Num(r.MedianAbsLog2, "F2") : "—"));
                            return new[] { bn, errs };
                        })];
                }).ToList(), ValidationFileNames.Sensitivity));
        }

        if (File.Exists(F(TrajectoryDrift.FileName)) && TrajectoryDrift.Read(F(TrajectoryDrift.FileName)) is { Count: > 0 } drift)
        {
            doc.Add(new Heading(1, "Curvature along the trajectory"));
            doc.Add(new Paragraph("The curvature and noise measured along real trials (the spec's curvature.trajectory): each optimizer's best trial at a batch size, " +
                "replayed from its recorded configuration and measured at initialisation and where its evaluated training loss first fell below each level and the target. " +
                "λ_max: top GGN eigenvalue; tr GGN: Hutchinson's trace; tr Σ and B_simple = tr Σ/|g|²: per-example gradient noise; overlap: ‖V₁ᵀV₂‖²_F/k of the top-k GGN eigenspaces " +
                "with the previous checkpoint and with initialisation (1 = the same subspace). Each of these checkpoints is also a row of the sensitivity table (TRAJECTORY/CHECKPOINT)."));
            doc.Add(new Table(["trajectory", "checkpoint", "step", "loss", "λ_max", "tr GGN", "tr Σ", "B_simple", "overlap prev.", "overlap init", "2/λ_max", "cost (gradient passes)"],
                drift.Select(d => (IReadOnlyList<string>)[d.Trajectory, d.Checkpoint, d.Step.ToString(Inv), Num(d.Loss, "F3"), Num(d.LambdaMax, "G3"), Num(d.TraceGgn, "G3"),
                    Num(d.TraceSigma, "G3"), Num(d.SimpleNoiseScale, "G3"), Num(d.OverlapPrevious, "F2"), Num(d.OverlapInitial, "F2"),
                    Num(d.LambdaMax is > 0 ? 2 / d.LambdaMax : null, "G3"), Num(d.CostGradientPasses, "F0")]).ToList(),
                TrajectoryDrift.FileName));
        }

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
        var recipe = fit.RootElement.GetProperty("primary_recipe");
        string primary = recipe.GetProperty("variant").GetString()!, scheme = recipe.GetProperty("calibration").GetString()!;
        string Err(Func<string, bool> variant, string calibration) => string.Join(", ", errors.Where(e => variant(e.Variant) && e.Calibration == calibration)
            .Select(e => $"{e.Optimizer} {Num(e.MedianAbsLog2, "F2")}"));
        bool IsPrimary(string v) => v == primary || v == primary + " [precond-p0.5]";
        return
        [
            "claims (measured): " + string.Join("  ", verdicts.Select(v => v.Id == "e" ? $"(e {v.Claim.Split(' ')[1].TrimEnd(':')}) {v.Measured}" : $"({v.Id}) {v.Measured}")),
            "claims (NQM predicts): " + string.Join("  ", verdicts.Where(v => v.Predicted != "—").Select(v => $"({v.Id}) {v.Predicted}")),
            $"median |log2 pred/meas| {primary}: zero-shot {Err(IsPrimary, "zero-shot")}; {scheme} {Err(IsPrimary, scheme)}; baseline {Err(v => v == "mccandlish", scheme)}",
        ];
    }

    static ChartSpec StepsChart(string optimizer, string primary, string scheme, IReadOnlyList<ComparisonRow> comparison, IReadOnlyList<PredictionRow> predictions)
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
                series.Add(new ChartSeries($"NQM {scheme} {label}", rows.Select(r => r.BatchSize).ToArray(), rows.Select(r => r.StepsCalibrated ?? double.NaN).ToArray(), SeriesStyle.Line, Dashed: true));
        }
        var baseline = primaryRows.GroupBy(c => c.BatchSize).Select(g => g.First()).OrderBy(c => c.BatchSize).ToArray();
        series.Add(new ChartSeries($"baseline (McCandlish, {scheme})", baseline.Select(c => c.BatchSize).ToArray(), baseline.Select(c => c.Baseline ?? double.NaN).ToArray(), SeriesStyle.Line, Dashed: true));
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
        // One unit: the effective learning rate α/(1−β) (= α for SGD), in which SGD and heavy ball compare (docs/design/nqm.md §2).
        var series = measured.Where(m => m.StepsToTarget is not null && m.EffectiveLearningRate > 0 && m.Optimizer != "adam").GroupBy(m => m.Optimizer)
            .Select(g => new ChartSeries($"measured {g.Key} α/(1−β)", g.Select(m => m.BatchSize).ToArray(), g.Select(m => m.EffectiveLearningRate!.Value).ToArray(), SeriesStyle.Markers))
            .ToList();
        series.AddRange(predictions.Where(p => p.Variant == primary && p.Optimizer != "adam").GroupBy(p => (p.Optimizer, p.NqmOptimizer))
            .Select(g => g.OrderBy(p => p.BatchSize).ToArray())
            .Select(rows => new ChartSeries($"NQM {rows[0].Optimizer} α/(1−β)", rows.Select(r => r.BatchSize).ToArray(),
                rows.Select(r => r.EffectiveLearningRate ?? double.NaN).ToArray())));
        return new ChartSpec($"Effective learning rate α/(1−β), measured and NQM-optimal ({primary})", "batch size", "α/(1−β)", series, LogX: true, LogY: true);
    }

    static string Str(JsonElement e, string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "none";

    static string Num(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, Inv) : "";

    static string Slug(string s) => string.Concat(s.Select(ch => char.IsLetterOrDigit(ch) ? ch : '-'));
}
