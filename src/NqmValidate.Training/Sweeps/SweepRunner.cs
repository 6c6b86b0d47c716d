using System.Diagnostics;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Sweeps;

/// <summary>A sweep to run: the resolved spec, where, and which shard.</summary>
public sealed record SweepOptions(ExperimentSpec Spec, string OutDirectory, Shard Shard, bool RetryCrashed = false);

/// <summary>A snapshot for progress displays.</summary>
public sealed record SweepProgress(
    int StudiesDone, int StudiesTotal, int TrialsDone, int TrialsTotal, int Running,
    long StepsTrained, TimeSpan Elapsed, TimeSpan? Remaining,
    IReadOnlyList<(string Study, long? Best)> Active, string? LastEvent);

/// <summary>What a run of the sweep did.</summary>
/// <param name="Results">Every complete study of the shard, in plan order.</param>
/// <param name="Complete">All studies of the shard are complete.</param>
/// <param name="StudiesTotal">Studies in the shard.</param>
/// <param name="TrialsRunNow">Trials this run ran to an outcome.</param>
/// <param name="TrialsReused">Finished trials found in the store.</param>
/// <param name="TrialsAdopted">Trials a killed run finished, adopted from their attempt directories.</param>
/// <param name="TrialsCrashedNow">Trials of this run whose process died.</param>
/// <param name="Wall">Wall time of this run.</param>
/// <param name="TrialsDiscarded">Speculative trials whose cap turned out too loose, run again.</param>
/// <param name="StepsTrained">Steps trained by all finished trials of the shard (reused ones included).</param>
public sealed record SweepSummary(
    IReadOnlyList<StudyResult> Results, bool Complete, int StudiesTotal, int TrialsRunNow, int TrialsReused,
    int TrialsAdopted, int TrialsCrashedNow, long StepsTrained, TimeSpan Wall, int TrialsDiscarded = 0);

/// <summary>
/// Runs a sweep: every study of its shard, up to `jobs` trials at once (one per chain),
/// resuming from the store. Within a study, trials run in run order, each with the step cap of
/// the trials before it; the tables are a pure function of the logs (see <see cref="StudyResults"/>),
/// so they do not depend on timing, parallelism, or on kills and resumes.
/// </summary>
public sealed class SweepRunner(ITrialRunner runner)
{
    sealed record Running(ChainProgress Chain, TrialPlan Trial, string Attempt, TrialRequest Request, Stopwatch Clock);

    public async Task<SweepSummary> RunAsync(SweepOptions options, IProgress<SweepProgress>? progress = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var spec = options.Spec;
        var plan = SweepPlan.Create(spec);
        var store = new ResultsStore(options.OutDirectory);
        // One live sweep per directory: a second one would kill or duplicate the first one's trials.
        using var owner = RunLock.Acquire(store.Root);
        store.Open(spec);
        store.CheckData(Data.FashionMnist.Identity(spec.Workload?.Data.Dir));
        int adopted = store.RecoverAttempts();
        var chainPlans = plan.Shard(options.Shard.Index, options.Shard.Count);
        if (options.RetryCrashed) DeleteCrashed(store, chainPlans);

        // Logs are read once and cached: progress sums the steps trained over them.
        var cache = new Dictionary<(string, string), TrialLog>();
        TrialLog? Read(string study, string trial)
        {
            if (cache.TryGetValue((study, trial), out var hit)) return hit;
            var log = store.TryRead(study, trial);
            if (log is not null) cache[(study, trial)] = log;
            return log;
        }
        long StepsTrained() => cache.Values.Sum(l => l.StepsRun);
        int discarded = 0;
        void Discard(string study, string trial)
        {
            cache.Remove((study, trial));
            store.Discard(study, trial);
            discarded++;
        }
        var chains = chainPlans.Select(c => new ChainProgress(plan, c, Read, Discard)).ToList();
        using var stopAll = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var token = stopAll.Token;
        int studiesTotal = chainPlans.Sum(c => c.Studies.Count);
        int trialsTotal = chainPlans.Sum(c => c.Studies.Sum(s => s.Trials.Count));
        int trialsDoneAtStart = chainPlans.SelectMany(c => c.Studies).Sum(s => s.Trials.Count(t => Directory.Exists(store.TrialDirectory(s.Id, t.Id))));
        int runNow = 0, crashedNow = 0;
        double trialSecondsNow = 0;
        var running = new Dictionary<Task<TrialExit>, Running>();
        var skipped = new HashSet<string>(); // interrupted by someone else this run: left for the next run
        string? lastEvent = null;

        void Report()
        {
            if (progress is null) return;
            // Discarded speculative logs run again: count each trial once.
            int done = Math.Min(trialsTotal, trialsDoneAtStart + runNow - discarded);
            TimeSpan? remaining = runNow == 0 ? null
                : TimeSpan.FromSeconds(trialSecondsNow / runNow * (trialsTotal - done) / spec.Jobs);
            progress.Report(new SweepProgress(
                chains.Sum(c => c.Results.Count), studiesTotal, done, trialsTotal, running.Count,
                StepsTrained(), clock.Elapsed, remaining,
                chains.Where(c => !c.Complete).Select(c => (c.Current!.Id, c.BestSoFar)).ToList(), lastEvent));
        }

        try
        {
            while (true)
            {
                while (!token.IsCancellationRequested && running.Count < spec.Jobs && Next(chains, running.Values, skipped) is var (chain, trial, rank))
                {
                    var request = new TrialRequest(spec, chain.Current!, trial, chain.LaunchCap(rank));
                    string attempt = store.NewAttempt(chain.Current!.Id, trial.Id);
                    var task = runner.RunAsync(request, attempt, pid => { if (pid > 0) ResultsStore.RecordPid(attempt, pid); }, token);
                    running[task] = new Running(chain, trial, attempt, request, Stopwatch.StartNew());
                }
                if (running.Count == 0) break;
                Report(); // after the launches, so that the running count includes the trials just started

                var finished = await Task.WhenAny(running.Keys);
                var r = running[finished];
                running.Remove(finished);
                var exit = await finished; // a TrialLaunchException propagates (it would fail every trial)
                var log = ResultsStore.ReadLog(r.Attempt, tolerant: true);
                bool finishedOutcome = log?.Status is TrialStatus.Reached or TrialStatus.BudgetExhausted or TrialStatus.Diverged;
                if (!finishedOutcome && !exit.Cancelled && exit.ExitCode == 2)
                    throw new TrialLaunchException(
                        $"trial {r.Request.Study.Id}/{r.Trial.Id} rejected its arguments (exit code 2; see {r.Attempt}/trial.log):\n{exit.StderrTail}");
                if (!finishedOutcome && (exit.Cancelled || log?.Status == TrialStatus.Interrupted))
                {
                    // Not a result: the next run starts this trial again.
                    Directory.Delete(r.Attempt, true);
                    skipped.Add(r.Request.Study.Id + "/" + r.Trial.Id);
                    continue;
                }
                if (!finishedOutcome)
                {
                    ResultsStore.RecordCrash(r.Attempt, r.Request, exit);
                    crashedNow++;
                }
                store.Commit(r.Attempt, r.Request.Study.Id, r.Trial.Id);
                var committed = Read(r.Request.Study.Id, r.Trial.Id)!;
                runNow++;
                trialSecondsNow += r.Clock.Elapsed.TotalSeconds;
                lastEvent = $"{r.Request.Study.Id}/{r.Trial.Id} lr={r.Trial.Point.LearningRate:G3} {Describe(committed)}";
                r.Chain.Finished(r.Trial, committed);
            }
        }
        finally
        {
            // On an exception, stop the other trials before leaving (their attempts are cleaned on the next run).
            if (running.Count > 0)
            {
                await stopAll.CancelAsync();
                try { await Task.WhenAll(running.Keys); } catch (Exception) { /* already failing */ }
            }
        }
        Report();

        var results = chains.SelectMany(c => c.Results).ToList();
        var summary = new SweepSummary(results, chains.All(c => c.Complete), studiesTotal, runNow,
            trialsDoneAtStart - adopted, adopted, crashedNow, StepsTrained(), clock.Elapsed, discarded);
        SweepTables.Write(store, plan, results);
        return summary;
    }

    static string Describe(TrialLog log) => log.Status switch
    {
        TrialStatus.Reached => $"reached at {log.StepsToTarget}",
        TrialStatus.Diverged => $"diverged at {log.StepsRun}",
        TrialStatus.BudgetExhausted => $"stopped at {log.StepsRun} without reaching",
        _ => log.Status.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// The next trial to launch. First, for a chain with no trial running, its first trial
    /// without a valid log: all earlier trials have finished, so it is launched with exactly
    /// the cap its study gives it. Then, to fill idle slots, speculatively the next trial of a
    /// chain whose earlier trials still run, with the cap known so far (never below the final
    /// one). A speculative log counts only if its cap turns out exact (no trial still running
    /// before it lowered the cap; the common case once good trials come first); otherwise it is
    /// discarded and the trial runs again with the exact cap. Every log in the tables was thus
    /// run with exactly its final cap, and the trial is deterministic from its arguments, so the
    /// tables are a pure function of the spec.
    /// </summary>
    static (ChainProgress, TrialPlan, int)? Next(List<ChainProgress> chains, IEnumerable<Running> running, HashSet<string> skipped)
    {
        var active = running.ToList();
        foreach (bool speculative in new[] { false, true })
        {
            foreach (var chain in chains.OrderBy(c => active.Count(r => r.Chain == c)))
            {
                if (chain.Complete) continue;
                bool busy = active.Any(r => r.Chain == chain);
                if (busy != speculative) continue;
                for (int rank = chain.ValidPrefix; rank < chain.Order.Count; rank++)
                {
                    var t = chain.Order[rank];
                    if (chain.Logs.ContainsKey(t.Id) || active.Any(r => r.Chain == chain && r.Trial == t)) continue;
                    if (skipped.Contains(chain.Current!.Id + "/" + t.Id)) break; // blocked until the next run
                    return (chain, t, rank);
                }
            }
        }
        return null;
    }

    static void DeleteCrashed(ResultsStore store, IReadOnlyList<ChainPlan> chains)
    {
        foreach (var s in chains.SelectMany(c => c.Studies))
        foreach (var t in s.Trials)
            if (store.TryRead(s.Id, t.Id)?.Status == TrialStatus.Crashed)
                Directory.Delete(store.TrialDirectory(s.Id, t.Id), true);
    }
}
