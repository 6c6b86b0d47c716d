using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NqmValidate.Curvature;
using NqmValidate.Reports;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;
using NqmValidate.Validation;
using NqmValidate.Common;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm validate --spec FILE --out DIR`: sweep → curvature → fit → predict → compare → report, each
/// stage in its own folder of DIR and resumable: the sweep resumes trial by trial, and the curvature
/// and fit stages are skipped when their outputs exist and were made from the same inputs (a key of
/// the inputs is kept in each stage's stage.json).
/// </summary>
public static class ValidateCommand
{
    static readonly Option<string> Spec = new("--spec") { Description = "Experiment spec (experiments/*.json).", Required = true };
    static readonly Option<string> Out = new("--out") { Description = "Run directory (sweep/, curvature/, validation/); running again resumes it.", Required = true };
    static readonly Option<int?> Jobs = new("--jobs") { Description = "Trial processes at once (overrides the spec's `jobs`)." };
    static readonly Option<int?> Threads = new("--threads") { Description = "Threads per trial process and for the curvature stage (overrides `threads`)." };
    static readonly Option<string?> DataDir = new("--data-dir") { Description = "Fashion-MNIST folder (overrides workload.data.dir)." };
    static readonly Option<string> Progress = new("--progress")
    {
        Description = "auto | live | plain | none (auto: live on a terminal, plain lines otherwise or when CI=true).",
        DefaultValueFactory = _ => "auto",
    };

    public static Command Create()
    {
        var command = new Command("validate", "Run the whole study: sweep, curvature, NQM fit and prediction, comparison and report (resumable).");
        foreach (var o in new Option[] { Spec, Out, Jobs, Threads, DataDir, Progress }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            using var cancel = new CancellationTokenSource();
            void Stop(PosixSignalContext context) { context.Cancel = true; cancel.Cancel(); }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            return RunAsync(parse, cancel.Token).GetAwaiter().GetResult();
        });
        return command;
    }

    static void Stage(string text) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {text}");

    static async Task<int> RunAsync(ParseResult parse, CancellationToken cancel)
    {
        string specPath = parse.GetValue(Spec)!;
        string outDir = Path.GetFullPath(parse.GetValue(Out)!);
        var wall = Stopwatch.StartNew();
        var seconds = new Dictionary<string, double>();
        // The commit is probed once and cached: probe it now, at launch, so that the report's provenance names the code
        // that ran, not whatever the repository's HEAD has moved to when the report stage starts an hour later.
        _ = GitInfo.Current;
        try
        {
            var sweepOptions = new SweepCommandOptions(specPath, Path.Combine(outDir, "sweep"), parse.GetValue(Jobs), parse.GetValue(Threads), null,
                parse.GetValue(DataDir), false, null, null, false, null, false, null, null, null, parse.GetValue(Progress)!);
            var spec = SweepCommand.Resolve(sweepOptions);
            var target = spec.Workload?.Target ?? throw new SpecException($"{specPath}: workload.target is required.");
            if (target.Metric != "train_loss")
                throw new SpecException($"{specPath}: workload.target.metric = '{target.Metric}': the NQM fit needs a train_loss target (the NQM models optimisation).");
            var fitOptions = FitOptions.Parse(spec.Fit, specPath);
            SweepCommand.CheckBeforeWork(spec);
            // The curvature stage runs from the same spec object (its workload, seed and curvature section), read
            // before the sweep so that a bad curvature section is reported before an hour of training, not after.
            string curvatureDir = Path.Combine(outDir, "curvature");
            var curvatureValues = CurvatureSpecFile.From(spec, specPath);
            var request = curvatureValues.ToRequest(curvatureDir) with
            {
                Threads = parse.GetValue(Threads) ?? Math.Max(1, Environment.ProcessorCount),
            };
            try { request.Settings.Validate(); }
            catch (CurvatureInputException e) { throw new CurvatureInputException($"{specPath}: curvature: {e.Message}"); }
            SweepCommand.WarnBeforeWork(spec);
            // The whole study (sweep, curvature, fit) is one run: a second `validate` on OUT is refused, not interleaved.
            using var owner = RunLock.Acquire(outDir);
            Directory.CreateDirectory(outDir);

            // 1. Sweep (resumes by itself: finished trials are never rerun).
            var stage = Stopwatch.StartNew();
            Stage($"1/3 sweep → {sweepOptions.OutDirectory}");
            SweepSummary summary;
            // The workers end with the sweep stage (their stdin closes): the curvature stage needs the memory and the cores.
            var trials = TrialHosting.ForCurrentNqm(spec.TrialProcessMode);
            try
            {
                var runner = new SweepRunner(trials);
                summary = await SweepProgressView.RunAsync(sweepOptions.Progress,
                    p => runner.RunAsync(new SweepOptions(spec, sweepOptions.OutDirectory!, Shard.All), p, cancel));
            }
            finally
            {
                (trials as IDisposable)?.Dispose();
            }
            seconds["sweep"] = stage.Elapsed.TotalSeconds;
            if (!summary.Complete)
            {
                Console.Error.WriteLine($"interrupted during the sweep; run the same command again to resume ({outDir}).");
                return ExitCodes.Interrupted;
            }

            // 2. Curvature: the spec's workload and curvature section (request built above).
            stage.Restart();
            string curvatureKey = JsonSerializer.Serialize(request with { OutDir = "" });
            var lastCheckpoint = request.Checkpoints.MaxBy(c => c.Steps)!;
            string checkpointDir = request.Checkpoints.Count == 1 ? curvatureDir : Path.Combine(curvatureDir, lastCheckpoint.Label);
            if (StageDone(curvatureDir, curvatureKey) && File.Exists(Path.Combine(checkpointDir, "summary.json")))
                Stage($"2/3 curvature: up to date ({curvatureDir})");
            else
            {
                Stage($"2/3 curvature at {string.Join(", ", request.Checkpoints)} → {curvatureDir}");
                CurvatureRun.Execute(request, line => Console.Error.WriteLine("  " + line));
                MarkDone(curvatureDir, curvatureKey);
            }
            if (curvatureValues.Trajectory is { } trajectory)
                MeasureTrajectories(trajectory, sweepOptions.OutDirectory!, target.Threshold, request, Path.Combine(curvatureDir, Trajectories.FolderName));
            seconds["curvature"] = stage.Elapsed.TotalSeconds;

            // 3. Fit, predict, compare, report.
            stage.Restart();
            string validationDir = Path.Combine(outDir, "validation");
            string fitKey = FitKey(spec, fitOptions, sweepOptions.OutDirectory!, checkpointDir);
            if (StageDone(validationDir, fitKey) && File.Exists(Path.Combine(validationDir, "report.html")))
                Stage($"3/3 fit, predict, compare, report: up to date ({validationDir})");
            else
            {
                Stage($"3/3 fit, predict, compare, report → {validationDir} (curvature checkpoint {lastCheckpoint})");
                var (commit, dirty) = GitInfo.Current;
                var provenance = new
                {
                    command = Environment.GetCommandLineArgs(),
                    spec_path = Path.GetFullPath(specPath),
                    spec = JsonDocument.Parse(File.ReadAllText(specPath), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip }).RootElement,
                    resolved_jobs = spec.Jobs,
                    resolved_threads = spec.Threads,
                    experiment_seed = spec.Seed,
                    curvature_checkpoint = lastCheckpoint.ToString(),
                    curvature_seed = request.Seed,
                    git_commit = commit,
                    git_dirty = dirty,
                    versions = VersionInfo.Current(),
                    machine = MachineProvenance.Current(),
                    started_utc = DateTime.UtcNow - wall.Elapsed,
                    stage_seconds_this_invocation = seconds,
                };
                FitCommand.Run(sweepOptions.OutDirectory!, checkpointDir, target.Threshold, fitOptions, validationDir, provenance);
                MarkDone(validationDir, fitKey);
            }
            seconds["fit"] = stage.Elapsed.TotalSeconds;

            Console.WriteLine($"report: {Path.Combine(validationDir, "report.html")}");
            foreach (var line in ValidationReport.Summary(validationDir)) Console.WriteLine(line);
            Stage($"done in {wall.Elapsed.TotalMinutes:F1} min");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is SpecException or SweepStoreException or RunFileException or CurvatureInputException
                                       or NqmValidate.Training.Data.DataSetException or JsonException or RunLockedException)
        {
            Console.Error.WriteLine($"nqm validate: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is TorchLoadException or TrialLaunchException)
        {
            Console.Error.WriteLine($"nqm validate: {e.Message}");
            return ExitCodes.Failure;
        }
    }

    /// <summary>
    /// Curvature along the sweep's best trials (the spec's curvature.trajectory): each trial replayed through its
    /// loss-level checkpoints and measured with the curvature section's settings, then drift.csv. Skipped when
    /// drift.csv exists and was made from the same section, settings and trial records.
    /// </summary>
    static void MeasureTrajectories(TrajectorySpec trajectory, string sweepDir, double target, CurvatureRunRequest template, string outDir)
    {
        var (trials, notes) = Trajectories.Pick(sweepDir, trajectory);
        var key = new StringBuilder(JsonSerializer.Serialize(new { trajectory, target, template = template with { OutDir = "" } }));
        foreach (var t in trials)
            key.Append(t.Name).Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(t.TrialDirectory, "trial.json")))));
        string stageKey = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())));
        if (StageDone(outDir, stageKey) && File.Exists(Path.Combine(outDir, Trajectories.DriftFile)))
        {
            Stage($"2/3 curvature along {trials.Count} trajectories: up to date ({outDir})");
            return;
        }
        foreach (var note in notes) Stage("  " + note);
        var rows = new List<DriftRow>();
        foreach (var (t, i) in trials.Select((t, i) => (t, i)))
        {
            Stage($"2/3 curvature along trajectory {i + 1}/{trials.Count}: {t.Name}'s best trial ({t.TrialDirectory}) at init, loss {string.Join(", ", trajectory.Levels.Where(l => l > target).OrderDescending())} and the target {target}");
            rows.AddRange(Trajectories.Measure(t, trajectory.Levels, target, template, outDir, line => Console.Error.WriteLine("  " + line)));
        }
        Directory.CreateDirectory(outDir);
        Trajectories.WriteDrift(Path.Combine(outDir, Trajectories.DriftFile), rows);
        MarkDone(outDir, stageKey);
    }

    /// <summary>The fit stage's inputs: fit options, target and the bytes of the files it reads.</summary>
    static string FitKey(ExperimentSpec spec, FitOptions options, string sweepDir, string curvatureDir)
    {
        using var sha = SHA256.Create();
        var text = new StringBuilder(JsonSerializer.Serialize(options, FitOptions.Json)).Append(spec.Workload!.Target!.Threshold.ToString("R"));
        foreach (var file in new[] { Path.Combine(sweepDir, "steps.csv"), Path.Combine(sweepDir, "trials.csv"),
                     Path.Combine(curvatureDir, "spectrum.csv"), Path.Combine(curvatureDir, "summary.json"),
                     Path.Combine(curvatureDir, "eigen.csv"), Path.Combine(curvatureDir, "density.csv"),
                     Path.Combine(TrajectoryDrift.Folder(curvatureDir) ?? curvatureDir, TrajectoryDrift.FileName) })
            text.Append(file).Append(File.Exists(file) ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file))) : "-");
        return Convert.ToHexString(sha.ComputeHash(Encoding.UTF8.GetBytes(text.ToString())));
    }

    static bool StageDone(string dir, string key)
    {
        string marker = Path.Combine(dir, "stage.json");
        if (!File.Exists(marker)) return false;
        try { return JsonDocument.Parse(File.ReadAllText(marker)).RootElement.GetProperty("key").GetString() == key; }
        catch (Exception e) when (e is JsonException or KeyNotFoundException) { return false; }
    }

    static void MarkDone(string dir, string key) =>
        AtomicFile.WriteAllText(Path.Combine(dir, "stage.json"), JsonSerializer.Serialize(new { key, completed_utc = DateTime.UtcNow }));
}
