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
        // The recorded steps are the trial's only under the same learning rate at every step: a schedule whose decay
        // length is max_steps would follow another path if max_steps were moved, so only constant schedules extend.
        if (config.Optimizer.Schedule is { } schedule && schedule != "constant")
            throw new TrialConfigException($"only a constant learning-rate schedule can be run on past its recorded steps (this trial's is '{schedule}').");
        var steps = Enumerable.Range(1, points).Select(i => from + (long)Math.Round((double)i * (to - from) / points)).Distinct().ToList();
        using var replay = new TrialRunner.TrialReplay(config with { MaxSteps = Math.Max(config.MaxSteps, to) }, workload);
        var curve = new List<(long, double)>();
        foreach (long step in steps)
        {
            replay.TrainTo(step, (s, loss) =>
            {
                if (!double.IsFinite(loss)) throw new TrialConfigException($"the run past the recorded steps diverged: mini-batch loss {loss} at step {s}.");
            });
            curve.Add((step, replay.EvaluateTrainLoss()));
        }
        return curve;
    }
}
