using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ResultsStore = NqmValidate.Training.Sweeps.ResultsStore;
using SweepStoreException = NqmValidate.Training.Sweeps.SweepStoreException;
using ExperimentSpec = NqmValidate.Training.Sweeps.ExperimentSpec;
using OptimizerSearch = NqmValidate.Training.Sweeps.OptimizerSearch;
using NqmValidate.Reports;
using NqmValidate.Validation;
using NqmValidate.Common;

namespace NqmValidate.Cli.Commands;

/// <summary>`nqm fit`: fit + predict + compare + report for an existing sweep and curvature output.</summary>
public static class FitCommand
{
    static readonly Option<DirectoryInfo> Sweep = new("--sweep") { Description = "Sweep directory (steps.csv, trials.csv).", Required = true };
    static readonly Option<DirectoryInfo> Curvature = new("--curvature") { Description = "Curvature directory (spectrum.csv, summary.json, eigen.csv, density.csv).", Required = true };
    static readonly Option<double> TargetLoss = new("--target-loss") { Description = "The workload's training-loss target.", Required = true };
    static readonly Option<FileInfo?> FitOptionsFile = new("--fit-options") { Description = "JSON file with a `fit` section's fields (checkpoint, floor, initial_condition, primary_variant, calibration, search, edge_of_stability, eos_margin, sensitivity, adam_epsilon, eigen_operator)." };
    static readonly Option<DirectoryInfo> Out = new("--out") { Description = "Output directory.", Required = true };

    public static Command Create()
    {
        var command = new Command("fit", "Fit the NQM to a measured spectrum, predict steps-to-target per batch size, compare with a sweep and write the report.")
        {
            Sweep, Curvature, TargetLoss, FitOptionsFile, Out,
        };
        command.SetAction(parse =>
        {
            try
            {
                JsonElement? section = null;
                if (parse.GetValue(FitOptionsFile) is { } file)
                {
                    if (!file.Exists) throw new SpecException($"{file.FullName}: file not found.");
                    section = JsonDocument.Parse(File.ReadAllText(file.FullName)).RootElement.Clone();
                }
                var options = FitOptions.Parse(section, parse.GetValue(FitOptionsFile)?.FullName ?? "--fit-options");
                string outDir = parse.GetValue(Out)!.FullName;
                CheckTarget(parse.GetValue(Sweep)!.FullName, parse.GetValue(TargetLoss));
                var sw = Stopwatch.StartNew();
                Run(parse.GetValue(Sweep)!.FullName, parse.GetValue(Curvature)!.FullName, parse.GetValue(TargetLoss), options, outDir, provenance: null);
                Console.WriteLine(Path.Combine(outDir, "report.html"));
                foreach (var line in ValidationReport.Summary(outDir)) Console.WriteLine(line);
                Console.Error.WriteLine($"fit + predict + compare + report: {sw.Elapsed.TotalSeconds:F1} s");
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is RunFileException or SpecException or JsonException)
            {
                Console.Error.WriteLine($"nqm fit: {e.Message}");
                return ExitCodes.BadInput;
            }
        });
        return command;
    }

    /// <summary>
    /// --target-loss must be the target the sweep measured steps-to-target for (its spec.json):
    /// predictions for one target compared with measurements for another would be a wrong report.
    /// </summary>
    public static void CheckTarget(string sweepDir, double targetLoss)
    {
        if (!(targetLoss > 0) || !double.IsFinite(targetLoss))
            throw new SpecException($"--target-loss: must be a finite number > 0 (got {targetLoss.ToString(CultureInfo.InvariantCulture)}).");
        if (SweepSpec(sweepDir) is not { } spec) return;
        string specPath = new ResultsStore(sweepDir).SpecPath;
        var target = spec.Workload?.Target;
        if (target is null) return;
        if (target.Metric != "train_loss")
            throw new SpecException($"--sweep: {specPath} measured steps to {target.Metric} {target.Threshold.ToString(CultureInfo.InvariantCulture)}; the NQM fit needs a train_loss target.");
        if (Math.Abs(target.Threshold - targetLoss) > 1e-12 * Math.Max(1, Math.Abs(target.Threshold)))
            throw new SpecException($"--target-loss {targetLoss.ToString(CultureInfo.InvariantCulture)} differs from the sweep's target " +
                                    $"(train_loss {target.Threshold.ToString(CultureInfo.InvariantCulture)} in {specPath}): predictions must be for the target the sweep measured.");
    }

    /// <summary>
    /// Which NQM optimizers model each optimizer family, as the families declare it for <paramref name="spec"/>'s entry
    /// (K-FAC's damped counterpart at the λ its trials ran with); a family the spec does not list, or no spec, gets its
    /// defaults.
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> NqmCounterparts(ExperimentSpec? spec) =>
        Training.Optimizers.OptimizerFamilies.All.ToDictionary(f => f.Name, f => f.NqmCounterparts(
            spec?.Optimizers?.FirstOrDefault(o => o.Name == f.Name) ?? new OptimizerSearch { Name = f.Name }));

    /// <summary>The spec a sweep directory recorded; null when it has none (SweepResults.Load says what is missing).</summary>
    static ExperimentSpec? SweepSpec(string sweepDir)
    {
        var store = new ResultsStore(sweepDir);
        if (!File.Exists(store.SpecPath)) return null;
        try { return store.ReadSpec(); }
        catch (SweepStoreException e) { throw new SpecException(e.Message); }
    }

    /// <summary>One row of fit-curve.csv: the fit trial's evaluated training loss; <c>recorded</c> = from its curve.csv, else from the run past the target.</summary>
    public sealed record FitCurveRow(long Step, double TrainLoss, bool Recorded);

    /// <summary>
    /// The fit trial's curve run on past its first crossing of the target to <paramref name="multiple"/> × its steps
    /// (TrialExtension: the same trial replayed from its record), written to <paramref name="path"/>. Null, with a
    /// line on stderr, when there is no fit trial or it cannot be run on (the fit then reads the recorded curve, and
    /// fit.json's fit_curve says which it read).
    /// </summary>
    static LossCurve? LongerFitCurve(SweepResults sweep, double multiple, string path)
    {
        if (sweep.FitBatchSize is not int b) return null;
        LossCurve recorded;
        try { recorded = sweep.BestTrialCurve("sgd", b); }
        catch (RunFileException) { return null; } // the fit reports the missing curve itself
        string trialJson = Path.Combine(Path.GetDirectoryName(recorded.Path)!, "trial.json");
        try
        {
            var record = Training.Trials.TrialJson.Read<Training.Trials.TrialRecord>(trialJson);
            long from = (long)recorded.Points[^1].Step, to = (long)Math.Ceiling(multiple * (record.StepsToTarget ?? from));
            if (to <= from) return null;
            Console.Error.WriteLine($"fit curve: running {Path.GetDirectoryName(recorded.Path)} on from step {from} to {to} ({multiple:G3} × its steps-to-target) for the floor fit ...");
            using var data = Training.Data.FashionMnist.Load(record.Config.DataDir);
            var extension = Training.Trials.TrialExtension.Run(record.Config, new Training.Workloads.FashionMnistWorkload(data), from, to, points: 40);
            var rows = recorded.Points.Select(p => new FitCurveRow((long)p.Step, p.Loss, true))
                .Concat(extension.Select(e => new FitCurveRow(e.Step, e.TrainLoss, false))).ToList();
            CsvFiles.Write(path, rows);
            return recorded with { Path = path, Points = rows.Select(r => new LossCurvePoint(r.Step, r.TrainLoss)).ToList() };
        }
        catch (Exception e) when (e is Training.Trials.TrialConfigException or Training.Data.DataSetException or JsonException or IOException)
        {
            Console.Error.WriteLine($"fit curve: cannot run {trialJson}'s trial on ({e.Message}); the floor is fitted to the recorded curve.");
            return null;
        }
    }

    /// <summary>The fit → report stages; shared with `nqm validate`.</summary>
    public static void Run(string sweepDir, string curvatureDir, double targetLoss, FitOptions options, string outDir, object? provenance)
    {
        // The checkpoint given, its siblings of the same curvature run (DIR/init, DIR/warmup-200) and the checkpoints of the
        // trajectories measured with it (sgd-b16-r0/loss-1, ...): fit.checkpoint picks the primary, the sensitivity table uses all.
        var checkpoints = CurvatureResults.LoadWithSiblings(curvatureDir).Concat(TrajectoryDrift.Checkpoints(curvatureDir)).ToList();
        var sweep = SweepResults.Load(sweepDir);
        Directory.CreateDirectory(outDir);
        string fitCurvePath = Path.Combine(outDir, ValidationFileNames.FitCurve);
        var longer = options.FitCurveExtension > 1 ? LongerFitCurve(sweep, options.FitCurveExtension, fitCurvePath) : null;
        if (longer is null && File.Exists(fitCurvePath)) File.Delete(fitCurvePath); // an earlier fit's: not what this one read
        var inputs = new ValidationInputs(sweep, checkpoints, targetLoss, options, NqmCounterparts(SweepSpec(sweepDir))) { LongerFitCurve = longer };
        var result = Validator.Run(inputs);
        Validator.Write(result, outDir);
        // The drift table goes into the report's folder as measured, so every number of the report is a file of the run.
        var drift = TrajectoryDrift.Load(curvatureDir);
        string driftCopy = Path.Combine(outDir, TrajectoryDrift.FileName);
        if (drift.Count > 0) CsvFiles.Write(driftCopy, drift);
        else if (File.Exists(driftCopy)) File.Delete(driftCopy);
        if (provenance is not null)
            AtomicFile.WriteAllText(Path.Combine(outDir, ValidationFileNames.Provenance), JsonSerializer.Serialize(provenance, FitOptions.Json));
        ValidationReport.Build(outDir).Save(outDir);
    }
}
