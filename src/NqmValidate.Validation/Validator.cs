using System.Text.Json;
using NqmValidate.Reports;
using NqmValidate.Common;

namespace NqmValidate.Validation;

/// <summary>
/// The measured files the fit needs and the workload's target training loss. <see cref="Checkpoints"/>: the
/// curvature checkpoints available (the one given first); <see cref="FitOptions.Checkpoint"/> picks the primary.
/// </summary>
/// <param name="Sweep">What the sweep measured.</param>
/// <param name="Checkpoints">The curvature checkpoints available.</param>
/// <param name="TargetLoss">The workload's target training loss.</param>
/// <param name="Options">The fit's choices (the spec's `fit` section).</param>
/// <param name="NqmCounterparts">
/// Which NQM optimizers model each measured optimizer (sgd, momentum, ema, precond-p0.5, precond-measured): the
/// optimizer families' own declarations, handed in by the caller (Validation knows no training code). An optimizer
/// without counterparts is measured but not predicted.
/// </param>
public sealed record ValidationInputs(SweepResults Sweep, IReadOnlyList<CurvatureResults> Checkpoints, double TargetLoss, FitOptions Options,
    IReadOnlyDictionary<string, IReadOnlyList<string>> NqmCounterparts)
{
    /// <summary>
    /// The fit trial's curve run on past the target (<see cref="FitOptions.FitCurveExtension"/>), made by the caller
    /// (it trains); null = the recorded curve. Used only if it is the fit trial's (SGD at <see cref="SweepResults.FitBatchSize"/>).
    /// </summary>
    public LossCurve? LongerFitCurve { get; init; }

    /// <summary>
    /// The curvature measured along the sweep's trials (drift.csv) that claim (k) is judged on; null = read from beside
    /// the given checkpoint (<see cref="TrajectoryDrift.Load"/>), empty = none measured.
    /// </summary>
    public IReadOnlyList<MeasuredDrift>? Drift { get; init; }

    public ValidationInputs(SweepResults sweep, CurvatureResults curvature, double targetLoss, FitOptions options,
        IReadOnlyDictionary<string, IReadOnlyList<string>> nqmCounterparts) : this(sweep, [curvature], targetLoss, options, nqmCounterparts) { }
}

/// <summary>Everything the fit, predict and compare stages produce (also written as CSV/JSON by <see cref="Validator.Write"/>).</summary>
public sealed record ValidationResult(
    IReadOnlyList<PredictionRow> Predictions,
    IReadOnlyList<ComparisonRow> Comparison,
    IReadOnlyList<ErrorRow> Errors,
    IReadOnlyList<ScalingRow> Scaling,
    IReadOnlyList<VerdictRow> Verdicts,
    IReadOnlyList<FittedSpectrumRow> Spectra,
    IReadOnlyList<MeasuredRow> Measured,
    IReadOnlyList<SensitivityRow> Sensitivity,
    FitRecord Fit)
{
    /// <summary>The sweep's steps-by-target.csv rows, carried into the validation directory for the report (empty: one target).</summary>
    public IReadOnlyList<NqmValidate.Formats.TargetStepsRow> ByTarget { get; init; } = [];
}

/// <summary>The pre-registered primary recipe, as the spec's fit section named it.</summary>
public sealed record Recipe(string Checkpoint, string Floor, string InitialCondition, string Variant, string Calibration);

/// <summary>fit.json: the recipe, the calibration choices and the numbers they produced.</summary>
public sealed record FitRecord(
    FitOptions Options,
    Recipe PrimaryRecipe,
    IReadOnlyList<string> CheckpointsAvailable,
    double InitialLoss,
    string InitialLossSource,
    double TargetLoss,
    string? FitCurve,
    string? FitPoint,
    IReadOnlyList<BaselineNoiseScale> Baselines,
    IReadOnlyList<VariantRecord> Variants);

/// <summary>One variant of the primary recipe's checkpoint/floor/initial condition: its spectrum, its floor and initial condition and the curve fit behind them.</summary>
public sealed record VariantRecord(string Name, string Source, string Noise, string Notes, string Calibration, int Bins, double Dimensions, double MaxCurvature,
    double Floor, string FloorSource, double? FloorLow, double? FloorHigh, double? BulkExponent, double? CurveRmsLogResidual, int? CappedDirections,
    double InitialExcess, double TargetExcess, double? TopShareOfInitialLoss, string? CurveFitAtSearchEdge, string? Problem)
{
    /// <summary>The piecewise variant's pieces as fitted (absent for every other variant).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PieceRecord>? Pieces { get; init; }
}

/// <summary>One piece of a fitted piecewise variant: the checkpoint whose spectrum it runs on, its excess loss from start to end, and its top curvature.</summary>
public sealed record PieceRecord(string Checkpoint, double StartExcess, double EndExcess, double MaxCurvature);

/// <summary>
/// Fit → predict → compare (docs/design/validation-protocol.md §3–4; docs/validation.md). Zero-shot predictions use no measured steps.
/// The loss floor and the initial condition's shape come from ONE loss curve (the largest batch size's best SGD
/// trial), whose point is then never scored. Every predictor (NQM variants and the per-optimizer McCandlish
/// baseline) is calibrated by the same scheme, each optimizer on its own points. The primary recipe is the
/// spec's; the sensitivity table repeats the whole comparison for every checkpoint × floor × initial condition ×
/// variant × calibration.
/// <see cref="Run"/> chains stages that take records and return records, each in its own file: <see cref="RunFacts"/>
/// (what every recipe shares), <see cref="PredictStage"/> (fit every variant of a combo with <see cref="FitStage"/>,
/// then the NQM optima), <see cref="CompareStage"/> (calibrated by <see cref="CalibrateStage"/>), <see cref="ScalingStage"/>,
/// <see cref="SensitivityStage"/> and <see cref="VerdictStage"/>; this class adds fit.json, spectra.csv and measured.csv.
/// </summary>
public static class Validator
{
    public static ValidationResult Run(ValidationInputs inputs, IProgress<string>? progress = null)
    {
        var facts = RunFacts.From(inputs);
        var options = facts.Options;
        var primary = PredictStage.Predict(facts, facts.PrimaryCheckpoint, options.Floor, options.InitialCondition, progress);
        var primaryFit = PrimaryVariant(facts, primary);
        var comparison = CompareStage.Compare(facts, primary);
        var scaling = ScalingStage.Fit(facts, primary);
        var sensitivity = SensitivityStage.Run(facts, primary, progress);
        var verdicts = VerdictStage.Judge(facts, primary, primaryFit, scaling, sensitivity.Tally);
        return new ValidationResult(comparison.Predictions, comparison.Comparison, comparison.Errors, scaling.Rows, verdicts,
            Spectra(primary), MeasuredRows(facts), sensitivity.Rows, Record(facts, primary)) { ByTarget = facts.Inputs.Sweep.ByTarget ?? [] };
    }

    /// <summary>The spec's primary variant in the primary combo; an error in the spec's terms if it was not built or cannot be fitted.</summary>
    static VariantFit PrimaryVariant(RunFacts facts, Combo primary)
    {
        var options = facts.Options;
        var fit = primary.Fits.FirstOrDefault(f => f.Variant.Name == options.PrimaryVariant)
            ?? throw new SpecException($"fit.primary_variant = '{options.PrimaryVariant}': not built from checkpoint {facts.PrimaryCheckpoint.Label}; available: {string.Join(", ", primary.Fits.Select(f => f.Variant.Name))}.");
        if (fit.Problem is not null)
            throw new SpecException($"fit: primary variant {options.PrimaryVariant} cannot be fitted: {fit.Problem}");
        return fit;
    }

    /// <summary>spectra.csv: every usable variant's bins in the primary combo, s0 included.</summary>
    static List<FittedSpectrumRow> Spectra(Combo primary) =>
        primary.Fits.Where(f => f.Problem is null).SelectMany(f => f.Variant.Bins.Select(b => new FittedSpectrumRow(f.Variant.Name, b.H, b.C, b.S0, b.Count, null))).ToList();

    /// <summary>measured.csv: the sweep's studies, copied so the report reads only the validation directory.</summary>
    static List<MeasuredRow> MeasuredRows(RunFacts facts) =>
        facts.Inputs.Sweep.Studies.OrderBy(s => s.Optimizer).ThenBy(s => s.BatchSize)
            .Select(s => new MeasuredRow(s.Optimizer, s.BatchSize, s.StepsToTarget, s.StepsMin, s.StepsMax, s.LearningRate, s.Momentum, s.TrialsRun, s.TrialsReached, s.TrialsDiverged,
                s.Beta1, ScalingStage.EffectiveRate(s.LearningRate, s.Momentum ?? s.Beta1)))
            .ToList();

    /// <summary>fit.json: the options, the primary recipe, the shared facts and every variant of the primary combo as fitted.</summary>
    static FitRecord Record(RunFacts facts, Combo primary)
    {
        var options = facts.Options;
        var curve = facts.FitCurve;
        var variantRecords = primary.Fits.Select(f =>
        {
            double? topShare = f.Problem is null && f.Variant.Bins.Any(b => b.MeasuredS0 is not null)
                ? f.Variant.Bins.Where(b => b.Top).Sum(b => 0.5 * b.Count * b.H * b.S0) / f.Variant.InitialLoss : null;
            return new VariantRecord(f.Variant.Name, f.Variant.Source, f.Variant.Noise, f.Variant.Notes, f.Variant.Calibration, f.Variant.Bins.Count, f.Variant.Dimensions, f.Variant.MaxCurvature,
                f.Floor, f.FloorSource, f.CurveFit?.FloorLow, f.CurveFit?.FloorHigh, f.CurveFit?.BulkExponent, f.CurveFit?.RmsLogResidual, f.CurveFit?.CappedDirections,
                f.InitialExcess, f.TargetExcess, topShare, f.CurveFit?.AtSearchEdge, f.Problem)
            {
                Pieces = f.Variant.Segments?.Select(p => new PieceRecord(p.Checkpoint, p.StartExcess, p.EndExcess, p.Bins.Max(b => b.H))).ToList(),
            };
        }).ToList();
        return new FitRecord(options, new Recipe(facts.PrimaryCheckpoint.Label, options.Floor, options.InitialCondition, options.PrimaryVariant, options.Calibration),
            facts.Inputs.Checkpoints.Select(c => c.Label).ToList(), facts.InitialLoss, facts.InitialLossSource, facts.Inputs.TargetLoss,
            curve is null ? facts.FitCurveProblem : $"{curve.Path} (sgd, B = {curve.BatchSize}, lr {curve.LearningRate:G4}, {curve.Points.Count} evaluations)",
            facts.FitPointBatchSize is double fpb ? $"sgd at B = {fpb:G} (not scored)" : null, facts.Baselines, variantRecords);
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
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Sensitivity), result.Sensitivity);
        AtomicFile.WriteAllText(Path.Combine(directory, ValidationFileNames.Fit), JsonSerializer.Serialize(result.Fit, FitOptions.Json));
        if (result.ByTarget.Count > 0)
            AtomicFile.WriteAllText(Path.Combine(directory, ValidationFileNames.StepsByTarget), NqmValidate.Formats.TargetStepsFile.Text(result.ByTarget));
    }
}
