using System.Diagnostics;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Sweeps;

/// <summary>
/// One run of a sweep over its results store (the caller holds the store's <see cref="RunLock"/>): the
/// chains of the shard, the trials running now, the logs read so far, the counts behind the progress
/// line and the summary, and the cancellation that stops the running trials when the run fails.
/// <see cref="SweepRunner"/> drives it: <see cref="RunTrialsAsync"/> launches trials into free job
/// slots and records each as it finishes, <see cref="Finish"/> writes the tables.
/// </summary>
internal sealed class SweepSession : IDisposable
{
    // Slot: what holds the trial's job slot: the trial itself, or the wave it trains in (one slot for the whole wave).
    sealed record RunningTrial(ChainProgress Chain, TrialPlan Trial, string Attempt, TrialRequest Request, Stopwatch Clock, object Slot);

    readonly ITrialRunner _runner;
    readonly SweepPlan _plan;
    readonly ResultsStore _store;
    readonly IProgress<SweepProgress>? _progress;
    readonly Stopwatch _clock;
    readonly CancellationTokenSource _stopAll;
    readonly List<ChainProgress> _chains;
    // Logs are read once and cached: progress sums the steps trained over them.
    readonly Dictionary<(string Study, string Trial), TrialLog> _logs = new();
    readonly Dictionary<Task<TrialExit>, RunningTrial> _running = new();
    readonly HashSet<string> _skipped = []; // interrupted by someone else this run: left for the next run
    readonly int _studiesTotal, _trialsTotal, _trialsDoneAtStart, _adopted;
    int _runNow, _crashedNow, _discarded;
    double _trialSecondsNow;
    string? _lastEvent;

    ExperimentSpec Spec => _plan.Spec;

    /// <summary>
    /// Opens the store for this run: records the spec and checks the data, adopts the attempts a killed run
    /// finished, deletes crashed trials when asked to retry them, then walks the shard's chains over the logs present.
    /// </summary>
    public SweepSession(ITrialRunner runner, SweepPlan plan, ResultsStore store, SweepOptions options,
        IProgress<SweepProgress>? progress, Stopwatch clock, CancellationToken cancel)
    {
        _runner = runner;
        _plan = plan;
        _store = store;
        _progress = progress;
        _clock = clock;
        store.Open(Spec);
        store.CheckData(Data.FashionMnist.Identity(Spec.Workload?.Data.Dir));
        _adopted = store.RecoverAttempts();
        var chainPlans = plan.Shard(options.Shard.Index, options.Shard.Count);
        if (options.RetryCrashed) DeleteCrashed(store, chainPlans);
        _chains = chainPlans.Select(c => new ChainProgress(plan, c, ReadLog, Discard)).ToList();
        _studiesTotal = chainPlans.Sum(c => c.Studies.Count);
        _trialsTotal = chainPlans.Sum(c => c.Studies.Sum(s => s.Trials.Count));
        _trialsDoneAtStart = chainPlans.SelectMany(c => c.Studies).Sum(s => s.Trials.Count(t => Directory.Exists(store.TrialDirectory(s.Id, t.Id))));
        _stopAll = CancellationTokenSource.CreateLinkedTokenSource(cancel); // last: nothing after it can throw before Dispose is owed
    }

    /// <summary>
    /// Runs trials until none is left to launch (or the run is cancelled), up to `jobs` at once. On an exception the
    /// trials still running are stopped before it propagates.
    /// </summary>
    public async Task RunTrialsAsync()
    {
        try
        {
            while (true)
            {
                LaunchIntoFreeSlots();
                if (_running.Count == 0) break;
                ReportProgress(); // after the launches, so that the running count includes the trials just started
                await OnFinishedAsync();
            }
        }
        finally
        {
            await StopRunningAsync();
        }
        ReportProgress();
    }

    /// <summary>The summary of this run; writes the tables of every complete study of the shard.</summary>
    public SweepSummary Finish()
    {
        var results = _chains.SelectMany(c => c.Results).ToList();
        var summary = new SweepSummary(results, _chains.All(c => c.Complete), _studiesTotal, _runNow,
            _trialsDoneAtStart - _adopted, _adopted, _crashedNow, StepsTrained(), _clock.Elapsed, _discarded);
        SweepTables.Write(_store, _plan, results);
        return summary;
    }

    public void Dispose() => _stopAll.Dispose();

    /// <summary>Job slots in use: a wave of stacked trials holds one slot.</summary>
    int SlotsInUse => _running.Values.Select(r => r.Slot).Distinct().Count();

    void LaunchIntoFreeSlots()
    {
        var token = _stopAll.Token;
        while (!token.IsCancellationRequested && SlotsInUse < Spec.Jobs)
        {
            if (NextWave() is var (waveChain, ranks)) LaunchWave(waveChain, ranks, token);
            else if (NextTrial() is var (chain, trial, rank))
            {
                var request = new TrialRequest(Spec, chain.Current!, trial, chain.LaunchCap(rank));
                string attempt = _store.NewAttempt(chain.Current!.Id, trial.Id);
                var task = _runner.RunAsync(request, attempt, pid => { if (pid > 0) ResultsStore.RecordPid(attempt, pid); }, token);
                _running[task] = new RunningTrial(chain, trial, attempt, request, Stopwatch.StartNew(), new object());
            }
            else break;
        }
    }

    /// <summary>
    /// Launches the trials of <paramref name="chain"/>'s current wave that have no log yet, together: as one stacked model
    /// when the runner can (<see cref="IWaveRunner"/>), else side by side. They share the wave's cap and one job slot.
    /// </summary>
    void LaunchWave(ChainProgress chain, IReadOnlyList<int> ranks, CancellationToken token)
    {
        var slot = new object();
        var members = ranks.Select(rank =>
        {
            var trial = chain.Order[rank];
            var request = new TrialRequest(Spec, chain.Current!, trial, chain.LaunchCap(rank));
            return (Trial: trial, Request: request, Attempt: _store.NewAttempt(chain.Current!.Id, trial.Id));
        }).ToList();
        IReadOnlyList<Task<TrialExit>> tasks = _runner is IWaveRunner waves
            ? waves.RunWave(members.Select(m => (m.Request, m.Attempt)).ToList(),
                pid => { if (pid > 0) foreach (var m in members) ResultsStore.RecordPid(m.Attempt, pid); }, token)
            : members.Select(m => _runner.RunAsync(m.Request, m.Attempt, pid => { if (pid > 0) ResultsStore.RecordPid(m.Attempt, pid); }, token)).ToList();
        foreach (var (m, task) in members.Zip(tasks))
            _running[task] = new RunningTrial(chain, m.Trial, m.Attempt, m.Request, Stopwatch.StartNew(), slot);
    }

    /// <summary>
    /// The next wave of a stacked chain (<see cref="ChainProgress.Wave"/> &gt; 1) with no trial running: the ranks of the
    /// wave holding its first trial without a valid log, those without a log. Every earlier wave has finished, so their
    /// cap is final. Chains of single trials are <see cref="NextTrial"/>'s.
    /// </summary>
    (ChainProgress, IReadOnlyList<int>)? NextWave()
    {
        var active = _running.Values.ToList();
        foreach (var chain in _chains.Where(c => !c.Complete && c.Wave > 1).OrderBy(c => active.Count(r => r.Chain == c)))
        {
            if (active.Any(r => r.Chain == chain)) continue;
            int first = chain.ValidPrefix, start = first - first % chain.Wave;
            var ranks = Enumerable.Range(start, Math.Min(chain.Wave, chain.Order.Count - start))
                .Where(rank => rank >= first && !chain.Logs.ContainsKey(chain.Order[rank].Id)
                               && !_skipped.Contains(chain.Current!.Id + "/" + chain.Order[rank].Id))
                .ToList();
            if (ranks.Count > 0) return (chain, ranks);
        }
        return null;
    }

    /// <summary>Waits for one running trial to end and records its outcome, or leaves it for the next run.</summary>
    async Task OnFinishedAsync()
    {
        var finished = await Task.WhenAny(_running.Keys);
        var r = _running[finished];
        _running.Remove(finished);
        var exit = await finished; // a TrialLaunchException propagates (it would fail every trial)
        var log = ResultsStore.ReadLog(r.Attempt, tolerant: true);
        bool outcome = log?.Status is TrialStatus.Reached or TrialStatus.BudgetExhausted or TrialStatus.Diverged;
        if (!outcome && !exit.Cancelled && exit.ExitCode == 2)
            throw new TrialLaunchException(
                $"trial {r.Request.Study.Id}/{r.Trial.Id} rejected its arguments (exit code 2; see {r.Attempt}/trial.log):\n{exit.StderrTail}");
        if (!outcome && (exit.Cancelled || log?.Status == TrialStatus.Interrupted))
        {
            // Not a result: the next run starts this trial again.
            Directory.Delete(r.Attempt, true);
            _skipped.Add(r.Request.Study.Id + "/" + r.Trial.Id);
            return;
        }
        Record(r, exit, outcome);
    }

    /// <summary>Commits a trial that ended with an outcome, or crashed (then recorded as crashed), and advances its chain.</summary>
    void Record(RunningTrial r, TrialExit exit, bool outcome)
    {
        if (!outcome)
        {
            ResultsStore.RecordCrash(r.Attempt, r.Request, exit);
            _crashedNow++;
        }
        _store.Commit(r.Attempt, r.Request.Study.Id, r.Trial.Id);
        var committed = ReadLog(r.Request.Study.Id, r.Trial.Id)!;
        _runNow++;
        _trialSecondsNow += r.Clock.Elapsed.TotalSeconds;
        _lastEvent = $"{r.Request.Study.Id}/{r.Trial.Id} lr={r.Trial.Point.LearningRate:G3} {Describe(committed)}";
        r.Chain.Finished(r.Trial, committed);
    }

    void ReportProgress()
    {
        if (_progress is null) return;
        // Discarded speculative logs run again: count each trial once.
        int done = Math.Min(_trialsTotal, _trialsDoneAtStart + _runNow - _discarded);
        TimeSpan? remaining = _runNow == 0 ? null
            : TimeSpan.FromSeconds(_trialSecondsNow / _runNow * (_trialsTotal - done) / (Spec.Jobs * _chains.Max(c => c.Wave)));
        _progress.Report(new SweepProgress(
            _chains.Sum(c => c.Results.Count), _studiesTotal, done, _trialsTotal, _running.Count,
            StepsTrained(), _clock.Elapsed, remaining,
            _chains.Where(c => !c.Complete).Select(c => (c.Current!.Id, c.BestSoFar)).ToList(), _lastEvent));
    }

    /// <summary>On an exception, stops the other trials before leaving (their attempts are cleaned on the next run).</summary>
    async Task StopRunningAsync()
    {
        if (_running.Count == 0) return;
        await _stopAll.CancelAsync();
        try { await Task.WhenAll(_running.Keys); } catch (Exception) { /* already failing */ }
    }

    TrialLog? ReadLog(string study, string trial)
    {
        if (_logs.TryGetValue((study, trial), out var hit)) return hit;
        var log = _store.TryRead(study, trial);
        if (log is not null) _logs[(study, trial)] = log;
        return log;
    }

    /// <summary>Deletes a speculative trial whose cap turned out too loose (it runs again with the exact cap).</summary>
    void Discard(string study, string trial)
    {
        _logs.Remove((study, trial));
        _store.Discard(study, trial);
        _discarded++;
    }

    long StepsTrained() => _logs.Values.Sum(l => l.StepsRun);

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
    (ChainProgress, TrialPlan, int)? NextTrial()
    {
        var active = _running.Values.ToList();
        foreach (bool speculative in new[] { false, true })
        {
            foreach (var chain in _chains.OrderBy(c => active.Count(r => r.Chain == c)))
            {
                if (chain.Complete || chain.Wave > 1) continue;
                bool busy = active.Any(r => r.Chain == chain);
                if (busy != speculative) continue;
                for (int rank = chain.ValidPrefix; rank < chain.Order.Count; rank++)
                {
                    var t = chain.Order[rank];
                    if (chain.Logs.ContainsKey(t.Id) || active.Any(r => r.Chain == chain && r.Trial == t)) continue;
                    if (_skipped.Contains(chain.Current!.Id + "/" + t.Id)) break; // blocked until the next run
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
