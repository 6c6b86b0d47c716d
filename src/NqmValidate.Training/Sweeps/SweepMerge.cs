namespace NqmValidate.Training.Sweeps;

/// <summary>What a merge did.</summary>
public sealed record MergeSummary(IReadOnlyList<StudyResult> Results, int StudiesTotal, int TrialsCopied, int TrialsAlreadyThere);

/// <summary>
/// Combines sweep directories of one spec (the shards of a cluster job, or runs on several
/// machines) into one: finished trial directories are copied (a trial present in two sources
/// must have the same outcome), and the tables are recomputed from all logs, exactly as one
/// run over the union would write them.
/// </summary>
public static class SweepMerge
{
    public static MergeSummary Merge(IReadOnlyList<string> sources, string output)
    {
        if (sources.Count == 0) throw new SweepStoreException("merge: no sweep directories given.");
        var stores = sources.Select(s => new ResultsStore(s)).ToList();
        var spec = stores[0].ReadSpec();
        string key = ResultsStore.ResultsKey(spec);
        foreach (var s in stores.Skip(1))
            if (ResultsStore.ResultsKey(s.ReadSpec()) != key)
                throw new SweepStoreException($"merge: {s.Root} was made by another spec than {stores[0].Root} (compare their spec.json); only shards of one sweep can be merged.");

        var target = new ResultsStore(output);
        // A sweep (or another merge) writing the same directory would race with the copies.
        using var owner = RunLock.Acquire(target.Root);
        target.Open(spec);
        var plan = SweepPlan.Create(spec);
        int copied = 0, present = 0;
        foreach (var source in stores)
        {
            if (source.Root == target.Root) continue;
            foreach (var study in plan.Studies)
            foreach (var trial in study.Trials)
            {
                string from = source.TrialDirectory(study.Id, trial.Id);
                if (!Directory.Exists(from)) continue;
                var log = ResultsStore.ReadLog(from)!;
                if (target.TryRead(study.Id, trial.Id) is { } existing)
                {
                    if (existing.Status != log.Status || existing.StepsToTarget != log.StepsToTarget)
                        throw new SweepStoreException(
                            $"merge: {study.Id}/{trial.Id} differs between {from} ({log.Status}, {log.StepsToTarget}) and " +
                            $"{target.TrialDirectory(study.Id, trial.Id)} ({existing.Status}, {existing.StepsToTarget}).");
                    present++;
                    continue;
                }
                string temp = target.NewAttempt(study.Id, trial.Id);
                CopyDirectory(from, temp);
                target.Commit(temp, study.Id, trial.Id);
                copied++;
            }
        }
        var results = ChainProgress.Replay(plan, plan.Chains, target);
        SweepTables.Write(target, plan, results);
        return new MergeSummary(results, plan.Studies.Count(), copied, present);
    }

    static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
