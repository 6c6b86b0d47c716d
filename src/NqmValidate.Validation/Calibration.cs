namespace NqmValidate.Validation;

/// <summary>One batch size of one predictor's curve for one optimizer: the measured steps and the predictor's shape
/// (the NQM's zero-shot steps, or the baseline's 1 + B_noise/B, which has no time unit of its own).</summary>
public sealed record CurvePoint(double BatchSize, double? Measured, double? Shape);

/// <summary>A calibrated prediction; <see cref="Excluded"/> names why a point is not scored (null = scored).</summary>
public sealed record CalibratedPoint(double BatchSize, double? Measured, double? Predicted, double? Log2, string? Excluded);

/// <summary>Median |log2(predicted/measured)| over scored points and the least-squares slope of log2 error against log2 B.</summary>
public sealed record ErrorSummary(double? MedianAbsLog2, int Points, double? Slope);

/// <summary>
/// The calibration schemes (issue #10 item 6), applied to every predictor the same way and to each optimizer
/// on its own: a predictor's shape f(B) becomes τ·f(B) with τ from that optimizer's measured points only.
/// - zero-shot: τ = 1 (only for a predictor with a time unit, i.e. the NQM: one NQM step = one training step);
/// - one-point-smallest / one-point-largest: τ = measured/shape at the smallest / largest batch size with both;
///   that point is not scored;
/// - leave-one-out: each point predicted with τ = exp(median of ln(measured/shape) over the other points).
/// The floor-fit point (the curve the floor and initial condition were fitted to) is never scored, but it may
/// serve as a calibration point: it is not scored either way.
/// </summary>
public static class Calibration
{
    public const string CalibrationPoint = "calibration point", FitPoint = "floor/initial-condition fit point";

    public static IReadOnlyList<CalibratedPoint> Apply(string scheme, IReadOnlyList<CurvePoint> points, bool hasZeroShot, double? fitPointBatchSize)
    {
        var usable = points.Where(p => p.Measured is > 0 && p.Shape is > 0).OrderBy(p => p.BatchSize).ToArray();
        double? calibrationB = scheme switch
        {
            "one-point-smallest" => usable.Length > 0 ? usable[0].BatchSize : null,
            "one-point-largest" => usable.Length > 0 ? usable[^1].BatchSize : null,
            _ => null,
        };
        double? tau = scheme switch
        {
            "zero-shot" => hasZeroShot ? 1 : null,
            "one-point-smallest" or "one-point-largest" => calibrationB is double cb ? Ratio(usable.First(p => p.BatchSize == cb)) : null,
            "leave-one-out" => null,
            _ => throw new ArgumentException($"unknown calibration scheme '{scheme}'", nameof(scheme)),
        };
        var result = new List<CalibratedPoint>();
        foreach (var p in points.OrderBy(p => p.BatchSize))
        {
            double? t = tau;
            if (scheme == "leave-one-out")
            {
                var others = usable.Where(o => o.BatchSize != p.BatchSize).Select(o => Math.Log(Ratio(o))).ToArray();
                t = others.Length > 0 ? Math.Exp(Stats.Median(others)) : null;
            }
            double? predicted = t is double tt && p.Shape is double f ? tt * f : null;
            string? excluded = p.BatchSize == fitPointBatchSize ? FitPoint : p.BatchSize == calibrationB ? CalibrationPoint : null;
            result.Add(new CalibratedPoint(p.BatchSize, p.Measured, predicted, Log2(predicted, p.Measured), excluded));
        }
        return result;
    }

    static double Ratio(CurvePoint p) => p.Measured!.Value / p.Shape!.Value;

    public static double? Log2(double? predicted, double? measured) =>
        predicted is > 0 && measured is > 0 ? Math.Log2(predicted.Value / measured.Value) : null;

    public static ErrorSummary Summarize(IEnumerable<CalibratedPoint> points)
    {
        var scored = points.Where(p => p.Excluded is null && p.Log2 is double).ToArray();
        if (scored.Length == 0) return new ErrorSummary(null, 0, null);
        double median = Stats.Median(scored.Select(p => Math.Abs(p.Log2!.Value)));
        double? slope = scored.Length >= 3 ? Stats.Slope(scored.Select(p => Math.Log2(p.BatchSize)).ToArray(), scored.Select(p => p.Log2!.Value).ToArray()) : null;
        return new ErrorSummary(median, scored.Length, slope);
    }
}
