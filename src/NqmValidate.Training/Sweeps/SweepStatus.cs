using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Sweeps;

/// <summary>Counts of one study's trials in a sweep directory.</summary>
public sealed record StudyStatus(string Study, int Trials, int Finished, int Reached, int Crashed, int Running, int Stale, bool Complete, long? StepsToTarget);

/// <summary>The state of a sweep directory (`nqm status`).</summary>
public sealed record SweepStatusReport(string Name, IReadOnlyList<StudyStatus> Studies)
{
    public int TrialsTotal => Studies.Sum(s => s.Trials);
    public int TrialsFinished => Studies.Sum(s => s.Finished);
    public int TrialsRunning => Studies.Sum(s => s.Running);
    public int TrialsCrashed => Studies.Sum(s => s.Crashed);
    public int TrialsPending => TrialsTotal - TrialsFinished - TrialsRunning;
    public int StudiesComplete => Studies.Count(s => s.Complete);
}

public static class SweepStatus
{
    /// <summary>Reads a sweep directory without changing it. A trial is running when its attempt
    /// directory names a live process; an attempt without one is stale (a killed sweep's).</summary>
    public static SweepStatusReport Read(string directory)
    {
        var store = new ResultsStore(directory);
        var spec = store.ReadSpec();
        var plan = SweepPlan.Create(spec);
        var complete = ChainProgress.Replay(plan, plan.Chains, store).ToDictionary(r => r.Study.Id);
        var studies = new List<StudyStatus>();
        foreach (var s in plan.Studies)
        {
            int finished = 0, reached = 0, crashed = 0, running = 0, stale = 0;
            foreach (var t in s.Trials)
            {
                if (store.TryRead(s.Id, t.Id) is { } log)
                {
                    finished++;
                    if (log.Status == TrialStatus.Reached) reached++;
                    if (log.Status == TrialStatus.Crashed) crashed++;
                }
            }
            string studyDir = Path.Combine(store.TrialsRoot, s.Id);
            if (Directory.Exists(studyDir))
                foreach (var attempt in Directory.GetDirectories(studyDir, ".*.attempt-*"))
                    if (IsLive(attempt)) running++; else stale++;
            studies.Add(new StudyStatus(s.Id, s.Trials.Count, finished, reached, crashed, running, stale,
                complete.ContainsKey(s.Id), complete.GetValueOrDefault(s.Id)?.StepsToTarget));
        }
        return new SweepStatusReport(spec.Name, studies);
    }

    static bool IsLive(string attempt) => ResultsStore.ProcessesRunning(attempt).Count > 0;
}
