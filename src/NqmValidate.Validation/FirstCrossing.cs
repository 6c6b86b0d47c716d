namespace NqmValidate.Validation;

/// <summary>
/// One study's best hyperparameters re-run with several seeds. Each replicate ran twice: as the sweep runs a trial
/// (stopping at the target: <c>MeasuredSteps[r]</c> is its steps-to-target, found on the trial's coarse evaluations
/// and then the grid points inside the first interval that met the target; null if not reached), and replayed past the
/// target with its training loss evaluated at every <c>Steps</c> point (the trial's evaluation grid): <c>Losses[r][i]</c>
/// at <c>Steps[i]</c>, +∞ once replicate r diverged. Replicate 0 is the recorded trial's own seed; <c>RecordedSteps</c>
/// is the study's steps-to-target in steps.csv.
/// </summary>
public sealed record ReplicateCurves(string Optimizer, int BatchSize, double LearningRate, double? RecordedSteps,
    IReadOnlyList<long> Steps, IReadOnlyList<long> Seeds, IReadOnlyList<long?> MeasuredSteps, IReadOnlyList<IReadOnlyList<double>> Losses);

/// <summary>
/// How a study's steps-to-target (measured on one noisy run) compares with the crossing of the expected loss (estimated
/// by the replicates' mean curve), which is what the NQM predicts. The first crossing of a noisy curve comes early where
/// its fluctuations are large against its slope, so <c>GridRatio</c> (median first grid crossing over the mean curve's)
/// is ≤ 1 in expectation; the trial's own procedure can also miss a dip between two coarse evaluations, which counts
/// the other way. <c>Ratio</c> (median measured steps over the mean curve's crossing) is the net effect on the numbers
/// the validation compares with the NQM, and <c>RecordedRatio</c> (the study's steps-to-target over the mean curve's
/// crossing) that number's own distance from the expected-loss crossing at its hyperparameters: it also carries the
/// study's selection (the best of several learning rates per seed, the median of its seeds).
/// <para><c>OwnSeedMeasured</c>: replicate 0's measured steps, which must equal <c>RecordedSteps</c> (the trial repeats).
/// Medians rank a replicate that never reached the target after all others (null if such replicates are the middle).
/// <c>FirstStepCrossed</c>: some replicate was at the target already at the first evaluated grid step
/// (<c>FirstStep</c>), so its grid crossing is only an upper bound.</para>
/// </summary>
public sealed record FirstCrossingRow(
    string Optimizer, int BatchSize, double LearningRate, int Replicates, double? RecordedSteps, long? OwnSeedMeasured,
    int ReplicatesReached, long? MeasuredMin, double? MeasuredMedian, long? MeasuredMax, double? GridCrossingMedian,
    long? MeanCurveCrossing, double? Ratio, double? GridRatio, double? RecordedRatio, bool FirstStepCrossed, long FirstStep, long LastStep);

public static class FirstCrossing
{
    /// <summary>The first of <paramref name="steps"/> at which <paramref name="losses"/> is at or below <paramref name="target"/>; null if none.</summary>
    public static long? Of(IReadOnlyList<long> steps, IReadOnlyList<double> losses, double target)
    {
        if (steps.Count != losses.Count) throw new ArgumentException($"{steps.Count} steps but {losses.Count} losses.");
        for (int i = 0; i < steps.Count; i++)
            if (losses[i] <= target) return steps[i];
        return null;
    }

    /// <summary>The mean of the replicates' curves at each step (+∞ where any replicate diverged: its expected loss is unbounded).</summary>
    public static double[] MeanCurve(IReadOnlyList<IReadOnlyList<double>> losses) =>
        Enumerable.Range(0, losses[0].Count).Select(i => losses.Average(c => c[i])).ToArray();

    /// <summary>The median with null (never reached) ranked after every value; null when the middle is such a replicate.</summary>
    public static double? Median(IEnumerable<long?> values)
    {
        var ranked = values.Select(c => c is long v ? v : double.PositiveInfinity).Order().ToArray();
        if (ranked.Length == 0) return null;
        int n = ranked.Length;
        double median = n % 2 == 1 ? ranked[n / 2] : (ranked[n / 2 - 1] + ranked[n / 2]) / 2;
        return double.IsFinite(median) ? median : null;
    }

    public static FirstCrossingRow Measure(ReplicateCurves curves, double target)
    {
        int n = curves.Losses.Count;
        if (n == 0) throw new ArgumentException("no replicates.");
        if (curves.Seeds.Count != n || curves.MeasuredSteps.Count != n)
            throw new ArgumentException($"{curves.Seeds.Count} seeds, {curves.MeasuredSteps.Count} measured steps and {n} curves.");
        var grid = curves.Losses.Select(l => Of(curves.Steps, l, target)).ToList();
        var reached = curves.MeasuredSteps.Where(c => c is not null).Select(c => c!.Value).ToList();
        double? measuredMedian = Median(curves.MeasuredSteps), gridMedian = Median(grid);
        long? meanCrossing = Of(curves.Steps, MeanCurve(curves.Losses), target);
        return new FirstCrossingRow(curves.Optimizer, curves.BatchSize, curves.LearningRate, n, curves.RecordedSteps, curves.MeasuredSteps[0],
            reached.Count, reached.Count > 0 ? reached.Min() : null, measuredMedian, reached.Count > 0 ? reached.Max() : null, gridMedian,
            meanCrossing, measuredMedian / meanCrossing, gridMedian / meanCrossing, curves.RecordedSteps / meanCrossing,
            grid.Contains(curves.Steps[0]), curves.Steps[0], curves.Steps[^1]);
    }
}
