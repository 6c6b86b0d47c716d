using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Sweeps;

/// <summary>What a finished trial logged: its trial.json record and the evaluated training losses of its curve.csv.</summary>
/// <param name="Record">The trial's record: outcome and the configuration it ran with.</param>
/// <param name="TrainLoss">(step, train_loss) of every evaluation, ascending.</param>
public sealed record TrialLog(TrialRecord Record, IReadOnlyList<(long Step, double Loss)> TrainLoss)
{
    /// <summary>The trial's own outcome (Reached, BudgetExhausted, Diverged or Crashed).</summary>
    public TrialStatus Status => Record.Status;
    /// <summary>First evaluation step that met the target (Reached only).</summary>
    public long? StepsToTarget => Record.StepsToTarget;
    /// <summary>Steps trained when it stopped (for Diverged: the step it diverged at).</summary>
    public long StepsRun => Record.StepsRun;
    /// <summary>The step cap it was launched with.</summary>
    public long MaxSteps => Record.Config.MaxSteps;
}

/// <summary>How a trial counts in its study.</summary>
public enum StudyTrialStatus
{
    Reached,
    BudgetExhausted,
    Diverged,
    /// <summary>Trained as many steps as an earlier trial's steps-to-target without reaching the target first.</summary>
    Pruned,
    Crashed,
}

/// <summary>One trial as its study counts it.</summary>
public sealed record StudyTrial(
    TrialPlan Trial, int Rank, long StepCap, StudyTrialStatus Status, long? StepsToTarget, long StepsCounted,
    double? InitialLoss, double? FinalLoss, TrialLog Log);

/// <summary>A study's measured result: steps-to-target = the minimum over its trials.</summary>
public sealed record StudyResult(StudyPlan Study, IReadOnlyList<StudyTrial> Trials, StudyTrial? Best)
{
    public long? StepsToTarget => Best?.StepsToTarget;
    public int Count(StudyTrialStatus s) => Trials.Count(t => t.Status == s);
    /// <summary>Steps the study's trials trained up to their outcome (what pruning saves).</summary>
    public long StepsTrained => Trials.Sum(t => t.StepsCounted);
}

/// <summary>
/// Steps-to-result as a pure function of logged measurements (Shallue et al.'s
/// compute_steps_to_result), with best-so-far pruning applied to the logs, not to the timing.
///
/// Trial k (in run order) has the step cap c_k = min(budget, min over earlier trials j &lt; k of
/// their counted steps-to-target). Its logged run — which trained at least c_k steps, because
/// the sweep launched it with a cap computed from a subset of those trials — is truncated at
/// c_k: reached iff it met the target at a step up to c_k;
/// diverged likewise; otherwise pruned (or budget exhausted when c_k is the budget). A trial
/// reaching exactly at c_k counts as reached (a tie): trials always evaluate their last step and
/// find their first crossing independently of the cap. The best trial is the one with the fewest
/// steps, ties to the smallest canonical index. The result therefore does not depend on timing,
/// parallelism, kill/resume or run order, and is the same as without pruning.
///
/// With stacked trials (a `stack` of K), the trials of a study train in waves of K consecutive ranks, launched together
/// as one stacked model: a wave's caps come from the finished earlier waves only, c_k = min(budget, min over trials j
/// before the wave of k of their counted steps-to-target), so every cap is known when its wave starts and no trial in
/// a wave waits for another. Waves of 1 are the sequential rule above. A wider wave prunes later (its trials train to
/// a looser cap), never differently: the best trial reaches at or before every cap.
/// </summary>
public static class StudyResults
{
    /// <summary>Counts a study whose trials, in run order, all have logs.</summary>
    public static StudyResult Compute(StudyPlan study, IReadOnlyList<TrialPlan> runOrder,
        IReadOnlyDictionary<string, TrialLog> logs, bool prune, int wave = 1)
    {
        var rows = new List<StudyTrial>();
        long budget = study.BudgetSteps;
        long best = long.MaxValue, bestBeforeWave = long.MaxValue;
        StudyTrial? bestTrial = null;
        for (int rank = 0; rank < runOrder.Count; rank++)
        {
            var plan = runOrder[rank];
            var log = logs[plan.Id];
            if (rank % wave == 0) bestBeforeWave = best;
            long cap = prune ? Math.Min(budget, bestBeforeWave) : budget;
            bool capIsBudget = cap == budget;
            bool Within(long step) => step < cap || (capIsBudget && step <= cap);
            StudyTrialStatus status;
            long? steps = null;
            long counted;
            switch (log.Status)
            {
                // A trial always evaluates its last step and finds its first crossing independently of its cap, so a
                // trial reaching exactly at c_k ties with the best so far and counts as reached.
                case TrialStatus.Reached when log.StepsToTarget is { } s && s <= cap:
                    status = StudyTrialStatus.Reached; steps = s; counted = s; break;
                case TrialStatus.Diverged when Within(log.StepsRun):
                    status = StudyTrialStatus.Diverged; counted = log.StepsRun; break;
                case TrialStatus.Crashed:
                    status = StudyTrialStatus.Crashed; counted = 0; break;
                default:
                    status = capIsBudget ? StudyTrialStatus.BudgetExhausted : StudyTrialStatus.Pruned; counted = cap; break;
            }
            // Final loss: the last evaluation inside what counts (strictly below a pruning cap,
            // where a trial may or may not have evaluated).
            double? final = log.TrainLoss.Where(e => status == StudyTrialStatus.Pruned ? e.Step < cap : e.Step <= counted)
                .Select(e => (double?)e.Loss).LastOrDefault();
            double? initial = log.TrainLoss.Count > 0 ? log.TrainLoss[0].Loss : null;
            var row = new StudyTrial(plan, rank, cap, status, steps, counted, initial, final, log);
            rows.Add(row);
            // The best trial: fewest steps, ties to the smallest canonical index, so that the reported hyperparameters
            // do not depend on the run order (pruned and predicted vs exhaustive and canonical give the same row).
            if (steps is { } reached && (reached < best || (reached == best && plan.Index < bestTrial!.Trial.Index)))
            {
                best = reached;
                bestTrial = row;
            }
        }
        return new StudyResult(study, rows, bestTrial);
    }

    /// <summary>
    /// Checks the logs of a study in run order: the longest prefix of trials whose logs were
    /// run with exactly the cap their predecessors give them. Returns the rank of the first trial
    /// without such a log (Count when all are valid) and the ids of logs run with another cap
    /// (launched before an earlier trial finished and lowered the cap): those must run again.
    /// </summary>
    public static (int ValidPrefix, IReadOnlyList<string> WrongCap) Validate(StudyPlan study, IReadOnlyList<TrialPlan> runOrder,
        IReadOnlyDictionary<string, TrialLog> logs, bool prune, int wave = 1)
    {
        long best = long.MaxValue, bestBeforeWave = long.MaxValue;
        var wrong = new List<string>();
        for (int rank = 0; rank < runOrder.Count; rank++)
        {
            if (rank % wave == 0) bestBeforeWave = best;
            if (!logs.TryGetValue(runOrder[rank].Id, out var log)) return (rank, wrong);
            long cap = prune ? Math.Min(study.BudgetSteps, bestBeforeWave) : study.BudgetSteps;
            if (log.MaxSteps != 0 && log.MaxSteps != cap)
            {
                wrong.Add(runOrder[rank].Id);
                return (rank, wrong);
            }
            bool capIsBudget = cap == study.BudgetSteps;
            if (log.Status == TrialStatus.Reached && log.StepsToTarget is { } s && (s < cap || (capIsBudget && s <= cap)))
                best = Math.Min(best, s);
        }
        return (runOrder.Count, wrong);
    }

    /// <summary>
    /// The step cap a trial can be launched with now: min(budget, the steps-to-target of the
    /// finished trials before it). It is never below the cap <see cref="Compute"/> gives it
    /// once every earlier trial has finished, so truncating its log later is always possible.
    /// </summary>
    public static long LaunchCap(StudyPlan study, IReadOnlyList<TrialPlan> runOrder, int rank,
        IReadOnlyDictionary<string, TrialLog> logs, bool prune, int wave = 1)
    {
        if (!prune) return study.BudgetSteps;
        long cap = study.BudgetSteps;
        for (int j = 0; j < rank - rank % wave; j++)
            if (logs.TryGetValue(runOrder[j].Id, out var log) && log.Status == TrialStatus.Reached && log.StepsToTarget is { } s)
                cap = Math.Min(cap, s);
        return cap;
    }
}
