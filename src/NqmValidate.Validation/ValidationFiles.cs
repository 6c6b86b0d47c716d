namespace NqmValidate.Validation;

// The files the fit/predict/compare stages write into a validation directory and the report reads
// back. The report uses nothing else, so every number it shows is traceable to one of them.

/// <summary>predictions.csv: one row per (variant, optimizer, batch size).</summary>
public sealed record PredictionRow(
    string Variant,
    string Optimizer,
    string NqmOptimizer,
    double BatchSize,
    double? StepsZeroShot,
    double? StepsOnePoint,
    double? LearningRate,
    double? Momentum,
    double? EffectiveLearningRate);

/// <summary>comparison.csv: measured against predicted per scored point.</summary>
public sealed record ComparisonRow(
    string Variant,
    string Optimizer,
    double BatchSize,
    double? MeasuredSteps,
    double? MeasuredMin,
    double? MeasuredMax,
    double? ZeroShot,
    double? OnePoint,
    double? Baseline,
    double? Log2ZeroShot,
    double? Log2OnePoint,
    double? Log2Baseline,
    bool CalibrationPoint);

/// <summary>errors.csv: median |log2(predicted/measured)| per (variant, optimizer, predictor).</summary>
public sealed record ErrorRow(string Variant, string Optimizer, string Predictor, double? MedianAbsLog2, int Points);

/// <summary>scaling.csv: S(B) fit and learning-rate slope per (curve source, optimizer).</summary>
public sealed record ScalingRow(
    string Source,
    string Optimizer,
    double? SMin,
    double? BNoise,
    double? RSquaredLog,
    int Points,
    double? LearningRateSlope);

/// <summary>verdicts.csv: each claim judged on the measured curves and on the primary NQM prediction.</summary>
public sealed record VerdictRow(
    string Id,
    string Claim,
    string Measured,
    string MeasuredEvidence,
    string Predicted,
    string PredictedEvidence,
    string Rule);

/// <summary>spectra.csv: the NQM spectra the fit built (one row per bin per variant), for plots and audit.</summary>
public sealed record FittedSpectrumRow(string Variant, double H, double C, double S0, double Count, double? Preconditioner);

/// <summary>measured.csv: the sweep's per-study results the comparison used (copied so the report reads only this directory).</summary>
public sealed record MeasuredRow(string Optimizer, double BatchSize, double? StepsToTarget, double? StepsMin, double? StepsMax, double? LearningRate, double? Momentum, int TrialsRun, int TrialsReached, int TrialsDiverged);

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
    public const string Fit = "fit.json";
    public const string Provenance = "provenance.json";
}
