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

    /// <summary>
    /// Everything the stages need, read and checked before any work: the resolved spec, its target, the fit
    /// options and the curvature request, and where each stage writes.
    /// </summary>
    sealed record ValidateRun(
        string SpecPath, string OutDir, SweepCommandOptions Sweep, ExperimentSpec Spec, TargetSpec Target,
        FitOptions Fit, CurvatureSpecFile.Values Curvature, CurvatureRunRequest CurvatureRequest)
    {
        public string SweepDir => Sweep.OutDirectory!;
        public string CurvatureDir => CurvatureRequest.OutDir;
        public string ValidationDir => Path.Combine(OutDir, "validation");
        /// <summary>The checkpoint the fit reads by default: the last one measured.</summary>
        public Checkpoint LastCheckpoint => CurvatureRequest.Checkpoints.MaxBy(c => c.Steps)!;
        /// <summary>The curvature folder the fit is given (one checkpoint: the curvature folder itself).</summary>
        public string CheckpointDir => CurvatureRequest.Checkpoints.Count == 1 ? CurvatureDir : Path.Combine(CurvatureDir, LastCheckpoint.Label);
    }

    static async Task<int> RunAsync(ParseResult parse, CancellationToken cancel)
    {
        var wall = Stopwatch.StartNew();
        // The commit is probed once and cached: probe it now, at launch, so that the report's provenance names the code
        // that ran, not whatever the repository's HEAD has moved to when the report stage starts an hour later.
        _ = GitInfo.Current;
        try
        {
            var run = ReadOptions(parse);
            // The whole study (sweep, curvature, fit) is one run: a second `validate` on OUT is refused, not interleaved.
            using var owner = RunLock.Acquire(run.OutDir);
            Directory.CreateDirectory(run.OutDir);

            var seconds = new Dictionary<string, double>();
            var stage = Stopwatch.StartNew();
            var sweep = await SweepAsync(run, cancel);
            seconds["sweep"] = stage.Elapsed.TotalSeconds;
            if (!sweep.Complete)
            {
                Console.Error.WriteLine($"interrupted during the sweep; run the same command again to resume ({run.OutDir}).");
                return ExitCodes.Interrupted;
            }
            stage.Restart();
            MeasureCurvature(run);
            seconds["curvature"] = stage.Elapsed.TotalSeconds;
            stage.Restart();
            Fit(run, wall, seconds);
            seconds["fit"] = stage.Elapsed.TotalSeconds;
            PrintReport(run, wall);
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
    /// The spec with the command line's overrides, every stage's section checked: the curvature section is read
    /// before the sweep so that a bad one is reported before an hour of training, not after.
    /// </summary>
    static ValidateRun ReadOptions(ParseResult parse)
    {
        string specPath = parse.GetValue(Spec)!;
        string outDir = Path.GetFullPath(parse.GetValue(Out)!);
        var sweepOptions = new SweepCommandOptions(specPath, Path.Combine(outDir, "sweep"), parse.GetValue(Jobs), parse.GetValue(Threads), null,
            parse.GetValue(DataDir), false, null, null, false, null, false, null, null, null, parse.GetValue(Progress)!);
        var spec = SweepCommand.Resolve(sweepOptions);
        var target = spec.Workload?.Target ?? throw new SpecException($"{specPath}: workload.target is required.");
        if (target.Metric != "train_loss")
            throw new SpecException($"{specPath}: workload.target.metric = '{target.Metric}': the NQM fit needs a train_loss target (the NQM models optimisation).");
        var fitOptions = FitOptions.Parse(spec.Fit, specPath);
        SweepCommand.CheckBeforeWork(spec);
        // The curvature stage runs from the same spec object (its workload, seed and curvature section).
        var curvature = CurvatureSpecFile.From(spec, specPath);
        var request = curvature.ToRequest(Path.Combine(outDir, "curvature")) with
        {
            Threads = parse.GetValue(Threads) ?? Math.Max(1, Environment.ProcessorCount),
        };
        try { request.Settings.Validate(); }
        catch (CurvatureInputException e) { throw new CurvatureInputException($"{specPath}: curvature: {e.Message}"); }
        SweepCommand.WarnBeforeWork(spec);
        return new ValidateRun(specPath, outDir, sweepOptions, spec, target, fitOptions, curvature, request);
    }

    /// <summary>Stage 1: the sweep (resumes by itself: finished trials are never rerun).</summary>
    static async Task<SweepSummary> SweepAsync(ValidateRun run, CancellationToken cancel)
    {
        Stage($"1/3 sweep → {run.SweepDir}");
        // The workers end with the sweep stage (their stdin closes): the curvature stage needs the memory and the cores.
        var trials = TrialHosting.ForCurrentNqm(run.Spec.TrialProcessMode);
        try
        {
            var runner = new SweepRunner(trials);
            return await SweepProgressView.RunAsync(run.Sweep.Progress,
                p => runner.RunAsync(new SweepOptions(run.Spec, run.SweepDir, Shard.All), p, cancel));
        }
        finally
        {
            (trials as IDisposable)?.Dispose();
        }
    }

    /// <summary>Stage 2: curvature from the spec's workload and curvature section, then along the best trials if asked.</summary>
    static void MeasureCurvature(ValidateRun run)
    {
        var request = run.CurvatureRequest;
        string key = JsonSerializer.Serialize(request with { OutDir = "" });
        if (StageDone(run.CurvatureDir, key) && File.Exists(Path.Combine(run.CheckpointDir, "summary.json")))
            Stage($"2/3 curvature: up to date ({run.CurvatureDir})");
        else
        {
            Stage($"2/3 curvature at {string.Join(", ", request.Checkpoints)} → {run.CurvatureDir}");
            CurvatureRun.Execute(request, line => Console.Error.WriteLine("  " + line));
            MarkDone(run.CurvatureDir, key);
        }
        if (run.Curvature.Trajectory is { } trajectory)
            MeasureTrajectories(trajectory, run.SweepDir, run.Target.Threshold, request, Path.Combine(run.CurvatureDir, Trajectories.FolderName));
    }

    /// <summary>Stage 3: fit, predict, compare and write the report, unless its inputs are those of the report present.</summary>
    static void Fit(ValidateRun run, Stopwatch wall, Dictionary<string, double> seconds)
    {
        string key = FitKey(run.Spec, run.Fit, run.SweepDir, run.CheckpointDir);
        if (StageDone(run.ValidationDir, key) && File.Exists(Path.Combine(run.ValidationDir, "report.html")))
        {
            Stage($"3/3 fit, predict, compare, report: up to date ({run.ValidationDir})");
            return;
        }
        Stage($"3/3 fit, predict, compare, report → {run.ValidationDir} (curvature checkpoint {run.LastCheckpoint})");
        FitCommand.Run(run.SweepDir, run.CheckpointDir, run.Target.Threshold, run.Fit, run.ValidationDir, Provenance(run, wall, seconds));
        MarkDone(run.ValidationDir, key);
    }

    /// <summary>What the report records about how it was made: the command, the spec as written, the code and the machine.</summary>
    static object Provenance(ValidateRun run, Stopwatch wall, Dictionary<string, double> seconds)
    {
        var (commit, dirty) = GitInfo.Current;
        return new
        {
            command = Environment.GetCommandLineArgs(),
            spec_path = Path.GetFullPath(run.SpecPath),
            spec = JsonDocument.Parse(File.ReadAllText(run.SpecPath), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip }).RootElement,
            resolved_jobs = run.Spec.Jobs,
            resolved_threads = run.Spec.Threads,
            experiment_seed = run.Spec.Seed,
            curvature_checkpoint = run.LastCheckpoint.ToString(),
            curvature_seed = run.CurvatureRequest.Seed,
            git_commit = commit,
            git_dirty = dirty,
            versions = VersionInfo.Current(),
            machine = MachineProvenance.Current(),
            started_utc = DateTime.UtcNow - wall.Elapsed,
            stage_seconds_this_invocation = seconds,
        };
    }

    static void PrintReport(ValidateRun run, Stopwatch wall)
    {
        Console.WriteLine($"report: {Path.Combine(run.ValidationDir, "report.html")}");
        foreach (var line in ValidationReport.Summary(run.ValidationDir)) Console.WriteLine(line);
        Stage($"done in {wall.Elapsed.TotalMinutes:F1} min");
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
