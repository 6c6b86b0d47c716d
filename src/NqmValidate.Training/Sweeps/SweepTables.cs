using NqmValidate.Training.Trials;
using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using NqmValidate.Common;

namespace NqmValidate.Training.Sweeps;

/// <summary>One row of steps.csv: a study (optimizer × batch size), over its seeds.</summary>
public sealed record StepsRow(
    string Optimizer, int BatchSize, long? StepsToTarget, double? LearningRate, double? Momentum, double? Beta1, double? Epsilon,
    int TrialsRun, int TrialsReached, int TrialsDiverged, int TrialsPruned, int TrialsCrashed,
    int Seeds, long? StepsMin, double? StepsMedian, long? StepsMax,
    long BudgetSteps, double LearningRateMin, double LearningRateMax, double? LearningRatePosition, long StepsTrained);

/// <summary>
/// steps.csv and trials.csv (docs/formats.md) from study results. With several seeds, each
/// seed's study has its own minimum; steps_to_target is their lower median (a measured value,
/// not an average) and the hyperparameters are that seed's best trial's.
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
            var best = median.Best?.Trial.Point;
            var space = new SearchSpace(opt);
            rows.Add(new StepsRow(
                opt.Name, b, median.StepsToTarget, best?.LearningRate, best?.Momentum, best?.Beta1, best?.Epsilon,
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

    static readonly string[] StepsHeader =
    [
        "optimizer", "batch_size", "steps_to_target", "learning_rate", "momentum", "trials_run", "trials_reached",
        "trials_diverged", "seeds", "steps_min", "steps_median", "steps_max", "trials_pruned", "trials_crashed", "beta1", "epsilon",
        "budget_steps", "learning_rate_min", "learning_rate_max", "learning_rate_position", "steps_trained",
    ];

    static readonly string[] TrialsHeader =
    [
        "study", "optimizer", "batch_size", "trial", "seed", "learning_rate", "momentum", "beta1", "epsilon",
        "status", "steps_to_target", "steps_run", "initial_loss", "final_loss", "rank", "step_cap", "replicate",
    ];

    public static string StepsCsv(IReadOnlyList<StepsRow> rows) => Csv(StepsHeader, rows.Select(r => new[]
    {
        r.Optimizer, I(r.BatchSize), I(r.StepsToTarget), D(r.LearningRate), D(r.Momentum), I(r.TrialsRun), I(r.TrialsReached),
        I(r.TrialsDiverged), I(r.Seeds), I(r.StepsMin), D(r.StepsMedian), I(r.StepsMax), I(r.TrialsPruned), I(r.TrialsCrashed),
        D(r.Beta1), D(r.Epsilon), I(r.BudgetSteps), D(r.LearningRateMin), D(r.LearningRateMax), D(r.LearningRatePosition),
        I(r.StepsTrained),
    }));

    /// <summary>trials.csv: `status` is how the trial counts in its study (pruning applied) and
    /// `steps_run` the steps that count. How the trial process itself ended stays in its
    /// trial.json: it may depend on timing (the cap it was launched with), the table must not.</summary>
    public static string TrialsCsv(IEnumerable<StudyResult> results) => Csv(TrialsHeader,
        results.SelectMany(s => s.Trials.OrderBy(t => t.Trial.Index).Select(t => new[]
        {
            s.Study.Id, s.Study.Optimizer, I(s.Study.BatchSize), t.Trial.Id, I(t.Trial.Seed), D(t.Trial.Point.LearningRate),
            D(t.Trial.Point.Momentum), D(t.Trial.Point.Beta1), D(t.Trial.Point.Epsilon), Snake(t.Status.ToString()),
            I(t.StepsToTarget), I(t.StepsCounted), D(t.InitialLoss), D(t.FinalLoss), I(t.Rank), I(t.StepCap),
            I(s.Study.Replicate),
        })));

    static string Csv(string[] header, IEnumerable<string[]> rows)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = new CsvWriter(text, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" }, leaveOpen: true))
        {
            foreach (var h in header) csv.WriteField(h);
            csv.NextRecord();
            foreach (var r in rows)
            {
                foreach (var f in r) csv.WriteField(f);
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
        AtomicFile.WriteAllText(Path.Combine(store.Root, "steps.csv"), StepsCsv(StepsRows(plan, ordered)));
        AtomicFile.WriteAllText(Path.Combine(store.Root, "trials.csv"), TrialsCsv(ordered));
    }
}
