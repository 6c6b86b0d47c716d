using System.Globalization;
using System.Text.Json;
using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// What the report of a validation directory reads, all of it read once by <see cref="Read"/>: the CSV files the fit
/// wrote, fit.json's primary recipe and text, and where present drift.csv and provenance.json.
/// </summary>
internal sealed record ReportFiles(
    IReadOnlyList<ComparisonRow> Comparison,
    IReadOnlyList<PredictionRow> Predictions,
    IReadOnlyList<ErrorRow> Errors,
    IReadOnlyList<ScalingRow> Scaling,
    IReadOnlyList<VerdictRow> Verdicts,
    IReadOnlyList<FittedSpectrumRow> Spectra,
    IReadOnlyList<MeasuredRow> Measured,
    IReadOnlyList<SensitivityRow> Sensitivity,
    IReadOnlyList<MeasuredDrift> Drift,
    IReadOnlyList<NqmValidate.Formats.TargetStepsRow> ByTarget,
    Recipe Recipe,
    string FitCurve,
    string FitPoint,
    string FitJson,
    string? ProvenanceJson)
{
    /// <summary>The primary recipe's variant.</summary>
    public string Primary => Recipe.Variant;

    /// <summary>The primary recipe's calibration scheme.</summary>
    public string Scheme => Recipe.Calibration;

    /// <summary>The optimizers compared, in comparison.csv's order.</summary>
    public string[] Optimizers { get; } = Comparison.Select(c => c.Optimizer).Distinct().ToArray();

    /// <summary>Whether a comparison/error label is the primary variant's (Adam's rows name the p = 0.5 preconditioner).</summary>
    public bool IsPrimary(string variant) => ValidationReport.IsPrimaryLabel(variant, Primary);

    public static ReportFiles Read(string directory)
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
        string fitJson = File.ReadAllText(F(ValidationFileNames.Fit));
        using var fit = JsonDocument.Parse(fitJson);
        var recipe = fit.RootElement.GetProperty("primary_recipe");
        string R(string key) => recipe.GetProperty(key).GetString()!;
        var primaryRecipe = new Recipe(R("checkpoint"), R("floor"), R("initial_condition"), R("variant"), R("calibration"));
        var drift = File.Exists(F(TrajectoryDrift.FileName)) ? TrajectoryDrift.Read(F(TrajectoryDrift.FileName)) : [];
        string? provenance = File.Exists(F(ValidationFileNames.Provenance)) ? File.ReadAllText(F(ValidationFileNames.Provenance)) : null;
        var byTarget = File.Exists(F(ValidationFileNames.StepsByTarget)) ? NqmValidate.Formats.TargetStepsFile.Read(F(ValidationFileNames.StepsByTarget)) : [];
        return new ReportFiles(comparison, predictions, errors, scaling, verdicts, spectra, measured, sensitivity, drift, byTarget, primaryRecipe,
            Str(fit.RootElement, "fit_curve"), Str(fit.RootElement, "fit_point"), fitJson, provenance);
    }

    static string Str(JsonElement e, string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "none";
}

/// <summary>
/// Builds report.md and report.html of a validation directory from its CSV/JSON files only, so
/// every number shown is traceable to a file of the run (and `nqm report DIR` can rebuild it).
/// <see cref="Build"/> reads the files once (<see cref="ReportFiles"/>) and adds one section after another; each
/// section is a method from those records to the report's blocks.
/// </summary>
public static class ValidationReport
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static ReportDocument Build(string directory)
    {
        var files = ReportFiles.Read(directory);
        var doc = new ReportDocument("Does the NQM predict this network's batch-size scaling?");
        IEnumerable<ReportBlock>[] sections =
        [
            Introduction(files), Verdicts(files), CriticalBatchSizes(files), PredictionErrors(files), StepsToTarget(files), StepsByTarget(files),
            LearningRates(files), PointByPoint(files), Sensitivity(files), CurvatureAlongTheTrajectory(files), FittedSpectra(files),
            CalibrationChoices(files), Provenance(files),
        ];
        foreach (var block in sections.SelectMany(s => s)) doc.Add(block);
        return doc;
    }

    /// <summary>
    /// Whether a comparison/error/scaling label is the primary variant's. An optimizer with several NQM counterparts names
    /// each in brackets; its first counterpart is the primary recipe's (the one verdict (e) scores): Adam's p = 0.5, K-FAC's
    /// damped power-1 preconditioner (`precond-p1-d` and its λ).
    /// </summary>
    internal static bool IsPrimaryLabel(string variant, string primary) =>
        variant == primary || variant == primary + " [precond-p0.5]"
        || (variant.StartsWith(primary + " [precond-p1-d", StringComparison.Ordinal) && variant.EndsWith(']'));

    /// <summary>The primary recipe's NQM row of scaling.csv for one optimizer.</summary>
    internal static ScalingRow? PrimaryScaling(IEnumerable<ScalingRow> scaling, string primary, string optimizer) =>
        scaling.FirstOrDefault(s => s.Optimizer == optimizer && s.Source.StartsWith("nqm ", StringComparison.Ordinal) && IsPrimaryLabel(s.Source[4..], primary));

    static IEnumerable<ReportBlock> Introduction(ReportFiles f)
    {
        var recipe = f.Recipe;
        yield return new Paragraph(
            "Measured steps-to-target per batch size (sweep) against the predictions of a Noisy Quadratic Model fitted to the network's " +
            $"measured curvature and gradient noise. Pre-registered primary recipe (the spec's fit section, fixed before the results): checkpoint `{recipe.Checkpoint}`, " +
            $"floor `{recipe.Floor}`, initial condition `{recipe.InitialCondition}`, variant `{recipe.Variant}`, calibration `{recipe.Calibration}`. " +
            "Zero-shot predictions use no measured steps; every calibrated predictor (NQM variants and the per-optimizer McCandlish baseline S = S_min (1 + B_noise/B)) " +
            "is calibrated by the same scheme on each optimizer's own points; calibration points and the floor-fit point are not scored. " +
            $"Floor and initial condition: {f.FitCurve}; fit point {f.FitPoint}.");
    }

    static IEnumerable<ReportBlock> Verdicts(ReportFiles f)
    {
        yield return new Heading(1, "Verdicts");
        yield return new Table(["claim", "measured", "evidence (measured)", "NQM predicts (primary)", "evidence (NQM)", "across recipes"],
            f.Verdicts.Select(v => (IReadOnlyList<string>)[v.Claim, v.Measured, v.MeasuredEvidence, v.Predicted, v.PredictedEvidence, v.Recipes]).ToList(),
            ValidationFileNames.Verdicts);
        // A claim judged per optimizer or trajectory under one rule ((j), (k)) states it once.
        yield return new BulletList(f.Verdicts.Select(v => $"({v.Id}) rule: {v.Rule}").Distinct().ToList());
    }

    static IEnumerable<ReportBlock> CriticalBatchSizes(ReportFiles f)
    {
        string primary = f.Primary, scheme = f.Scheme;
        ScalingRow? Sc(string source, string o) => f.Scaling.FirstOrDefault(s => s.Source == source && s.Optimizer == o);
        yield return new Heading(1, "Critical batch size and error per optimizer (primary recipe)");
        yield return new Table(["optimizer", "B_noise measured", "B_noise NQM", "predicted / measured", $"NQM median |log2| ({scheme})", "slope vs log2 B", $"baseline median |log2| ({scheme})", "slope vs log2 B"],
            f.Optimizers.Select(o =>
            {
                var m = Sc("measured", o);
                var p = PrimaryScaling(f.Scaling, primary, o);
                var e = f.Errors.FirstOrDefault(x => f.IsPrimary(x.Variant) && x.Optimizer == o && x.Calibration == scheme);
                var bl = f.Errors.FirstOrDefault(x => x.Variant == "mccandlish" && x.Optimizer == o && x.Calibration == scheme);
                return (IReadOnlyList<string>)[o, m?.BNoiseLabel ?? "", p?.BNoiseLabel ?? "",
                    m?.BNoise is double mb && p?.BNoise is double pb ? (pb / mb).ToString("G3", Inv) : "—",
                    e is null ? "" : $"{Num(e.MedianAbsLog2, "F2")} (n={e.Points})", Num(e?.Slope, Numbers.SignedFormat),
                    bl is null ? "" : $"{Num(bl.MedianAbsLog2, "F2")} (n={bl.Points})", Num(bl?.Slope, Numbers.SignedFormat)];
            }).ToList(), $"{ValidationFileNames.Scaling}, {ValidationFileNames.Errors}");
        yield return new Paragraph("B_noise is a number only when the S(B) fit's knee lies within the measured batch sizes and its RMS log2 residual is at most " +
            $"{ScalingFitResult.MaxRmsLog2Residual}; otherwise the label says what the curve shows (e.g. no plateau in the measured range). The slope is that of log2(predicted/measured) " +
            "against log2 B over the scored points: a median can hide a steady trend with B.");
    }

    static IEnumerable<ReportBlock> PredictionErrors(ReportFiles f)
    {
        yield return new Heading(1, "Prediction error: median |log2(predicted / measured)| by calibration scheme");
        var variantsInOrder = f.Errors.Select(e => e.Variant).Distinct().OrderBy(v => f.IsPrimary(v) ? 0 : v == "mccandlish" ? 2 : 1).ToArray();
        yield return new Table(["variant", "calibration", .. f.Optimizers],
            f.Errors.GroupBy(e => (e.Variant, e.Calibration))
                .OrderBy(g => Array.IndexOf(variantsInOrder, g.Key.Variant)).ThenBy(g => Array.IndexOf(FitOptions.CalibrationSchemes, g.Key.Calibration))
                .Select(g => (IReadOnlyList<string>)[g.Key.Variant, g.Key.Calibration,
                    .. f.Optimizers.Select(o => g.FirstOrDefault(e => e.Optimizer == o) is { } e && e.Points > 0 ? $"{Num(e.MedianAbsLog2, "F2")} (n={e.Points}, slope {Num(e.Slope, Numbers.SignedFormat)})" : "")])
                .ToList(),
            ValidationFileNames.Errors);
        yield return new Paragraph("0 = exact; 1 = off by a factor of 2. Adam rows of diagonal variants name the NQM preconditioner in brackets: p = 0.5 or the measured 1/(√v + ε). " +
            "\"calibrated on divergence\" marks a variant whose curvature scale was set from the sweep's smallest diverging learning rate: it uses no steps-to-target, but it is not zero-shot.");
    }

    static IEnumerable<ReportBlock> StepsToTarget(ReportFiles f)
    {
        yield return new Heading(1, "Steps to target against batch size");
        foreach (var optimizer in f.Optimizers)
            yield return new Figure($"steps-{optimizer}.png", Charts.Png(StepsChart(optimizer, f.Primary, f.Scheme, f.Comparison, f.Predictions)),
                $"{optimizer}: measured steps-to-target (bars: spread over seeds) and predictions (from {ValidationFileNames.Comparison}, {ValidationFileNames.Predictions})");
        yield return new Figure("steps-measured.png", Charts.Png(new ChartSpec("Measured steps to target", "batch size", "steps",
            f.Optimizers.Select(o => Measured(o, f.Comparison.Where(c => f.IsPrimary(c.Variant)).ToList())).ToList(), LogX: true, LogY: true)),
            "All optimizers, measured");
    }

    /// <summary>With looser targets recorded: each optimizer's measured S(B) at every target (claim (i)'s curves).</summary>
    static IEnumerable<ReportBlock> StepsByTarget(ReportFiles f)
    {
        if (f.ByTarget.Count == 0) yield break;
        yield return new Heading(1, "Steps to target at each target");
        foreach (var optimizer in f.ByTarget.Select(r => r.Optimizer).Distinct())
        {
            var series = f.ByTarget.Where(r => r.Optimizer == optimizer).GroupBy(r => r.Target).OrderByDescending(g => g.Key)
                .Select(g => g.OrderBy(r => r.BatchSize).ToArray())
                .Select(rows => new ChartSeries($"target {rows[0].Target.ToString("G3", Inv)}", rows.Select(r => (double)r.BatchSize).ToArray(),
                    rows.Select(r => r.StepsToTarget is { } s ? (double)s : double.NaN).ToArray(), SeriesStyle.Markers))
                .ToList();
            yield return new Figure($"steps-by-target-{Slug(optimizer)}.png", Charts.Png(new ChartSpec($"{optimizer}: measured steps at each target", "batch size", "steps", series, LogX: true, LogY: true)),
                $"{optimizer}: the fewest steps to each target over the study's trials, every trial recording its crossings of the looser targets on its way to the study's own ({ValidationFileNames.StepsByTarget}); claim (i) fits each curve's critical batch size (Verdicts).");
        }
    }

    static IEnumerable<ReportBlock> LearningRates(ReportFiles f)
    {
        var coverage = SearchCoverage.SamePointAtLargeBatchSizes(f.Measured,
            f.Scaling.Where(s => s.Source == "measured").ToDictionary(s => s.Optimizer, s => s.Status == "in range" ? s.BNoise : null));
        yield return new Heading(1, "Optimal learning rate against batch size");
        if (coverage.Count > 0)
            yield return new BulletList(coverage.Select(c => $"Search coverage — {c} ({ValidationFileNames.Measured})").ToList());
        yield return new Figure("learning-rate.png", Charts.Png(LearningRateChart(f.Primary, f.Predictions, f.Measured)),
            $"Effective learning rate α/(1−β) (= α for SGD) of the best measured trial ({ValidationFileNames.Measured}) and of the NQM optimum ({ValidationFileNames.Predictions}). " +
            "Adam is left out of the chart: its learning rate acts on normalised gradients, so it has another unit; the table has it.");
        yield return new Table(["optimizer", "B", "measured lr", "measured β", "measured α/(1−β)", "NQM lr", "NQM β", "NQM α/(1−β)"],
            f.Measured.Select(m =>
            {
                var p = f.Predictions.FirstOrDefault(x => x.Variant == f.Primary && x.Optimizer == m.Optimizer && x.BatchSize == m.BatchSize && x.NqmOptimizer != "precond-measured");
                return (IReadOnlyList<string>)[m.Optimizer, Num(m.BatchSize, "G"), Num(m.LearningRate, "G3"), Num(m.Momentum ?? m.Beta1, "G3"), Num(m.EffectiveLearningRate, "G3"),
                    Num(p?.LearningRate, "G3"), Num(p?.Momentum, "G3"), Num(p?.EffectiveLearningRate, "G3")];
            }).ToList(), $"{ValidationFileNames.Measured}, {ValidationFileNames.Predictions}");
        yield return new Table(["curve", "optimizer", "S_min", "B_noise (critical batch size)", "R² (log)", "RMS log2 residual", "points", "slope of log(lr) vs log(B)", "slope of log(α/(1−β)) vs log(B)"],
            f.Scaling.Select(s => (IReadOnlyList<string>)[s.Source, s.Optimizer, Num(s.SMin, "G4"), s.BNoiseLabel, Num(s.RSquaredLog, "F3"), Num(s.RmsLog2Residual, "F3"), s.Points.ToString(Inv),
                Num(s.LearningRateSlope, "F2"), Num(s.EffectiveLearningRateSlope, "F2")]).ToList(),
            ValidationFileNames.Scaling);
    }

    static IEnumerable<ReportBlock> PointByPoint(ReportFiles f)
    {
        string scheme = f.Scheme;
        yield return new Heading(1, "Measured against predicted, point by point (primary recipe)");
        yield return new Table(["optimizer", "B", "measured", "seed min–max", "NQM zero-shot", $"NQM {scheme}", $"baseline {scheme}", "log2 zero-shot", $"log2 NQM", "log2 baseline", "not scored"],
            f.Comparison.Where(c => f.IsPrimary(c.Variant))
                .Select(c => (IReadOnlyList<string>)[c.Optimizer, Num(c.BatchSize, "G"), Num(c.MeasuredSteps, "F0"),
                    c.MeasuredMin is null ? "" : $"{Num(c.MeasuredMin, "F0")}–{Num(c.MeasuredMax, "F0")}",
                    Num(c.ZeroShot, "F0"), Num(c.Calibrated, "F0"), Num(c.Baseline, "F0"), Num(c.Log2ZeroShot, Numbers.SignedFormat), Num(c.Log2Calibrated, Numbers.SignedFormat), Num(c.Log2Baseline, Numbers.SignedFormat), c.Excluded ?? ""])
                .ToList(),
            ValidationFileNames.Comparison);
    }

    /// <summary>One row per recipe without its calibration (the schemes are columns); Adam's p = 0.5 rows fold into their variant's.</summary>
    static IEnumerable<ReportBlock> Sensitivity(ReportFiles f)
    {
        if (f.Sensitivity.Count == 0) yield break;
        yield return new Heading(1, "Sensitivity: every recipe");
        yield return new Paragraph("Each row is one recipe (curvature checkpoint × floor policy × initial condition × variant); per optimizer the predicted critical batch size " +
            "and the median |log2| error under each calibration scheme (zs = zero-shot, small/large = one point at the smallest/largest batch size, loo = leave-one-out; " +
            "the baseline's errors are in the error table). ★ marks the primary recipe. The primary stays what the spec said, whatever this table shows.");
        var keyed = f.Sensitivity.Where(r => !r.Variant.EndsWith("[precond-measured]"))
            .GroupBy(r => (r.Checkpoint, r.FloorPolicy, r.InitialCondition, Variant: r.Variant.Replace(" [precond-p0.5]", "")));
        yield return new Table(["checkpoint", "floor", "s0", "variant", .. f.Optimizers.SelectMany(o => new[] { $"{o} B_noise", $"{o} zs / small / large / loo" })],
            keyed.Select(g =>
            {
                bool star = g.Any(r => r.Primary);
                double? floor = g.First().Floor;
                return (IReadOnlyList<string>)[(star ? "★ " : "") + g.Key.Checkpoint, $"{g.Key.FloorPolicy} ({Num(floor, "F3")})", g.Key.InitialCondition, g.Key.Variant,
                    .. f.Optimizers.SelectMany(o =>
                    {
                        var rows = g.Where(r => r.Optimizer == o).ToArray();
                        string bn = rows.FirstOrDefault()?.PredictedBNoiseLabel ?? "";
                        string errs = string.Join(" / ", FitOptions.CalibrationSchemes.Select(sc => rows.FirstOrDefault(r => r.Calibration == sc || (sc == "zero-shot" && r.Calibration == "calibrated on divergence")) is { } r ? Num(r.MedianAbsLog2, "F2") : "—"));
                        return new[] { bn, errs };
                    })];
            }).ToList(), ValidationFileNames.Sensitivity);
    }

    static IEnumerable<ReportBlock> CurvatureAlongTheTrajectory(ReportFiles f)
    {
        if (f.Drift.Count == 0) yield break;
        yield return new Heading(1, "Curvature along the trajectory");
        yield return new Paragraph("The curvature and noise measured along real trials (the spec's curvature.trajectory): each optimizer's best trial at a batch size, " +
            "replayed from its recorded configuration and measured at initialisation and where its evaluated training loss first fell below each level and the target. " +
            "λ_max: top GGN eigenvalue; tr GGN: Hutchinson's trace; tr Σ and B_simple = tr Σ/|g|²: per-example gradient noise; overlap: ‖V₁ᵀV₂‖²_F/k of the top-k GGN eigenspaces " +
            "with the previous checkpoint and with initialisation (1 = the same subspace). Each of these checkpoints is also a row of the sensitivity table (TRAJECTORY/CHECKPOINT).");
        yield return new Table(["trajectory", "checkpoint", "step", "loss", "λ_max", "tr GGN", "tr Σ", "B_simple", "overlap prev.", "overlap init", "2/λ_max", "cost (gradient passes)"],
            f.Drift.Select(d => (IReadOnlyList<string>)[d.Trajectory, d.Checkpoint, d.Step.ToString(Inv), Num(d.Loss, "F3"), Num(d.LambdaMax, "G3"), Num(d.TraceGgn, "G3"),
                Num(d.TraceSigma, "G3"), Num(d.SimpleNoiseScale, "G3"), Num(d.OverlapPrevious, "F2"), Num(d.OverlapInitial, "F2"),
                Num(d.LambdaMax is > 0 ? 2 / d.LambdaMax : null, "G3"), Num(d.CostGradientPasses, "F0")]).ToList(),
            TrajectoryDrift.FileName);
    }

    /// <summary>One figure per fitted variant, except the c = h ones (their noise is the curvature by construction).</summary>
    static IEnumerable<ReportBlock> FittedSpectra(ReportFiles f)
    {
        yield return new Heading(1, "The fitted spectra");
        foreach (var variant in f.Spectra.Select(s => s.Variant).Distinct().Where(v => !v.Contains("c=h")))
        {
            var rows = f.Spectra.Where(s => s.Variant == variant && s.H > 0 && s.Count > 0).OrderBy(s => s.H).ToArray();
            yield return new Figure($"spectrum-{Slug(variant)}.png", Charts.Png(new ChartSpec($"{variant}: curvature h and noise c per bin", "h", "count / c",
                [new ChartSeries("count of directions", rows.Select(r => r.H).ToArray(), rows.Select(r => r.Count).ToArray(), SeriesStyle.LineAndMarkers),
                 new ChartSeries("c (noise variance)", rows.Select(r => r.H).ToArray(), rows.Select(r => r.C).ToArray(), SeriesStyle.Markers),
                 new ChartSeries("c = h", rows.Select(r => r.H).ToArray(), rows.Select(r => r.H).ToArray(), SeriesStyle.Line, Dashed: true)],
                LogX: true, LogY: true)),
                $"{variant}: distribution of curvature and measured noise against c = h ({ValidationFileNames.Spectra})");
        }
    }

    static IEnumerable<ReportBlock> CalibrationChoices(ReportFiles f)
    {
        yield return new Heading(1, "Calibration choices");
        yield return new Preformatted(f.FitJson);
    }

    static IEnumerable<ReportBlock> Provenance(ReportFiles f)
    {
        if (f.ProvenanceJson is null) yield break;
        yield return new Heading(1, "Provenance");
        yield return new Paragraph(MachineLine(f.ProvenanceJson));
        yield return new Preformatted(f.ProvenanceJson);
    }

    /// <summary>
    /// The machine the run's numbers depend on, from provenance.json's `machine` (written by the Training project's
    /// MachineProvenance), and what that means for repeating it.
    /// </summary>
    static string MachineLine(string provenanceJson)
    {
        using var doc = JsonDocument.Parse(provenanceJson);
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
        bool IsPrimary(string v) => IsPrimaryLabel(v, primary);
        // Claims judged per optimizer or trajectory ((e), (i), (j), (k)) name it: "(e sgd)"; the claim text reads "(e) sgd: …".
        static string Tag(VerdictRow v) => v.Id is "e" or "i" or "j" or "k" && v.Claim.Split(' ') is [_, var who, ..] && who.EndsWith(':') ? $"({v.Id} {who.TrimEnd(':')})" : $"({v.Id})";
        return
        [
            "claims (measured): " + string.Join("  ", verdicts.Select(v => $"{Tag(v)} {v.Measured}")),
            "claims (NQM predicts): " + string.Join("  ", verdicts.Where(v => v.Predicted != "—").Select(v => $"{Tag(v)} {v.Predicted}")),
            $"median |log2 pred/meas| {primary}: zero-shot {Err(IsPrimary, "zero-shot")}; {scheme} {Err(IsPrimary, scheme)}; baseline {Err(v => v == "mccandlish", scheme)}",
        ];
    }

    static ChartSpec StepsChart(string optimizer, string primary, string scheme, IReadOnlyList<ComparisonRow> comparison, IReadOnlyList<PredictionRow> predictions)
    {
        var series = new List<ChartSeries>();
        var primaryRows = comparison.Where(c => c.Optimizer == optimizer && (c.Variant == primary || c.Variant.StartsWith(primary + " ["))).ToList();
        series.Add(Measured(optimizer, primaryRows));
        // An optimizer with several NQM counterparts (Adam, K-FAC) names which one each line is.
        bool several = predictions.Where(p => p.Optimizer == optimizer).Select(p => p.NqmOptimizer).Distinct().Count() > 1;
        foreach (var group in predictions.Where(p => p.Optimizer == optimizer).GroupBy(p => (p.Variant, p.NqmOptimizer)))
        {
            var rows = group.OrderBy(p => p.BatchSize).ToArray();
            string label = group.Key.Variant + (several ? $" [{group.Key.NqmOptimizer}]" : "");
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

    static string Num(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, Inv) : "";

    static string Slug(string s) => string.Concat(s.Select(ch => char.IsLetterOrDigit(ch) ? ch : '-'));
}
