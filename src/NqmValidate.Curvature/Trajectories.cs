using NqmValidate.Reports;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Curvature;

/// <summary>
/// The spec's `curvature.trajectory` section: measure the curvature along real trials of the sweep, not only at a
/// separate warm-up. Each trajectory is the best measured trial (the one that set steps-to-target) of one optimizer at
/// one batch size; it is measured at initialisation and where its training loss first fell below each level (and the
/// sweep's target, which that trial reached by construction), located by replaying it on its evaluation grid.
/// </summary>
/// <param name="Levels">Training-loss levels (above the target; any order).</param>
/// <param name="Optimizers">Optimizers whose best trials are measured; null = every optimizer of the sweep.</param>
/// <param name="BatchSizes">Batch sizes; null = the sweep's smallest and largest.</param>
public sealed record TrajectorySpec(IReadOnlyList<double> Levels, IReadOnlyList<string>? Optimizers = null, IReadOnlyList<int>? BatchSizes = null)
{
    public void Validate(ExperimentSpec sweep, string where)
    {
        if (Levels.Count == 0) throw new CurvatureInputException($"{where}.levels: give at least one training-loss level.");
        foreach (double level in Levels)
            if (!(level > 0) || !double.IsFinite(level)) throw new CurvatureInputException($"{where}.levels: {level} is not a positive training loss.");
        var optimizers = sweep.Optimizers?.Select(o => o.Name).ToList() ?? [];
        foreach (var name in Optimizers ?? [])
            if (!optimizers.Contains(name))
                throw new CurvatureInputException($"{where}.optimizers: '{name}' is not an optimizer of this sweep ({string.Join(", ", optimizers)}).");
        var batchSizes = sweep.BatchSizes ?? [];
        foreach (int b in BatchSizes ?? [])
            if (!batchSizes.Contains(b))
                throw new CurvatureInputException($"{where}.batch_sizes: {b} is not a batch size of this sweep ({string.Join(", ", batchSizes)}).");
    }
}

/// <summary>One trajectory to measure: a finished trial of the sweep. Its name is the study's id (e.g. sgd-b16-r0), also the folder its checkpoints go to.</summary>
public sealed record TrajectoryTrial(string Name, string Optimizer, int BatchSize, string TrialDirectory);

/// <summary>
/// One row of trajectories/drift.csv: what the spectrum looks like at one checkpoint of one trajectory.
/// <see cref="OverlapPrevious"/> and <see cref="OverlapInitial"/> compare the top-k GGN eigenspace with the previous
/// checkpoint's and the initial one's: ‖V₁ᵀV₂‖²_F / k, 1 for the same subspace, about k/P for unrelated ones.
/// <see cref="CostGradientPasses"/>: the checkpoint's measurement cost in gradient passes over the same examples.
/// </summary>
public sealed record DriftRow(
    string Trajectory, string Optimizer, int BatchSize, string Checkpoint, long Step, double Loss,
    double? LambdaMax, double? TraceGgn, double TraceSigma, double GradientNormSquared, double SimpleNoiseScale,
    double? OverlapPrevious, double? OverlapInitial, int TopK, double CostGradientPasses);

public static class Trajectories
{
    /// <summary>Where `nqm validate` puts the trajectories: CURVATURE/trajectories/&lt;study&gt;/&lt;checkpoint&gt;/ and drift.csv.</summary>
    public const string FolderName = "trajectories", DriftFile = "drift.csv";

    /// <summary>
    /// The trials to measure: for each optimizer and batch size asked for, the study's best trial (replicate 0).
    /// A study with no trial that reached the target has no trajectory; a note says so.
    /// </summary>
    public static (IReadOnlyList<TrajectoryTrial> Trials, IReadOnlyList<string> Notes) Pick(string sweepDir, TrajectorySpec spec)
    {
        var store = new ResultsStore(sweepDir);
        var sweep = store.ReadSpec();
        var plan = SweepPlan.Create(sweep);
        var results = ChainProgress.Replay(plan, plan.Chains, store).ToDictionary(r => r.Study.Id);
        var batchSizes = sweep.BatchSizes ?? [];
        IReadOnlyList<int> sizes = spec.BatchSizes ?? (batchSizes.Count == 0 ? [] : new[] { batchSizes.Min(), batchSizes.Max() }.Distinct().ToList());
        var trials = new List<TrajectoryTrial>();
        var notes = new List<string>();
        foreach (var optimizer in spec.Optimizers ?? sweep.Optimizers!.Select(o => o.Name).ToList())
            foreach (int b in sizes)
            {
                string id = SweepPlan.StudyId(optimizer, b, 0);
                if (results.GetValueOrDefault(id)?.Best is not { } best) { notes.Add($"{id}: no trial reached the target; no trajectory."); continue; }
                trials.Add(new TrajectoryTrial(id, optimizer, b, store.TrialDirectory(id, best.Trial.Id)));
            }
        return (trials, notes);
    }

    /// <summary>
    /// Replays <paramref name="trial"/> through its checkpoints (init, each level, the target), measures each with the
    /// settings of <paramref name="template"/> into OUT/&lt;trial&gt;/&lt;checkpoint&gt;/, and returns its drift rows.
    /// </summary>
    public static IReadOnlyList<DriftRow> Measure(TrajectoryTrial trial, IReadOnlyList<double> levels, double target,
        CurvatureRunRequest template, string outDir, Action<string>? log = null)
    {
        IReadOnlyList<double> all = [.. levels.Where(l => l > target), target];
        var recorded = TrajectoryCheckpoints.FromTrial(trial.TrialDirectory, all).Trial;
        var (config, checkpoints, notes) = LocateByReplay(trial.TrialDirectory, all, template.DataDir ?? recorded.DataDir);
        foreach (var note in notes) log?.Invoke($"{trial.Name}: {note}");
        // Several checkpoints go to OUT/<trial>/<label> (CurvatureRun's layout); a lone one (a trial that met the target
        // at step 0) is given that folder itself, so that every trajectory has the same layout.
        string dir = Path.Combine(outDir, trial.Name);
        var request = template with
        {
            Trial = config, Checkpoints = checkpoints, Plots = false,
            OutDir = checkpoints.Count == 1 ? Path.Combine(dir, checkpoints[0].Label) : dir,
        };
        return CurvatureRun.Execute(request, log).Select(r => Row(trial, r)).ToList();
    }

    static (TrialConfig, IReadOnlyList<Checkpoint>, IReadOnlyList<string>) LocateByReplay(string trialDir, IReadOnlyList<double> levels, string? dataDir)
    {
        using var data = Training.Data.FashionMnist.Load(dataDir);
        return TrajectoryCheckpoints.FromReplay(trialDir, levels, new Training.Workloads.FashionMnistWorkload(data));
    }

    static DriftRow Row(TrajectoryTrial trial, CheckpointResult r)
    {
        var report = r.Report;
        var ggnTop = report.Eigen.Where(e => e.Operator == "ggn").OrderBy(e => e.Index).FirstOrDefault()
                     ?? report.Eigen.OrderBy(e => e.Index).FirstOrDefault();
        double? traceGgn = report.Hutchinson.TryGetValue("ggn", out var t) ? t.Trace : report.Traces.Ggn;
        var noise = report.NoiseScale[0]; // the per-example (diagonal) estimator: unbiased, no batch split
        return new DriftRow(trial.Name, trial.Optimizer, trial.BatchSize, r.Checkpoint.Label, r.Checkpoint.Steps, report.Loss,
            ggnTop?.Eigenvalue, traceGgn, noise.TraceSigma, noise.GradientNormSquared, noise.BSimple,
            r.OverlapPrevious, r.OverlapFirst, report.Eigen.Count(e => e.Operator == (ggnTop?.Operator ?? "ggn")), report.CostInGradientPasses);
    }

    public static void WriteDrift(string path, IEnumerable<DriftRow> rows) => CsvFiles.Write(path, rows);
}
