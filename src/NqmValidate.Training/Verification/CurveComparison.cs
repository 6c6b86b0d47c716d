using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Verification;

/// <summary>
/// Where two logged curves of one trial part: <see cref="Identical"/> when every logged row (step, examples, mini-batch
/// loss, evaluated losses and errors, learning rate; not the timings) is bit-identical. Otherwise the curves part after
/// <see cref="SameThrough"/> (the last step both logged identically before the first difference, null when step 0
/// already differs) and by <see cref="PartedBy"/> (the first logged step whose values differ, or that only one logged).
/// Curves are logged at some steps only, so the parting step is bracketed, not pinned.
/// </summary>
public sealed record CurveComparison(bool Identical, long? SameThrough, long? PartedBy)
{
    public static CurveComparison Compare(IReadOnlyList<CurvePoint> recorded, IReadOnlyList<CurvePoint> replayed)
    {
        var a = recorded.ToDictionary(p => p.Step);
        var b = replayed.ToDictionary(p => p.Step);
        long? same = null;
        foreach (long step in a.Keys.Union(b.Keys).Order())
        {
            if (!a.TryGetValue(step, out var x) || !b.TryGetValue(step, out var y) || !SameValues(x, y))
                return new CurveComparison(false, same, step);
            same = step;
        }
        return new CurveComparison(true, same, null);
    }

    /// <summary>
    /// When only the ends of a trial were recorded (its initial loss, its outcome and final loss): identical, or parted at
    /// step 0 when the initial losses differ, else somewhere after step 0 and by <paramref name="end"/>.
    /// </summary>
    public static CurveComparison FromEnds(bool identical, bool initialSame, long end) =>
        identical ? new(true, null, null) : initialSame ? new(false, 0, end) : new(false, null, 0);

    /// <summary>Bitwise equality of everything but the timing (NaN equals NaN).</summary>
    static bool SameValues(CurvePoint x, CurvePoint y) =>
        x.ExamplesSeen == y.ExamplesSeen && Same(x.MinibatchLoss, y.MinibatchLoss) && Same(x.TrainLoss, y.TrainLoss)
        && Same(x.ValidationLoss, y.ValidationLoss) && Same(x.ValidationError, y.ValidationError) && Same(x.LearningRate, y.LearningRate);

    static bool Same(double? x, double? y) =>
        x is null ? y is null : y is not null && BitConverter.DoubleToInt64Bits(x.Value) == BitConverter.DoubleToInt64Bits(y.Value);
}
