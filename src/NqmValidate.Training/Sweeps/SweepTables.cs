using NqmValidate.Common;
using NqmValidate.Formats;
using NqmValidate.Training.Optimizers;

namespace NqmValidate.Training.Sweeps;

/// <summary>
/// steps.csv and trials.csv (docs/formats.md) from study results. With several seeds, each
/// seed's study has its own minimum; steps_to_target is their lower median (a measured value,
/// not an average) and the hyperparameters are that seed's best trial's. Hyperparameters come
/// from the trials' records (what ran), not from the plan.
/// </summary>
public static class SweepTables
{
    public static IReadOnlyList<StepsRow> StepsRows(SweepPlan plan, IEnumerable<StudyResult> results)
    {
        var byStudy = results.ToDictionary(r => r.Study.Id);
        var rows = new List<StepsRow>();
        foreach (var opt in plan.Spec.Optimizers!)
        foreach (int b in plan.Spec.BatchSizes!.Order())
        {
            var seeds = Enumerable.Range(0, plan.Spec.Seeds)
                .Select(r => byStudy.GetValueOrDefault(SweepPlan.StudyId(opt.Name, b, r))).ToList();
            if (seeds.Any(s => s is null)) continue; // not every seed's study is complete here
            var studies = seeds.Select(s => s!).ToList();
            // Unreached = +∞ for the order statistics.
            var sorted = studies.OrderBy(s => s.StepsToTarget ?? long.MaxValue).ThenBy(s => s.Study.Replicate).ToList();
            var median = sorted[(sorted.Count - 1) / 2];
            var spread = SeedSpread(sorted.Select(s => s.StepsToTarget).ToList());
            var best = median.Best?.Log.Record.Config.Optimizer;
            var space = new SearchSpace(opt);
            rows.Add(new StepsRow(
                opt.Name, b, median.StepsToTarget, best?.LearningRate,
                best?.Hyperparameters ?? (IReadOnlyDictionary<string, double>)new Dictionary<string, double>(),
                studies.Sum(s => s.Trials.Count), studies.Sum(s => s.Count(StudyTrialStatus.Reached)),
                studies.Sum(s => s.Count(StudyTrialStatus.Diverged)), studies.Sum(s => s.Count(StudyTrialStatus.Pruned)),
                studies.Sum(s => s.Count(StudyTrialStatus.Crashed)),
                studies.Count, spread.Min, spread.Median, spread.Max,
                studies[0].Study.BudgetSteps, opt.LearningRate!.Min, opt.LearningRate.Max,
                best is null ? null : Math.Round(space.LearningRatePosition(best.LearningRate), 4),
                studies.Sum(s => s.StepsTrained)));
        }
        return rows;
    }

    /// <summary>
    /// steps-by-target.csv's rows (none when the spec has no looser targets): per target, loosest first and the study's
    /// own last, per optimizer and batch size, the median over seeds of each seed's fewest steps to that target. A
    /// trial's crossing of a looser target counts when it lies within what counts of the trial (its canonical cap, or
    /// the step it diverged at), so the table, like steps.csv, does not depend on timing. Pruning stays exact for the
    /// looser targets: the best trial at a looser target crosses it before the study's best steps-to-target so far,
    /// hence before its cap.
    /// </summary>
    public static IReadOnlyList<TargetStepsRow> TargetStepsRows(SweepPlan plan, IEnumerable<StudyResult> results)
    {
        var target = plan.Spec.Workload!.Target!;
        if (target.Looser is not { Count: > 0 } looser) return [];
        var byStudy = results.ToDictionary(r => r.Study.Id);
        var rows = new List<TargetStepsRow>();
        foreach (double threshold in looser.OrderDescending().Append(target.Threshold))
        foreach (var opt in plan.Spec.Optimizers!)
        foreach (int b in plan.Spec.BatchSizes!.Order())
        {
            var seeds = Enumerable.Range(0, plan.Spec.Seeds)
                .Select(r => byStudy.GetValueOrDefault(SweepPlan.StudyId(opt.Name, b, r))).ToList();
            if (seeds.Any(s => s is null)) continue;
            var perSeed = seeds.Select(s => BestAt(s!, threshold, threshold == target.Threshold))
                .OrderBy(x => x.Steps ?? long.MaxValue).ToList();
            var median = perSeed[(perSeed.Count - 1) / 2];
            var spread = SeedSpread(perSeed.Select(x => x.Steps).ToList());
            rows.Add(new TargetStepsRow(threshold, opt.Name, b, median.Steps, median.Trial?.Log.Record.Config.Optimizer.LearningRate,
                perSeed.Sum(x => x.Reached), spread.Min, spread.Median, spread.Max));
        }
        return rows;
    }

    /// <summary>
    /// The spread of the per-seed minima, ascending with unreached (null) last: their minimum (null if no seed reached),
    /// ordinary median (null when it involves a seed that reached nothing) and maximum (null if any seed did not reach).
    /// </summary>
    static (long? Min, double? Median, long? Max) SeedSpread(IReadOnlyList<long?> ascending)
    {
        var minima = ascending.Select(v => v is { } x ? (double)x : double.PositiveInfinity).ToList();
        double median = minima.Count % 2 == 1 ? minima[minima.Count / 2] : (minima[minima.Count / 2 - 1] + minima[minima.Count / 2]) / 2;
        return (ascending[0], double.IsFinite(median) ? median : null, ascending.Any(v => v is null) ? null : ascending[^1]);
    }

    /// <summary>A study's fewest steps to <paramref name="threshold"/> over its trials (ties to the smallest canonical index).</summary>
    static (long? Steps, StudyTrial? Trial, int Reached) BestAt(StudyResult study, double threshold, bool own)
    {
        if (own) return (study.StepsToTarget, study.Best, study.Count(StudyTrialStatus.Reached));
        var counted = study.Trials.Select(t => (Trial: t, Steps: CountedCrossing(t, threshold))).Where(x => x.Steps is not null).ToList();
        var best = counted.OrderBy(x => x.Steps).ThenBy(x => x.Trial.Trial.Index).FirstOrDefault();
        return (best.Steps, best.Trial, counted.Count);
    }

    /// <summary>A trial's first crossing of a looser target, if it lies within what counts of the trial.</summary>
    static long? CountedCrossing(StudyTrial trial, double threshold)
    {
        if (trial.Status == StudyTrialStatus.Crashed) return null;
        long? steps = trial.Log.Record.LooserTargets?.FirstOrDefault(c => c.Threshold == threshold)?.StepsToTarget;
        long limit = trial.Status == StudyTrialStatus.Diverged ? trial.StepsCounted : trial.StepCap;
        return steps <= limit ? steps : null;
    }

    /// <summary>The further hyperparameter columns of both tables: those of the spec's optimizer families, in registration order.</summary>
    static IReadOnlyList<string> FurtherHyperparameters(ExperimentSpec spec) =>
        HyperparameterColumns.Further(spec.Optimizers!.SelectMany(o => OptimizerFamilies.Get(o.Name).Hyperparameters.Select(h => h.Name)));

    /// <summary>trials.csv's rows: each complete study's trials in canonical order. `status` is how the trial counts in its
    /// study (pruning applied) and `steps_run` the steps that count. How the trial process itself ended stays in its
    /// trial.json: it may depend on timing (the cap it was launched with), the table must not.</summary>
    public static IReadOnlyList<TrialsRow> TrialsRows(IEnumerable<StudyResult> results) =>
        results.SelectMany(s => s.Trials.OrderBy(t => t.Trial.Index).Select(t => new TrialsRow(
            s.Study.Id, s.Study.Optimizer, s.Study.BatchSize, t.Trial.Id, t.Log.Record.Config.Seed,
            t.Log.Record.Config.Optimizer.LearningRate, t.Log.Record.Config.Optimizer.Hyperparameters,
            Snake(t.Status.ToString()), t.StepsToTarget, t.StepsCounted, t.InitialLoss, t.FinalLoss, t.Rank, t.StepCap, s.Study.Replicate)))
        .ToList();

    public static string StepsCsv(ExperimentSpec spec, IReadOnlyList<StepsRow> rows) => StepsFile.Text(rows, FurtherHyperparameters(spec));

    /// <summary>trials.csv of the studies' trials (see <see cref="TrialsRows"/>).</summary>
    public static string TrialsCsv(ExperimentSpec spec, IEnumerable<StudyResult> results) => TrialsFile.Text(TrialsRows(results), FurtherHyperparameters(spec));

    static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    /// <summary>Writes DIR/steps.csv and DIR/trials.csv atomically.</summary>
    public static void Write(ResultsStore store, SweepPlan plan, IReadOnlyList<StudyResult> results)
    {
        var ordered = plan.Studies.Select(s => results.FirstOrDefault(r => r.Study.Id == s.Id)).Where(r => r is not null).Select(r => r!).ToList();
        AtomicFile.WriteAllText(Path.Combine(store.Root, StepsFile.FileName), StepsCsv(plan.Spec, StepsRows(plan, ordered)));
        AtomicFile.WriteAllText(Path.Combine(store.Root, TrialsFile.FileName), TrialsCsv(plan.Spec, ordered));
        if (TargetStepsRows(plan, ordered) is { Count: > 0 } byTarget)
            AtomicFile.WriteAllText(Path.Combine(store.Root, TargetStepsFile.FileName), TargetStepsFile.Text(byTarget));
    }
}
