using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using NqmValidate.Common;
using NqmValidate.Reports;
using NqmValidate.Training;
using NqmValidate.Training.Data;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Workloads;
using NqmValidate.Validation;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm replicates --sweep DIR --optimizer NAME --out DIR`: the first-crossing bias check. A study's steps-to-target is
/// the first evaluated crossing of one run, and a noisy run crosses early; the NQM predicts where the expected loss
/// crosses. This re-runs each chosen study's best trial with its own seed (which must repeat its recorded steps) and
/// with fresh seeds, each once as the sweep ran it and once past the target evaluated at every point of the trial's
/// evaluation grid, and compares their median steps-to-target with the crossing of their mean curve (<see cref="FirstCrossing"/>).
/// </summary>
public static class ReplicatesCommand
{
    static readonly Option<DirectoryInfo> Sweep = new("--sweep") { Description = "Sweep directory (steps.csv, trials.csv, trials/).", Required = true };
    static readonly Option<string> Optimizer = new("--optimizer") { Description = "Whose studies to replicate.", DefaultValueFactory = _ => "sgd" };
    static readonly Option<string?> BatchSizes = new("--batch-sizes") { Description = "Comma-separated batch sizes (default: the smallest and the largest at which the optimizer reached the target)." };
    static readonly Option<int> Count = new("--replicates") { Description = "Fresh seeds per study, besides the trial's own.", DefaultValueFactory = _ => 8 };
    static readonly Option<double> Multiple = new("--multiple") { Description = "Train each replicate to this multiple of the study's steps-to-target.", DefaultValueFactory = _ => 1.5 };
    static readonly Option<DirectoryInfo> Out = new("--out") { Description = "Output directory (first-crossing.csv, replicate-curves.csv).", Required = true };

    public const string TableFile = "first-crossing.csv", CurvesFile = "replicate-curves.csv";

    /// <summary>One evaluation of one replicate (replicate-curves.csv); train_loss is +∞ (written "Infinity") after a divergence.</summary>
    public sealed record ReplicateCurveRow(string Optimizer, int BatchSize, int Replicate, long Seed, long Step, double TrainLoss);

    /// <summary>Replicate k's seed: the trial's own for k = 0, else a child seed of it (independent model and data streams).</summary>
    public static long ReplicateSeed(long trialSeed, int k) => k == 0 ? trialSeed : Seeds.Derive(trialSeed, $"replicate-{k}");

    public static Command Create()
    {
        var command = new Command("replicates", "Re-run the best trials of a sweep with fresh seeds past the target and compare their first crossings with the crossing of their mean curve (the first-crossing bias of steps-to-target).")
        {
            Sweep, Optimizer, BatchSizes, Count, Multiple, Out,
        };
        command.SetAction(parse =>
        {
            try
            {
                int count = parse.GetValue(Count);
                double multiple = parse.GetValue(Multiple);
                if (count < 1) throw new SpecException("--replicates: must be at least 1.");
                if (!(multiple > 1) || !double.IsFinite(multiple)) throw new SpecException("--multiple: must be a finite number > 1.");
                var sweep = SweepResults.Load(parse.GetValue(Sweep)!.FullName);
                string optimizer = parse.GetValue(Optimizer)!;
                var batchSizes = ChooseBatchSizes(sweep, optimizer, parse.GetValue(BatchSizes));
                string outDir = parse.GetValue(Out)!.FullName;
                Directory.CreateDirectory(outDir);
                var clock = Stopwatch.StartNew();
                var rows = Run(sweep, optimizer, batchSizes, count, multiple, outDir, Console.Error.WriteLine);
                static string Steps(double steps) => steps.ToString("0.#", CultureInfo.InvariantCulture); // every digit: a step count, not an estimate
                static string Ratio(double? q) => q is double v ? v.ToString("F2", CultureInfo.InvariantCulture) : "—";
                foreach (var r in rows)
                    Console.WriteLine($"{r.Optimizer} B = {r.BatchSize}: recorded {(r.RecordedSteps is double t ? Steps(t) : "—")} (own seed again: " +
                                      $"{r.OwnSeedMeasured?.ToString(CultureInfo.InvariantCulture) ?? "not reached"}); median of {r.Replicates} " +
                                      $"{(r.MeasuredMedian is double m ? Steps(m) : "not reached")} [{r.MeasuredMin?.ToString(CultureInfo.InvariantCulture) ?? "—"}, {r.MeasuredMax?.ToString(CultureInfo.InvariantCulture) ?? "—"}]; mean curve " +
                                      $"{r.MeanCurveCrossing?.ToString(CultureInfo.InvariantCulture) ?? "not reached"}: ratio {Ratio(r.Ratio)} (first grid crossings: {Ratio(r.GridRatio)}; recorded: {Ratio(r.RecordedRatio)})");
                Console.WriteLine(Path.Combine(outDir, TableFile));
                Console.Error.WriteLine($"replicates: {clock.Elapsed.TotalMinutes.ToString("F1", CultureInfo.InvariantCulture)} min");
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is RunFileException or SpecException or JsonException or TrialConfigException or DataSetException)
            {
                Console.Error.WriteLine($"nqm replicates: {e.Message}");
                return ExitCodes.BadInput;
            }
        });
        return command;
    }

    static IReadOnlyList<int> ChooseBatchSizes(SweepResults sweep, string optimizer, string? given)
    {
        var reached = sweep.Studies.Where(s => s.Optimizer == optimizer && s.StepsToTarget is not null).Select(s => s.BatchSize).Order().ToList();
        if (given is null)
            return reached.Count == 0
                ? throw new RunFileException($"{sweep.Directory}/steps.csv: no {optimizer} study reached the target.")
                : reached.Count == 1 ? reached : [reached[0], reached[^1]];
        var sizes = new List<int>();
        foreach (string part in given.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int b) || !reached.Contains(b))
                throw new SpecException($"--batch-sizes: '{part}' is not a batch size at which {optimizer} reached the target (those are {string.Join(", ", reached)}).");
            sizes.Add(b);
        }
        return sizes.Distinct().Order().ToList();
    }

    /// <summary>
    /// Replicates each study and writes both tables after every study (atomically), so an interrupted run keeps the
    /// studies it finished. Each replicate is evaluated at every grid point of the trial's evaluation schedule in
    /// (steps/4, multiple × steps].
    /// </summary>
    public static IReadOnlyList<FirstCrossingRow> Run(SweepResults sweep, string optimizer, IReadOnlyList<int> batchSizes, int count, double multiple,
        string outDir, Action<string> progress)
    {
        var rows = new List<FirstCrossingRow>();
        var curveRows = new List<ReplicateCurveRow>();
        foreach (int b in batchSizes)
        {
            var study = sweep.Studies.First(s => s.Optimizer == optimizer && s.BatchSize == b);
            var curve = sweep.BestTrialCurve(optimizer, b);
            string trialJson = Path.Combine(Path.GetDirectoryName(curve.Path)!, "trial.json");
            if (!File.Exists(trialJson)) throw new RunFileException($"{trialJson}: file not found; replicates re-run the best trial from its record.");
            var record = TrialJson.Read<TrialRecord>(trialJson);
            double target = record.Config.Target?.Threshold ?? throw new RunFileException($"{trialJson}: the trial has no target.");
            long recorded = record.StepsToTarget ?? throw new RunFileException($"{trialJson}: the trial did not reach its target.");
            var steps = EvaluationSchedule.GridPoints(recorded / 4, (long)Math.Ceiling(multiple * recorded)).ToList();
            if (steps.Count == 0) throw new RunFileException($"{trialJson}: the trial met its target at step {recorded}; there is no crossing to replicate.");
            using var data = FashionMnist.Load(record.Config.DataDir);
            var workload = new FashionMnistWorkload(data);
            var seeds = Enumerable.Range(0, count + 1).Select(k => ReplicateSeed(record.Config.Seed, k)).ToList();
            var losses = new List<IReadOnlyList<double>>();
            var measured = new List<long?>();
            for (int k = 0; k < seeds.Count; k++)
            {
                var clock = Stopwatch.StartNew();
                var config = record.Config with { Seed = seeds[k] };
                // Replayed past the target (first: it refuses a schedule that cannot be run on), then as the sweep ran it
                // (stopping at the target; the budget capped at the replay's last step).
                var l = TrialExtension.LossesAt(config, workload, steps);
                measured.Add(TrialRunner.Run(config with { MaxSteps = steps[^1] }, workload).Record.StepsToTarget);
                losses.Add(l);
                curveRows.AddRange(steps.Select((s, i) => new ReplicateCurveRow(optimizer, b, k, seeds[k], s, l[i])));
                progress($"{optimizer} B = {b}: replicate {k} of {count} (seed {seeds[k]}{(k == 0 ? ", the trial's own" : "")}): steps-to-target " +
                         $"{measured[k]?.ToString(CultureInfo.InvariantCulture) ?? "not reached"}, first grid crossing " +
                         $"{FirstCrossing.Of(steps, l, target)?.ToString(CultureInfo.InvariantCulture) ?? "none"} up to step {steps[^1]} ({clock.Elapsed.TotalSeconds:F0} s)");
            }
            if (measured[0] != recorded)
                progress($"warning: {optimizer} B = {b}: the trial's own seed reached the target at {measured[0]?.ToString(CultureInfo.InvariantCulture) ?? "no step"}, " +
                         $"not at its recorded {recorded} (another machine, thread count or build?); recorded_ratio compares with the recorded number.");
            rows.Add(FirstCrossing.Measure(new ReplicateCurves(optimizer, b, record.Config.Optimizer.LearningRate, study.StepsToTarget, steps, seeds, measured, losses), target));
            CsvFiles.Write(Path.Combine(outDir, TableFile), rows);
            CsvFiles.Write(Path.Combine(outDir, CurvesFile), curveRows);
        }
        return rows;
    }
}
