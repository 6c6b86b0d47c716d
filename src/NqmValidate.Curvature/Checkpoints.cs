
namespace NqmValidate.Curvature;

/// <summary>
/// Where in training curvature is measured: at initialisation (Steps = 0) or after Steps updates of the replayed
/// trial. <paramref name="Name"/> names a checkpoint chosen otherwise (e.g. loss-0.6: where a trial's evaluated
/// training loss first fell below 0.6).
/// </summary>
public sealed record Checkpoint(long Steps, string? Name = null)
{
    public string Label => Name ?? (Steps == 0 ? "init" : $"warmup-{Steps}");
    public override string ToString() => Name is { } n ? $"{n} (step {Steps})" : Steps == 0 ? "init" : $"warmup:{Steps}";

    /// <summary>Parses "init" or "warmup:STEPS"; a comma-separated list gives several checkpoints.</summary>
    public static IReadOnlyList<Checkpoint> ParseList(string text)
    {
        var list = new List<Checkpoint>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part == "init") list.Add(new Checkpoint(0));
            else if (part.StartsWith("warmup:", StringComparison.Ordinal) && long.TryParse(part["warmup:".Length..], out long steps) && steps >= 0)
                list.Add(new Checkpoint(steps));
            else throw new CurvatureInputException($"--checkpoint: '{part}' is not 'init' or 'warmup:STEPS' (STEPS a non-negative integer).");
        }
        if (list.Count == 0) throw new CurvatureInputException("--checkpoint: no checkpoint given (use init or warmup:STEPS).");
        if (list.Select(c => c.Steps).Distinct().Count() != list.Count) throw new CurvatureInputException($"--checkpoint: '{text}' repeats a checkpoint.");
        return list.OrderBy(c => c.Steps).ToList();
    }
}

/// <summary>
/// Checkpoints along a recorded trial's trajectory: where its evaluated training loss first fell below given levels
/// (read from its curve.csv, so the step is the first evaluated one; the trial's evaluation schedule brackets the true
/// crossing). The curvature stage reaches them by replaying the trial from its recorded configuration
/// (<see cref="Training.Trials.TrialRunner.TrialReplay"/>), so no weights need to be stored.
/// </summary>
public static class TrajectoryCheckpoints
{
    /// <param name="trialDir">A trial directory (trial.json, curve.csv).</param>
    /// <param name="levels">Training-loss levels, any order.</param>
    /// <returns>The trial's resolved configuration, init plus one checkpoint per distinct crossing step, and a note per level not used.</returns>
    public static (Training.Trials.TrialConfig Trial, IReadOnlyList<Checkpoint> Checkpoints, IReadOnlyList<string> Notes) FromTrial(
        string trialDir, IReadOnlyList<double> levels)
    {
        string recordPath = Path.Combine(trialDir, "trial.json"), curvePath = Path.Combine(trialDir, Training.Trials.CurveFile.FileName);
        if (!File.Exists(recordPath) || !File.Exists(curvePath))
            throw new CurvatureInputException($"--trial {trialDir}: not a trial directory (trial.json and curve.csv expected).");
        Training.Trials.TrialRecord record;
        try { record = Training.Trials.TrialJson.Read<Training.Trials.TrialRecord>(recordPath); }
        catch (System.Text.Json.JsonException e) { throw new CurvatureInputException($"{recordPath}: unreadable trial record ({e.Message})."); }
        var evaluated = Training.Trials.CurveFile.Read(curvePath).Where(p => p.TrainLoss is not null).OrderBy(p => p.Step).ToList();
        var checkpoints = new List<Checkpoint> { new(0) };
        var notes = new List<string>();
        foreach (double level in levels.Distinct().OrderByDescending(l => l))
        {
            if (!(level > 0) || !double.IsFinite(level)) throw new CurvatureInputException($"--loss-levels: {level} is not a positive training loss.");
            var first = evaluated.FirstOrDefault(p => p.TrainLoss < level);
            string name = FormattableString.Invariant($"loss-{level:R}");
            if (first is null) notes.Add($"{name}: the trial's evaluated training loss never fell below {level:R}; no checkpoint.");
            else if (checkpoints.Any(c => c.Steps == first.Step))
                notes.Add($"{name}: first below {level:R} at step {first.Step}, which is already a checkpoint ({checkpoints.First(c => c.Steps == first.Step).Label}).");
            else checkpoints.Add(new Checkpoint(first.Step, name));
        }
        return (record.Config, checkpoints.OrderBy(c => c.Steps).ToList(), notes);
    }

    /// <summary>
    /// The same checkpoints located by replaying the trial and evaluating its training loss at every point of the trial's
    /// own evaluation grid (<see cref="Training.Trials.EvaluationSchedule.GridPoints"/>, steps apart by at most 5%) up to
    /// its last step, instead of at the evaluations its curve.csv happens to hold: a trial with a training-loss target
    /// evaluates sparsely until it nears the target, so a level far above the target is found late there. Evaluated as
    /// the trial evaluates (its subset, chunks and evaluation weights), so the target's checkpoint is the trial's own
    /// steps-to-target. Costs one replay of the trial plus one evaluation per grid point.
    /// </summary>
    public static (Training.Trials.TrialConfig Trial, IReadOnlyList<Checkpoint> Checkpoints, IReadOnlyList<string> Notes) FromReplay(
        string trialDir, IReadOnlyList<double> levels, Training.Workloads.IWorkload workload)
    {
        var (config, _, _) = FromTrial(trialDir, []); // validates the directory and reads the recorded configuration
        var record = Training.Trials.TrialJson.Read<Training.Trials.TrialRecord>(Path.Combine(trialDir, "trial.json"));
        long last = record.StepsToTarget ?? record.StepsRun;
        var pending = new Queue<double>(levels.Distinct().OrderByDescending(l => l));
        foreach (double level in pending)
            if (!(level > 0) || !double.IsFinite(level)) throw new CurvatureInputException($"--loss-levels: {level} is not a positive training loss.");
        var checkpoints = new List<Checkpoint> { new(0) };
        var notes = new List<string>();
        using var replay = new Training.Trials.TrialRunner.TrialReplay(config, workload);
        void Take(long step, double loss)
        {
            while (pending.Count > 0 && loss < pending.Peek())
            {
                double level = pending.Dequeue();
                string name = FormattableString.Invariant($"loss-{level:R}");
                if (checkpoints.FirstOrDefault(c => c.Steps == step) is { } same)
                    notes.Add($"{name}: first below {level:R} at step {step}, which is already a checkpoint ({same.Label}).");
                else checkpoints.Add(new Checkpoint(step, name));
            }
        }
        Take(0, replay.EvaluateTrainLoss());
        foreach (long g in Training.Trials.EvaluationSchedule.GridPoints(0, last))
        {
            if (pending.Count == 0) break;
            replay.TrainTo(g);
            Take(g, replay.EvaluateTrainLoss());
        }
        foreach (double level in pending)
            notes.Add(FormattableString.Invariant($"loss-{level:R}: the trial's training loss never fell below {level:R} on its evaluation grid up to step {last}; no checkpoint."));
        return (config, checkpoints, notes);
    }
}
