using NqmValidate.Training.Trials;
using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using NqmValidate.Common;
using NqmValidate.Training.Optimizers;

namespace NqmValidate.Training.Sweeps;

/// <summary>One row of steps.csv: a study (optimizer × batch size), over its seeds. The hyperparameters are the best trial's, as its record ran them.</summary>
public sealed record StepsRow(
    string Optimizer, int BatchSize, long? StepsToTarget, double? LearningRate, IReadOnlyDictionary<string, double> Hyperparameters,
    int TrialsRun, int TrialsReached, int TrialsDiverged, int TrialsPruned, int TrialsCrashed,
    int Seeds, long? StepsMin, double? StepsMedian, long? StepsMax,
    long BudgetSteps, double LearningRateMin, double LearningRateMax, double? LearningRatePosition, long StepsTrained)
{
    public double? Hyperparameter(string name) => Hyperparameters.TryGetValue(name, out double v) ? v : null;
}

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
            // Median of the per-seed minima, unreached = +∞ (then empty).
            var minima = sorted.Select(s => s.StepsToTarget is { } v ? (double)v : double.PositiveInfinity).ToList();
            double med = minima.Count % 2 == 1 ? minima[minima.Count / 2] : (minima[minima.Count / 2 - 1] + minima[minima.Count / 2]) / 2;
            double? stepsMedian = double.IsFinite(med) ? med : null;
            var best = median.Best?.Log.Record.Config.Optimizer;
            var space = new SearchSpace(opt);
            rows.Add(new StepsRow(
                opt.Name, b, median.StepsToTarget, best?.LearningRate,
                best?.Hyperparameters ?? (IReadOnlyDictionary<string, double>)new Dictionary<string, double>(),
                studies.Sum(s => s.Trials.Count), studies.Sum(s => s.Count(StudyTrialStatus.Reached)),
                studies.Sum(s => s.Count(StudyTrialStatus.Diverged)), studies.Sum(s => s.Count(StudyTrialStatus.Pruned)),
                studies.Sum(s => s.Count(StudyTrialStatus.Crashed)),
                studies.Count, studies.All(s => s.StepsToTarget is null) ? null : studies.Min(s => s.StepsToTarget ?? long.MaxValue),
                stepsMedian, studies.Any(s => s.StepsToTarget is null) ? null : studies.Max(s => s.StepsToTarget),
                studies[0].Study.BudgetSteps, opt.LearningRate!.Min, opt.LearningRate.Max,
                best is null ? null : Math.Round(space.LearningRatePosition(best.LearningRate), 4),
                studies.Sum(s => s.StepsTrained)));
        }
        return rows;
    }

    /// <summary>
    /// Hyperparameter columns: momentum, beta1 and epsilon where steps.csv has always had them, then any other
    /// hyperparameter the spec's optimizer families have (e.g. ema_decay), in registration order, at the end.
    /// </summary>
    static readonly string[] LegacyHyperparameters = ["momentum", "beta1", "epsilon"];

    static IReadOnlyList<string> FurtherHyperparameters(ExperimentSpec spec) =>
        spec.Optimizers!.SelectMany(o => OptimizerFamilies.Get(o.Name).Hyperparameters.Select(h => h.Name))
            .Where(n => !LegacyHyperparameters.Contains(n) && n != "beta2").Distinct().ToList();

    /// <summary>steps.csv's columns: each a name and how a row gives its field, so header and values cannot drift apart.</summary>
    static IReadOnlyList<(string Name, Func<StepsRow, string> Value)> StepsColumns(ExperimentSpec spec) =>
    [
        ("optimizer", r => r.Optimizer), ("batch_size", r => I(r.BatchSize)), ("steps_to_target", r => I(r.StepsToTarget)),
        ("learning_rate", r => D(r.LearningRate)), ("momentum", r => D(r.Hyperparameter("momentum"))),
        ("trials_run", r => I(r.TrialsRun)), ("trials_reached", r => I(r.TrialsReached)), ("trials_diverged", r => I(r.TrialsDiverged)),
        ("seeds", r => I(r.Seeds)), ("steps_min", r => I(r.StepsMin)), ("steps_median", r => D(r.StepsMedian)), ("steps_max", r => I(r.StepsMax)),
        ("trials_pruned", r => I(r.TrialsPruned)), ("trials_crashed", r => I(r.TrialsCrashed)),
        ("beta1", r => D(r.Hyperparameter("beta1"))), ("epsilon", r => D(r.Hyperparameter("epsilon"))),
        ("budget_steps", r => I(r.BudgetSteps)), ("learning_rate_min", r => D(r.LearningRateMin)), ("learning_rate_max", r => D(r.LearningRateMax)),
        ("learning_rate_position", r => D(r.LearningRatePosition)), ("steps_trained", r => I(r.StepsTrained)),
        .. FurtherHyperparameters(spec).Select(n => (n, (Func<StepsRow, string>)(r => D(r.Hyperparameter(n))))),
    ];

    /// <summary>trials.csv's columns (see <see cref="TrialsCsv"/>).</summary>
    static IReadOnlyList<(string Name, Func<(StudyResult Study, StudyTrial Trial), string> Value)> TrialsColumns(ExperimentSpec spec)
    {
        static double? H(StudyTrial t, string name) => t.Log.Record.Config.Optimizer[name];
        return
        [
            ("study", x => x.Study.Study.Id), ("optimizer", x => x.Study.Study.Optimizer), ("batch_size", x => I(x.Study.Study.BatchSize)),
            ("trial", x => x.Trial.Trial.Id), ("seed", x => I(x.Trial.Log.Record.Config.Seed)),
            ("learning_rate", x => D(x.Trial.Log.Record.Config.Optimizer.LearningRate)),
            ("momentum", x => D(H(x.Trial, "momentum"))), ("beta1", x => D(H(x.Trial, "beta1"))), ("epsilon", x => D(H(x.Trial, "epsilon"))),
            ("status", x => Snake(x.Trial.Status.ToString())), ("steps_to_target", x => I(x.Trial.StepsToTarget)),
            ("steps_run", x => I(x.Trial.StepsCounted)), ("initial_loss", x => D(x.Trial.InitialLoss)), ("final_loss", x => D(x.Trial.FinalLoss)),
            ("rank", x => I(x.Trial.Rank)), ("step_cap", x => I(x.Trial.StepCap)), ("replicate", x => I(x.Study.Study.Replicate)),
            .. FurtherHyperparameters(spec).Select(n => (n, (Func<(StudyResult, StudyTrial), string>)(x => D(H(x.Item2, n))))),
        ];
    }

    public static string StepsCsv(ExperimentSpec spec, IReadOnlyList<StepsRow> rows) => Csv(StepsColumns(spec), rows);

    /// <summary>trials.csv: `status` is how the trial counts in its study (pruning applied) and
    /// `steps_run` the steps that count. How the trial process itself ended stays in its
    /// trial.json: it may depend on timing (the cap it was launched with), the table must not.</summary>
    public static string TrialsCsv(ExperimentSpec spec, IEnumerable<StudyResult> results) => Csv(TrialsColumns(spec),
        results.SelectMany(s => s.Trials.OrderBy(t => t.Trial.Index).Select(t => (s, t))).ToList());

    static string Csv<T>(IReadOnlyList<(string Name, Func<T, string> Value)> columns, IEnumerable<T> rows)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = new CsvWriter(text, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" }, leaveOpen: true))
        {
            foreach (var c in columns) csv.WriteField(c.Name);
            csv.NextRecord();
            foreach (var r in rows)
            {
                foreach (var c in columns) csv.WriteField(c.Value(r));
                csv.NextRecord();
            }
        }
        return text.ToString();
    }

    static string I(long? x) => x?.ToString(CultureInfo.InvariantCulture) ?? "";
    static string D(double? x) => x?.ToString("R", CultureInfo.InvariantCulture) ?? "";

    static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    /// <summary>Writes DIR/steps.csv and DIR/trials.csv atomically.</summary>
    public static void Write(ResultsStore store, SweepPlan plan, IReadOnlyList<StudyResult> results)
    {
        var ordered = plan.Studies.Select(s => results.FirstOrDefault(r => r.Study.Id == s.Id)).Where(r => r is not null).Select(r => r!).ToList();
        AtomicFile.WriteAllText(Path.Combine(store.Root, "steps.csv"), StepsCsv(plan.Spec, StepsRows(plan, ordered)));
        AtomicFile.WriteAllText(Path.Combine(store.Root, "trials.csv"), TrialsCsv(plan.Spec, ordered));
    }
}
