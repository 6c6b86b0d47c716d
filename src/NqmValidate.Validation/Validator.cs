using System.Text.Json;
using NqmValidate.Reports;
using NqmValidate.Common;

namespace NqmValidate.Validation;

/// <summary>The workload facts the fit needs besides the measured files: the target training loss and the optimizers swept.</summary>
public sealed record ValidationInputs(SweepResults Sweep, CurvatureResults Curvature, double TargetLoss, FitOptions Options);

/// <summary>Everything the fit, predict and compare stages produce (also written as CSV/JSON by <see cref="Validator.Write"/>).</summary>
public sealed record ValidationResult(
    IReadOnlyList<PredictionRow> Predictions,
    IReadOnlyList<ComparisonRow> Comparison,
    IReadOnlyList<ErrorRow> Errors,
    IReadOnlyList<ScalingRow> Scaling,
    IReadOnlyList<VerdictRow> Verdicts,
    IReadOnlyList<FittedSpectrumRow> Spectra,
    IReadOnlyList<MeasuredRow> Measured,
    FitRecord Fit);

/// <summary>fit.json: the calibration choices and the numbers they produced.</summary>
public sealed record FitRecord(
    FitOptions Options,
    double InitialLoss,
    string InitialLossSource,
    double Floor,
    double TargetLoss,
    double InitialExcess,
    double TargetExcess,
    string PrimaryVariant,
    string CalibrationOptimizer,
    double? CalibrationBatchSize,
    IReadOnlyDictionary<string, double?> TimeScale,
    double? BaselineBNoise,
    string BaselineBNoiseSource,
    IReadOnlyList<VariantRecord> Variants);

public sealed record VariantRecord(string Name, string Source, string Noise, string Notes, int Bins, double Dimensions, double MaxCurvature, double InitialLoss);

/// <summary>
/// Fit → predict → compare (VALIDATION.md §3–4). Zero-shot predictions use no measured steps;
/// one-point predictions fit one time-scale factor per variant on a single named measured point,
/// which is then excluded from scoring; the McCandlish baseline uses the measured gradient noise
/// scale and the same point.
/// </summary>
public static class Validator
{
    /// <summary>NQM optimizers each measured optimizer maps to (Adam: p = 0.5 and, for diagonal sources, the measured preconditioner).</summary>
    static IEnumerable<string> NqmOptimizersFor(string optimizer, NqmVariant variant) => optimizer switch
    {
        "sgd" => ["sgd"],
        "momentum" or "nesterov" => ["momentum"],
        "adam" => variant.Source == "diagonal" ? ["precond-p0.5", "precond-measured"] : ["precond-p0.5"],
        _ => [],
    };

    public static ValidationResult Run(ValidationInputs inputs, IProgress<string>? progress = null)
    {
        var options = inputs.Options;
        var sweep = inputs.Sweep;
        var curvature = inputs.Curvature;

        // --- Fit: floor, initial and target excess, spectra.
        var initialLosses = sweep.Trials.Select(t => t.InitialLoss).OfType<double>().Where(double.IsFinite).ToArray();
        (double initialLoss, string initialSource) = initialLosses.Length > 0
            ? (Stats.Median(initialLosses), $"median initial training loss of {initialLosses.Length} trials (trials.csv)")
            : (curvature.Summary.InitialLoss ?? throw new RunFileException($"{sweep.Directory}: no initial_loss in trials.csv and none in the curvature summary.json"),
               "curvature summary.json initial_loss");
        double floor = options.Floor switch
        {
            "zero" => 0,
            "min-observed" => sweep.Trials.Select(t => t.FinalLoss).OfType<double>().Where(double.IsFinite).DefaultIfEmpty(0).Min(),
            var s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture),
        };
        double initialExcess = initialLoss - floor, targetExcess = inputs.TargetLoss - floor;
        if (!(targetExcess > 0) || !(initialExcess > targetExcess))
            throw new SpecException($"fit: with floor {floor:G4}, the target excess loss {targetExcess:G4} must be positive and below the initial excess {initialExcess:G4}.");

        var variants = new List<NqmVariant>
        {
            NqmVariantBuilder.Diagonal(curvature.Bins, initialExcess, tiedNoise: false),
            NqmVariantBuilder.Diagonal(curvature.Bins, initialExcess, tiedNoise: true),
        };
        foreach (bool tied in new[] { false, true })
            if (NqmVariantBuilder.Eigen(curvature, options.EigenOperator, initialExcess, tied) is { } eigen) variants.Add(eigen);
        var optimizers = sweep.Studies.Select(s => s.Optimizer).Distinct().ToArray();
        var batchSizes = sweep.Studies.Select(s => (double)s.BatchSize).Distinct().Order().ToArray();
        if (options.EdgeOfStability && batchSizes.Length > 0 && sweep.SmallestDivergingLearningRate("sgd", (int)batchSizes[0]) is double eta)
            variants.Add(NqmVariantBuilder.EdgeOfStability(variants[0], eta, initialExcess));
        string primary = variants.Any(v => v.Name == options.PrimaryVariant) ? options.PrimaryVariant : variants[0].Name;

        // --- Predict: NQM optimum per (variant, optimizer mapping, batch size).
        bool grid = options.Search == "grid";
        var predictions = new List<PredictionRow>();
        foreach (var variant in variants)
            foreach (var optimizer in optimizers)
                foreach (var nqmOptimizer in NqmOptimizersFor(optimizer, variant))
                    foreach (double b in batchSizes)
                    {
                        progress?.Report($"predict {variant.Name} {optimizer} ({nqmOptimizer}) B={b:G}");
                        var optimum = NqmAdapter.Optimize(variant.Bins, nqmOptimizer, b, targetExcess, grid, options.AdamEpsilon);
                        predictions.Add(new PredictionRow(variant.Name, optimizer, nqmOptimizer, b, optimum?.Steps, null,
                            optimum?.LearningRate, optimum?.Momentum, optimum?.EffectiveLearningRate));
                    }

        // --- One-point calibration: τ = measured / zero-shot at the named point, per variant.
        var measured = sweep.Studies.ToDictionary(s => (s.Optimizer, (double)s.BatchSize));
        double? calibrationB = options.CalibrationBatchSize ?? sweep.Studies
            .Where(s => s.Optimizer == options.CalibrationOptimizer && s.StepsToTarget is not null)
            .Select(s => (double?)s.BatchSize).Min();
        var timeScale = new Dictionary<string, double?>();
        foreach (var variant in variants)
        {
            double? m = calibrationB is double cb && measured.TryGetValue((options.CalibrationOptimizer, cb), out var study) ? study.StepsToTarget : null;
            double? z = predictions.FirstOrDefault(p => p.Variant == variant.Name && p.Optimizer == options.CalibrationOptimizer && p.BatchSize == calibrationB)?.StepsZeroShot;
            timeScale[variant.Name] = m is double mm && z is double zz && zz > 0 ? mm / zz : null;
        }
        for (int i = 0; i < predictions.Count; i++)
            if (timeScale[predictions[i].Variant] is double tau && predictions[i].StepsZeroShot is double zs)
                predictions[i] = predictions[i] with { StepsOnePoint = tau * zs };

        // --- Baseline: S = S_min (1 + B_noise/B), B_noise = measured gradient noise scale, S_min from the same point.
        double? bNoise = curvature.Summary.GradientNoiseScale ?? curvature.Summary.GradientNoiseScaleTwoBatch;
        string bNoiseSource = curvature.Summary.GradientNoiseScale is not null ? "B_simple from per-example variances (summary.json)"
            : curvature.Summary.GradientNoiseScaleTwoBatch is not null ? "B_simple from the two-batch estimator (summary.json)" : "unavailable";
        double? sMin = bNoise is double bn && calibrationB is double cb2 && measured.TryGetValue((options.CalibrationOptimizer, cb2), out var cs) && cs.StepsToTarget is double cst
            ? cst / (1 + bn / cb2) : null;
        double? Baseline(double b) => sMin is double s && bNoise is double n ? s * (1 + n / b) : null;

        // --- Compare.
        var comparison = new List<ComparisonRow>();
        foreach (var p in predictions)
        {
            if (!measured.TryGetValue((p.Optimizer, p.BatchSize), out var m)) continue;
            bool isCalibration = p.Optimizer == options.CalibrationOptimizer && p.BatchSize == calibrationB;
            double? baseline = Baseline(p.BatchSize);
            comparison.Add(new ComparisonRow(
                p.Variant + (NqmOptimizersFor(p.Optimizer, variants.First(v => v.Name == p.Variant)).Count() > 1 ? $" [{p.NqmOptimizer}]" : ""),
                p.Optimizer, p.BatchSize, m.StepsToTarget, m.StepsMin, m.StepsMax,
                p.StepsZeroShot, p.StepsOnePoint, baseline,
                Log2(p.StepsZeroShot, m.StepsToTarget), Log2(p.StepsOnePoint, m.StepsToTarget), Log2(baseline, m.StepsToTarget),
                isCalibration));
        }

        var errors = new List<ErrorRow>();
        foreach (var group in comparison.GroupBy(c => (c.Variant, c.Optimizer)))
        {
            errors.Add(Error(group.Key.Variant, group.Key.Optimizer, "zero-shot", group.Select(c => c.Log2ZeroShot)));
            errors.Add(Error(group.Key.Variant, group.Key.Optimizer, "one-point", group.Where(c => !c.CalibrationPoint).Select(c => c.Log2OnePoint)));
        }
        // The primary variant's rows; for Adam on a diagonal variant both preconditioner mappings exist, and p = 0.5 stands for it.
        bool IsPrimary(ComparisonRow c) => c.Variant == primary || c.Variant == primary + " [precond-p0.5]";
        foreach (var group in comparison.Where(IsPrimary).GroupBy(c => c.Optimizer))
            errors.Add(Error("mccandlish", group.Key, "baseline", group.Where(c => !c.CalibrationPoint).Select(c => c.Log2Baseline)));

        // --- Scaling fits and learning-rate slopes: measured, and each variant's zero-shot prediction.
        var scaling = new List<ScalingRow>();
        var measuredCurves = new Dictionary<string, ScalingPoints>();
        var measuredFits = new Dictionary<string, ScalingFitResult?>();
        foreach (var optimizer in optimizers)
        {
            var studies = sweep.Studies.Where(s => s.Optimizer == optimizer).ToArray();
            var curve = ScalingPoints.From(studies.Select(s => ((double)s.BatchSize, s.StepsToTarget)));
            measuredCurves[optimizer] = curve;
            var fit = NqmAdapter.FitScaling(curve);
            measuredFits[optimizer] = fit;
            var lrs = studies.Where(s => s.StepsToTarget is not null && s.LearningRate > 0).ToArray();
            scaling.Add(new ScalingRow("measured", optimizer, fit?.SMin, fit?.BNoise, fit?.RSquaredLog, curve.Count,
                lrs.Length >= 2 ? Stats.Slope(lrs.Select(s => Math.Log(s.BatchSize)).ToArray(), lrs.Select(s => Math.Log(s.LearningRate!.Value)).ToArray()) : null));
        }
        var predictedCurves = new Dictionary<(string, string), ScalingPoints>();
        var predictedFits = new Dictionary<(string, string), ScalingFitResult?>();
        foreach (var group in predictions.GroupBy(p => (p.Variant, p.Optimizer, p.NqmOptimizer)))
        {
            var rows = group.Where(p => p.StepsZeroShot is not null).ToArray();
            var curve = ScalingPoints.From(rows.Select(p => (p.BatchSize, p.StepsZeroShot)));
            var fit = NqmAdapter.FitScaling(curve);
            string source = $"nqm {group.Key.Variant}" + (group.Key.Optimizer == "adam" ? $" [{group.Key.NqmOptimizer}]" : "");
            var lrs = rows.Where(p => p.LearningRate > 0).ToArray();
            scaling.Add(new ScalingRow(source, group.Key.Optimizer, fit?.SMin, fit?.BNoise, fit?.RSquaredLog, curve.Count,
                lrs.Length >= 2 ? Stats.Slope(lrs.Select(p => Math.Log(p.BatchSize)).ToArray(), lrs.Select(p => Math.Log(p.LearningRate!.Value)).ToArray()) : null));
            if (group.Key.NqmOptimizer != "precond-measured")
            {
                predictedCurves[(group.Key.Variant, group.Key.Optimizer)] = curve;
                predictedFits[(group.Key.Variant, group.Key.Optimizer)] = fit;
            }
        }

        // --- Verdicts on measured curves and on the primary variant's predictions.
        ScalingPoints P(string opt) => predictedCurves.GetValueOrDefault((primary, opt)) ?? new ScalingPoints([], []);
        ScalingFitResult? PF(string opt) => predictedFits.GetValueOrDefault((primary, opt));
        ScalingPoints M(string opt) => measuredCurves.GetValueOrDefault(opt) ?? new ScalingPoints([], []);
        var verdicts = new List<VerdictRow>();
        void AddVerdict(Verdict measuredVerdict, Verdict predictedVerdict) =>
            verdicts.Add(new VerdictRow(measuredVerdict.Id, measuredVerdict.Claim, measuredVerdict.OutcomeText, measuredVerdict.Evidence,
                predictedVerdict.OutcomeText, predictedVerdict.Evidence, measuredVerdict.Rule));
        AddVerdict(VerdictRules.PerfectScalingThenDiminishingReturns("sgd", M("sgd")), VerdictRules.PerfectScalingThenDiminishingReturns("sgd", P("sgd")));
        AddVerdict(VerdictRules.MomentumMatchesSgdBelowCritical(M("sgd"), M("momentum"), measuredFits.GetValueOrDefault("sgd")?.BNoise),
                   VerdictRules.MomentumMatchesSgdBelowCritical(P("sgd"), P("momentum"), PF("sgd")?.BNoise));
        AddVerdict(VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", measuredFits.GetValueOrDefault("momentum"), measuredFits.GetValueOrDefault("sgd")),
                   VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", PF("momentum"), PF("sgd")));
        AddVerdict(VerdictRules.LargerCriticalBatchSize("d", "adam", "momentum", measuredFits.GetValueOrDefault("adam"), measuredFits.GetValueOrDefault("momentum")),
                   VerdictRules.LargerCriticalBatchSize("d", "adam", "momentum", PF("adam"), PF("momentum")));
        var primaryScored = comparison.Where(c => IsPrimary(c) && !c.CalibrationPoint).ToArray();
        var nqmErr = primaryScored.Select(c => c.Log2OnePoint).OfType<double>().Select(Math.Abs).ToArray();
        var baseErr = primaryScored.Select(c => c.Log2Baseline).OfType<double>().Select(Math.Abs).ToArray();
        var e = VerdictRules.NqmBeatsBaseline(nqmErr.Length > 0 ? Stats.Median(nqmErr) : null, baseErr.Length > 0 ? Stats.Median(baseErr) : null, Math.Min(nqmErr.Length, baseErr.Length));
        verdicts.Add(new VerdictRow(e.Id, e.Claim, e.OutcomeText, e.Evidence, "—", $"primary variant {primary}", e.Rule));

        var spectra = variants.SelectMany(v => v.Bins.Select(b => new FittedSpectrumRow(v.Name, b.H, b.C, b.S0, b.Count, null))).ToList();
        var fitRecord = new FitRecord(options, initialLoss, initialSource, floor, inputs.TargetLoss, initialExcess, targetExcess, primary,
            options.CalibrationOptimizer, calibrationB, timeScale, bNoise, bNoiseSource,
            variants.Select(v => new VariantRecord(v.Name, v.Source, v.Noise, v.Notes, v.Bins.Count, v.Dimensions, v.MaxCurvature, v.InitialLoss)).ToList());
        var measuredRows = sweep.Studies.OrderBy(s => s.Optimizer).ThenBy(s => s.BatchSize)
            .Select(s => new MeasuredRow(s.Optimizer, s.BatchSize, s.StepsToTarget, s.StepsMin, s.StepsMax, s.LearningRate, s.Momentum, s.TrialsRun, s.TrialsReached, s.TrialsDiverged))
            .ToList();
        return new ValidationResult(predictions, comparison, errors, scaling, verdicts, spectra, measuredRows, fitRecord);
    }

    static double? Log2(double? predicted, double? measured) =>
        predicted is > 0 && measured is > 0 ? Math.Log2(predicted.Value / measured.Value) : null;

    static ErrorRow Error(string variant, string optimizer, string predictor, IEnumerable<double?> log2s)
    {
        var values = log2s.OfType<double>().Select(Math.Abs).ToArray();
        return new ErrorRow(variant, optimizer, predictor, values.Length > 0 ? Stats.Median(values) : null, values.Length);
    }

    /// <summary>Writes every output of the stage into <paramref name="directory"/>, atomically.</summary>
    public static void Write(ValidationResult result, string directory)
    {
        Directory.CreateDirectory(directory);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Measured), result.Measured);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Predictions), result.Predictions);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Comparison), result.Comparison);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Errors), result.Errors);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Scaling), result.Scaling);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Verdicts), result.Verdicts);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Spectra), result.Spectra);
        AtomicFile.WriteAllText(Path.Combine(directory, ValidationFileNames.Fit), JsonSerializer.Serialize(result.Fit, FitOptions.Json));
    }
}
