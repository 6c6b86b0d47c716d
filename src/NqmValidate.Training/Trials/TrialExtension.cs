using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Workloads;

namespace NqmValidate.Training.Trials;

/// <summary>
/// A finished trial run on past the step where it stopped: the same trial (model, seeds, data order, update rule),
/// replayed from its recorded configuration and trained to a multiple of its steps-to-target, its training loss
/// evaluated on an even grid of steps beyond. The fit of the loss floor reads this longer curve: a curve that stops
/// at the target cannot separate the floor from the remaining excess loss (docs/validation.md).
/// </summary>
public static class TrialExtension
{
    /// <param name="config">The trial's recorded (resolved) configuration.</param>
    /// <param name="workload">Its workload.</param>
    /// <param name="from">The last step of the recorded curve (the trial's steps-to-target).</param>
    /// <param name="to">The step to train to (above <paramref name="from"/>).</param>
    /// <param name="points">Evaluations, evenly spaced over (from, to].</param>
    /// <returns>(step, training loss) at each evaluated step beyond <paramref name="from"/>, ascending.</returns>
    public static IReadOnlyList<(long Step, double TrainLoss)> Run(TrialConfig config, IWorkload workload, long from, long to, int points)
    {
        if (to <= from) throw new ArgumentOutOfRangeException(nameof(to), $"must exceed the recorded {from} steps.");
        ArgumentOutOfRangeException.ThrowIfLessThan(points, 1);
        var steps = Enumerable.Range(1, points).Select(i => from + (long)Math.Round((double)i * (to - from) / points)).Distinct().ToList();
        var losses = LossesAt(config, workload, steps);
        if (Array.FindIndex(losses, double.IsPositiveInfinity) is var diverged and >= 0)
            throw new TrialConfigException($"the run past the recorded steps diverged before step {steps[diverged]}.");
        return steps.Zip(losses).ToList();
    }

    /// <summary>
    /// The training loss of <paramref name="config"/>'s trial (replayed from step 0, whatever its max_steps) at each of
    /// <paramref name="steps"/> (ascending, ≥ 1); +∞ from the first non-finite mini-batch or evaluated loss on (a run that
    /// blew up never reaches a target). Only non-finite losses count: the trial's own divergence rule (a running loss above
    /// divergence_factor × the initial loss) is not applied here, so a run the trial would stop may still be followed.
    /// A replicate of a trial is this with another seed.
    /// </summary>
    public static double[] LossesAt(TrialConfig config, IWorkload workload, IReadOnlyList<long> steps)
    {
        if (steps.Count == 0 || steps[0] < 1 || steps.Zip(steps.Skip(1)).Any(p => p.Second <= p.First))
            throw new ArgumentException("steps must be ascending and at least 1.", nameof(steps));
        // The recorded steps are the trial's only under the same learning rate at every step: a schedule whose decay
        // length is max_steps would follow another path if max_steps were moved, so only constant schedules extend.
        if (config.Optimizer.Schedule is { } schedule && schedule != "constant")
            throw new TrialConfigException($"only a constant learning-rate schedule can be run on past its recorded steps (this trial's is '{schedule}').");
        using var replay = new TrialRunner.TrialReplay(config with { MaxSteps = Math.Max(config.MaxSteps, steps[^1]) }, workload);
        var losses = new double[steps.Count];
        Array.Fill(losses, double.PositiveInfinity);
        for (int i = 0; i < steps.Count; i++)
        {
            bool diverged = false;
            replay.TrainTo(steps[i], (_, loss) => diverged |= !double.IsFinite(loss));
            if (diverged) break;
            double loss = replay.EvaluateTrainLoss();
            if (!double.IsFinite(loss)) break;
            losses[i] = loss;
        }
        return losses;
    }
}
