namespace NqmValidate.Training.Sweeps;

/// <summary>
/// Walks one chain (an optimizer's studies in ascending batch size) over the logs present:
/// each study's trial order comes from the previous study's result, and a study is counted once
/// all its trials have logs. Used by the sweep while running and, over a finished directory, by
/// merge and status — the same function of the same logs, hence the same tables.
/// </summary>
public sealed class ChainProgress
{
    readonly SweepPlan _plan;
    readonly Func<string, string, TrialLog?> _read;
    readonly List<StudyResult> _results = [];
    double[]? _prediction;

    public ChainPlan Chain { get; }
    /// <summary>Trials launched together (<see cref="SweepPlan.WaveOf"/>): 1 unless the chain's trials are stacked.</summary>
    public int Wave { get; }
    public SearchSpace Space { get; }
    /// <summary>The study being run (null when the chain is complete).</summary>
    public StudyPlan? Current { get; private set; }
    /// <summary>The current study's trials in run order.</summary>
    public IReadOnlyList<TrialPlan> Order { get; private set; } = [];
    /// <summary>Logs of the current study's finished trials, by trial id.</summary>
    public Dictionary<string, TrialLog> Logs { get; } = new();
    public IReadOnlyList<StudyResult> Results => _results;
    public bool Complete => Current is null;

    readonly Action<string, string>? _discard;

    /// <param name="plan">The sweep.</param>
    /// <param name="chain">The chain to walk.</param>
    /// <param name="readLog">Reads a finished trial's log (study id, trial id), null when absent.</param>
    /// <param name="discard">Deletes a trial whose log was run with another cap (null: only ignore it).</param>
    public ChainProgress(SweepPlan plan, ChainPlan chain, Func<string, string, TrialLog?> readLog, Action<string, string>? discard = null)
    {
        _plan = plan;
        _read = readLog;
        _discard = discard;
        Chain = chain;
        Wave = plan.WaveOf(chain);
        Space = new SearchSpace(plan.Optimizer(chain.Optimizer));
        Plan(0);
    }

    void Plan(int studyIndex)
    {
        Logs.Clear();
        if (studyIndex >= Chain.Studies.Count) { Current = null; Order = []; return; }
        Current = Chain.Studies[studyIndex];
        _prediction = TrialOrdering.Predict(Current, Space, _results.LastOrDefault(), _prediction);
        Order = TrialOrdering.Order(Current, _prediction, _plan.Spec.Order);
        foreach (var t in Current.Trials)
            if (_read(Current.Id, t.Id) is { } log) Logs[t.Id] = log;
        Advance();
    }

    /// <summary>Records a finished trial of the current study; counts the study when it was the last.</summary>
    public void Finished(TrialPlan trial, TrialLog log)
    {
        Logs[trial.Id] = log;
        Advance();
    }

    void Advance()
    {
        if (Current is null) return;
        var (valid, wrong) = StudyResults.Validate(Current, Order, Logs, _plan.Spec.Prune, Wave);
        foreach (var id in wrong)
        {
            Logs.Remove(id);
            _discard?.Invoke(Current.Id, id);
        }
        if (valid < Current.Trials.Count) return;
        _results.Add(StudyResults.Compute(Current, Order, Logs, _plan.Spec.Prune, Wave));
        Plan(_results.Count);
    }

    /// <summary>The rank of the first trial of the current study without a valid log.</summary>
    public int ValidPrefix => Current is null ? 0 : StudyResults.Validate(Current, Order, Logs, _plan.Spec.Prune, Wave).ValidPrefix;

    /// <summary>The step cap to launch the trial at <paramref name="rank"/> of the current study with now.</summary>
    public long LaunchCap(int rank) => StudyResults.LaunchCap(Current!, Order, rank, Logs, _plan.Spec.Prune, Wave);

    /// <summary>The best steps-to-target among the current study's finished trials (for progress).</summary>
    public long? BestSoFar => Logs.Values.Where(l => l.StepsToTarget is not null).Select(l => l.StepsToTarget).Min();

    /// <summary>Results of every complete study of the given chains in a store.</summary>
    public static List<StudyResult> Replay(SweepPlan plan, IEnumerable<ChainPlan> chains, ResultsStore store) =>
        chains.SelectMany(c => new ChainProgress(plan, c, store.TryRead).Results).ToList();
}
