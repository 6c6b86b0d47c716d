namespace NqmValidate.Validation;

// The files the fit/predict/compare stages write into a validation directory and the report reads
// back. The report uses nothing else, so every number it shows is traceable to one of them.

/// <summary>predictions.csv: one row per (variant, optimizer, batch size) of the primary recipe's checkpoint, floor and initial condition.
/// <see cref="StepsCalibrated"/> uses the primary calibration scheme; <see cref="CurvatureCap"/> is the edge-of-stability cap where one applies.</summary>
public sealed record PredictionRow(
    string Variant,
    string Optimizer,
    string NqmOptimizer,
    double BatchSize,
    double? StepsZeroShot,
    double? StepsCalibrated,
    double? LearningRate,
    double? Momentum,
    double? EffectiveLearningRate,
    double? CurvatureCap);

/// <summary>comparison.csv: measured against predicted per point, primary calibration scheme; <see cref="Excluded"/> says why a point is not scored.</summary>
public sealed record ComparisonRow(
    string Variant,
    string Optimizer,
    double BatchSize,
    double? MeasuredSteps,
    double? MeasuredMin,
    double? MeasuredMax,
    double? ZeroShot,
    double? Calibrated,
    double? Baseline,
    double? Log2ZeroShot,
    double? Log2Calibrated,
    double? Log2Baseline,
    string? Excluded);

/// <summary>errors.csv: per (variant, optimizer, calibration scheme): median |log2(predicted/measured)| over the scored points and the slope of log2 error against log2 B.
/// <see cref="Calibration"/> "calibrated on divergence" marks the zero-shot row of a variant shaped by the sweep's divergences.</summary>
public sealed record ErrorRow(string Variant, string Optimizer, string Calibration, double? MedianAbsLog2, int Points, double? Slope);

/// <summary>scaling.csv: S(B) fit and learning-rate slopes per (curve source, optimizer). <see cref="BNoise"/> is empty unless the guard accepts the fit; <see cref="BNoiseLabel"/> says why.</summary>
public sealed record ScalingRow(
    string Source,
    string Optimizer,
    double? SMin,
    double? BNoise,
    string BNoiseLabel,
    string Status,
    double? RSquaredLog,
    double? RmsLog2Residual,
    int Points,
    double? LearningRateSlope,
    double? EffectiveLearningRateSlope);

/// <summary>verdicts.csv: each claim judged on the measured curves and on the primary NQM prediction, and how many recipes of the sensitivity table agree.</summary>
public sealed record VerdictRow(
    string Id,
    string Claim,
    string Measured,
    string MeasuredEvidence,
    string Predicted,
    string PredictedEvidence,
    string Recipes,
    string Rule);

/// <summary>spectra.csv: the NQM spectra the fit built (one row per bin per variant), for plots and audit.</summary>
public sealed record FittedSpectrumRow(string Variant, double H, double C, double S0, double Count, double? Preconditioner);

/// <summary>measured.csv: the sweep's per-study results the comparison used (copied so the report reads only this directory).
/// <see cref="EffectiveLearningRate"/> = lr/(1−β) for momentum (β1 for Adam), = lr for SGD.</summary>
public sealed record MeasuredRow(string Optimizer, double BatchSize, double? StepsToTarget, double? StepsMin, double? StepsMax, double? LearningRate, double? Momentum, int TrialsRun, int TrialsReached, int TrialsDiverged,
    double? Beta1 = null, double? EffectiveLearningRate = null);

/// <summary>sensitivity.csv: one row per recipe (checkpoint × floor policy × initial condition × variant × calibration) and optimizer.</summary>
public sealed record SensitivityRow(
    string Checkpoint,
    string FloorPolicy,
    double? Floor,
    string InitialCondition,
    string Variant,
    string Calibration,
    string Optimizer,
    double? MedianAbsLog2,
    int Points,
    double? Slope,
    double? BaselineMedianAbsLog2,
    double? PredictedBNoise,
    string PredictedBNoiseLabel,
    bool Primary);

/// <summary>File names inside a validation directory.</summary>
public static class ValidationFileNames
{
    public const string Measured = "measured.csv";
    public const string Predictions = "predictions.csv";
    public const string Comparison = "comparison.csv";
    public const string Errors = "errors.csv";
    public const string Scaling = "scaling.csv";
    public const string Verdicts = "verdicts.csv";
    public const string Spectra = "spectra.csv";
    public const string Sensitivity = "sensitivity.csv";
    public const string Fit = "fit.json";
    /// <summary>The fit trial's curve as recorded and run on past the target (fit.fit_curve_extension): what the floor was fitted to.</summary>
    public const string FitCurve = "fit-curve.csv";
    public const string Provenance = "provenance.json";
    /// <summary>The sweep's steps-by-target.csv, copied when it recorded looser targets (the report's per-target S(B) figures).</summary>
    public const string StepsByTarget = NqmValidate.Formats.TargetStepsFile.FileName;
}
