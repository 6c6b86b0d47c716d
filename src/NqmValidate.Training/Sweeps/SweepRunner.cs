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
    /// <summary>Runs (or resumes) the shard's trials, then writes the tables; the run's state lives in a <see cref="SweepSession"/>.</summary>
    public async Task<SweepSummary> RunAsync(SweepOptions options, IProgress<SweepProgress>? progress = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var plan = SweepPlan.Create(options.Spec);
        var store = new ResultsStore(options.OutDirectory);
        // One live sweep per directory: a second one would kill or duplicate the first one's trials.
        using var owner = RunLock.Acquire(store.Root);
        using var session = new SweepSession(runner, plan, store, options, progress, clock, cancel);
        await session.RunTrialsAsync();
        return session.Finish();
    }
}
