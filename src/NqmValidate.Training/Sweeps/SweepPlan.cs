using NqmValidate.Common;

namespace NqmValidate.Training.Sweeps;

/// <summary>One trial of a study: a search point and its derived seed. <see cref="Index"/> is its canonical index.</summary>
public sealed record TrialPlan(string Id, int Index, long Seed, HyperPoint Point, double[] Unit);

/// <summary>A study: all trials of one (optimizer, batch size, replicate). Trials are in canonical order.</summary>
public sealed record StudyPlan(
    string Id, string Optimizer, int BatchSize, int Replicate, long Seed, long BudgetSteps,
    IReadOnlyList<TrialPlan> Trials);

/// <summary>
/// The studies of one (optimizer, replicate) in ascending batch size. A study's trial order is
/// predicted from the previous study's result, so a chain runs its studies one after another
/// (its trials in parallel), and a shard is a set of whole chains.
/// </summary>
public sealed record ChainPlan(string Id, string Optimizer, int Replicate, IReadOnlyList<StudyPlan> Studies);

/// <summary>Everything a sweep will run, derived from the spec alone (no results).</summary>
public sealed record SweepPlan(ExperimentSpec Spec, IReadOnlyList<ChainPlan> Chains)
{
    public IEnumerable<StudyPlan> Studies => Chains.SelectMany(c => c.Studies);

    public static string StudyId(string optimizer, int batchSize, int replicate) => $"{optimizer}-b{batchSize}-r{replicate}";
    public static string TrialId(int index) => $"t{index:D3}";

    public static SweepPlan Create(ExperimentSpec spec)
    {
        var chains = new List<ChainPlan>();
        for (int r = 0; r < spec.Seeds; r++)
        {
            foreach (var opt in spec.Optimizers!)
            {
                var space = new SearchSpace(opt);
                var points = space.Points();
                var studies = spec.BatchSizes!.Order().Select(b =>
                {
                    long studySeed = Seeds.StudySeed(spec.Seed, opt.Name, b, r);
                    var trials = points.Select((p, i) =>
                        new TrialPlan(TrialId(i), i, Seeds.TrialSeed(studySeed, i), p.Point, p.Unit)).ToList();
                    return new StudyPlan(StudyId(opt.Name, b, r), opt.Name, b, r, studySeed, spec.Budget!.StepsFor(b), trials);
                }).ToList();
                chains.Add(new ChainPlan($"{opt.Name}-r{r}", opt.Name, r, studies));
            }
        }
        return new SweepPlan(spec, chains);
    }

    /// <summary>The chains of shard <paramref name="index"/> of <paramref name="count"/> (round robin over chains).</summary>
    public IReadOnlyList<ChainPlan> Shard(int index, int count) =>
        Chains.Where((_, i) => i % count == index).ToList();

    public OptimizerSearch Optimizer(string name) => Spec.Optimizers!.First(o => o.Name == name);

    /// <summary>
    /// Trials of <paramref name="chain"/> launched together as one stacked model (the spec's `stack` where the chain's
    /// model and optimizer can be stacked, else 1): the wave width of its studies' caps (<see cref="StudyResults"/>).
    /// </summary>
    public int WaveOf(ChainPlan chain) =>
        Spec.Stack > 1 && Spec.Workload?.Model is { } model && Stacks.TrialStack.Supports(SpecValidation.ToModelSpec(model), chain.Optimizer)
            ? Spec.Stack : 1;
}

/// <summary>Which part of a sweep one process runs.</summary>
public readonly record struct Shard(int Index, int Count)
{
    public static readonly Shard All = new(0, 1);

    /// <summary>Parses "i/n" (0 ≤ i &lt; n).</summary>
    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n) || n < 1 || i < 0 || i >= n)
            throw new SpecException($"--shard: expected i/n with 0 <= i < n (got \"{text}\").");
        return new Shard(i, n);
    }

    /// <summary>The shard from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, when both are set.</summary>
    public static Shard? FromEnvironment(Func<string, string?> env)
    {
        string? id = env("SLURM_ARRAY_TASK_ID"), count = env("SLURM_ARRAY_TASK_COUNT");
        if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(count)) return null;
        // Arrays may start at an offset (--array=1-4): SLURM_ARRAY_TASK_MIN shifts the index.
        int min = int.TryParse(env("SLURM_ARRAY_TASK_MIN"), out int m) ? m : 0;
        if (!int.TryParse(id, out int i) || !int.TryParse(count, out int n))
            throw new SpecException($"SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT: not integers (\"{id}\", \"{count}\").");
        return Parse($"{i - min}/{n}");
    }

    public override string ToString() => $"{Index}/{Count}";
}
