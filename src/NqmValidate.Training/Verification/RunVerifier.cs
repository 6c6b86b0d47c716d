using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NqmValidate.Formats;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Verification;

/// <param name="RunDirectory">A sweep directory or a validate run directory (with sweep/).</param>
/// <param name="Sample">How many trials to re-run (null: the covering sample, 2 per optimizer).</param>
/// <param name="ScratchDirectory">Where the re-runs go (never inside the run).</param>
public sealed record VerifyOptions(string RunDirectory, int? Sample, string ScratchDirectory);

/// <summary>A trial's outcome as compared: status, steps-to-target, initial and final training loss.</summary>
public sealed record TrialOutcome(string Status, long? StepsToTarget, double? InitialLoss, double? FinalLoss)
{
    public bool SameAs(TrialOutcome o) => Status == o.Status && StepsToTarget == o.StepsToTarget
        && Bits(InitialLoss) == Bits(o.InitialLoss) && Bits(FinalLoss) == Bits(o.FinalLoss);

    static long? Bits(double? x) => x is { } v ? BitConverter.DoubleToInt64Bits(v) : null;

    public override string ToString() => StepsToTarget is { } s ? $"reached at step {s}" : Status.Replace('_', ' ');
}

/// <summary>
/// One re-run trial. <see cref="Evidence"/> says what was compared: "curve.csv" (the whole logged curve, for runs that
/// keep their trial directories) or "trials.csv" (initial loss, final loss and outcome, for runs that keep only the
/// tables). <see cref="RelativeDifference"/> = (steps here − steps recorded) / steps recorded, for a trial whose
/// recorded run reached the target; <see cref="UncappedSteps"/> is set when the re-run at the recorded cap missed the
/// target and a second re-run with the study's whole budget measured its steps here; <see cref="LowerBound"/> when
/// even that did not reach it (the difference is then at least the one given).
/// </summary>
public sealed record TrialVerification(
    TrialsRow Row, string Evidence, long MaxSteps, bool Identical, long? SameThrough, long? PartedBy,
    TrialOutcome Recorded, TrialOutcome Replayed, long? UncappedSteps, double? RelativeDifference, bool LowerBound,
    IReadOnlyList<string> MachineDifferences, string ReplayDirectory)
{
    static string R(double? x) => x?.ToString("R", CultureInfo.InvariantCulture) ?? "none";

    public string Describe()
    {
        var head = new StringBuilder().Append(CultureInfo.InvariantCulture,
            $"{Row.Optimizer} B={Row.BatchSize} {Row.Study}/{Row.Trial} (seed {Row.Seed}, lr {R(Row.LearningRate)}, max_steps {MaxSteps}): ");
        if (Identical)
            return head.Append(CultureInfo.InvariantCulture, $"bit-identical ({Evidence}; {Recorded})").ToString();
        head.Append("differs: ");
        if (PartedBy == 0)
            head.Append(CultureInfo.InvariantCulture, $"curves part at step 0 (initial loss {R(Recorded.InitialLoss)} recorded, {R(Replayed.InitialLoss)} here)");
        else if (PartedBy is { } p)
        {
            head.Append(CultureInfo.InvariantCulture, $"curves part after step {SameThrough} and by step {p}");
            if (!SameBits(Recorded.FinalLoss, Replayed.FinalLoss))
                head.Append(CultureInfo.InvariantCulture, $" (final loss {R(Recorded.FinalLoss)} recorded, {R(Replayed.FinalLoss)} here)");
        }
        else
            head.Append("curves identical as far as logged");
        head.Append(CultureInfo.InvariantCulture, $"; recorded {Recorded}, here {Replayed}");
        if (UncappedSteps is { } u) head.Append(CultureInfo.InvariantCulture, $" within the cap, at step {u} with the study's whole budget");
        if (RelativeDifference is { } d)
            head.Append(CultureInfo.InvariantCulture, $" ({(LowerBound ? "≥ " : "")}{d * 100:+0.0;-0.0;0.0}% steps-to-target)");
        return head.ToString();
    }

    static bool SameBits(double? a, double? b) => a is null ? b is null : b is not null && BitConverter.DoubleToInt64Bits(a.Value) == BitConverter.DoubleToInt64Bits(b.Value);
}

/// <summary>The verdict of <c>nqm verify</c>.</summary>
public sealed record VerifyReport(IReadOnlyList<TrialVerification> Trials, IReadOnlyList<string> MachineDifferences, string ScratchDirectory)
{
    public bool ReproducesExactly => Trials.All(t => t.Identical);

    /// <summary>Trials with a recorded steps-to-target (the ones the median is over).</summary>
    public IReadOnlyList<TrialVerification> WithSteps => Trials.Where(t => t.RelativeDifference is not null).ToList();

    /// <summary>Median over <see cref="WithSteps"/> of |relative steps-to-target difference| (null when none).</summary>
    public double? MedianAbsoluteDifference
    {
        get
        {
            var d = WithSteps.Select(t => Math.Abs(t.RelativeDifference!.Value)).Order().ToArray();
            if (d.Length == 0) return null;
            return d.Length % 2 == 1 ? d[d.Length / 2] : (d[d.Length / 2 - 1] + d[d.Length / 2]) / 2;
        }
    }

    /// <summary>The one closing line: "reproduces exactly", or the size of the difference and what differs between the machines.</summary>
    public string Conclusion()
    {
        if (ReproducesExactly) return "reproduces exactly";
        string machines = MachineDifferences.Count == 0 ? "nothing recorded (same CPU, LibTorch build, threads and environment)" : string.Join("; ", MachineDifferences);
        string level = MedianAbsoluteDifference is { } m
            ? string.Create(CultureInfo.InvariantCulture, $"differs at the level of {m * 100:0.#}% in steps-to-target (median over {WithSteps.Count} trials)")
            : "differs (no sampled trial reached its target, so no steps-to-target difference)";
        return $"{level}, machines differ in: {machines}";
    }
}

/// <summary>
/// <c>nqm verify</c>: re-runs a deterministic sample of a finished run's trials (<see cref="VerifySample"/>) from their
/// recorded configurations, each as its own `nqm train` process like the sweep's, into a scratch directory, and
/// compares them with the record bit for bit. The run itself is only read.
/// </summary>
public sealed class RunVerifier
{
    readonly string _nqmDll;

    /// <param name="nqmDll">The nqm.dll whose `train` re-runs the trials (null: the one beside the running assemblies).</param>
    public RunVerifier(string? nqmDll = null)
    {
        _nqmDll = nqmDll ?? Path.Combine(AppContext.BaseDirectory, "nqm.dll");
        if (!File.Exists(_nqmDll))
            throw new TrialLaunchException($"cannot re-run trials: {_nqmDll} not found (build src/NqmValidate.Cli first: dotnet build -c Release).");
    }

    /// <param name="options">The run, the sample size and the scratch directory.</param>
    /// <param name="trialDone">Called with each trial's verdict as it comes.</param>
    /// <param name="cancel">Stops the current re-run (its process is killed) and throws.</param>
    /// <param name="trialStarting">Called before each re-run (after the run and the sample were checked).</param>
    public async Task<VerifyReport> RunAsync(VerifyOptions options, Action<TrialVerification>? trialDone = null, CancellationToken cancel = default,
        Action<TrialsRow>? trialStarting = null)
    {
        var run = RecordedRun.Open(options.RunDirectory);
        string scratch = Path.GetFullPath(options.ScratchDirectory);
        if ((scratch + "/").StartsWith(run.Root + "/", StringComparison.Ordinal))
            throw new VerifyInputException($"--scratch {options.ScratchDirectory}: inside the run directory {run.Root}; verify never writes into a run.");
        var sample = VerifySample.Choose(run.Rows, options.Sample);
        Directory.CreateDirectory(scratch);
        var results = new List<TrialVerification>();
        var differences = new List<string>();
        foreach (var row in sample)
        {
            cancel.ThrowIfCancellationRequested();
            trialStarting?.Invoke(row);
            var result = File.Exists(Path.Combine(run.TrialDirectory(row), "trial.json"))
                ? await FromTrialRecord(run, row, scratch, cancel)
                : await FromTables(run, row, scratch, cancel);
            results.Add(result);
            foreach (var d in result.MachineDifferences) if (!differences.Contains(d)) differences.Add(d);
            trialDone?.Invoke(result);
        }
        return new VerifyReport(results, differences, scratch);
    }

    // ---- runs that keep their trial directories: the recorded config and curve ----

    async Task<TrialVerification> FromTrialRecord(RecordedRun run, TrialsRow row, string scratch, CancellationToken cancel)
    {
        string trialDir = run.TrialDirectory(row);
        string trialJson = Path.Combine(trialDir, "trial.json");
        JsonElement recorded;
        TrialConfig config;
        try
        {
            recorded = JsonDocument.Parse(File.ReadAllText(trialJson)).RootElement;
            if (!recorded.TryGetProperty("config", out var node) || node.ValueKind != JsonValueKind.Object)
                throw new VerifyInputException($"{trialJson}: no `config` (a crash record?); cannot re-run it.");
            config = node.Deserialize<TrialConfig>(TrialJson.Options) ?? throw new VerifyInputException($"{trialJson}: `config` is null.");
        }
        catch (JsonException e)
        {
            throw new VerifyInputException($"{trialJson}: its recorded config cannot be read by this nqm: {e.Message}", e);
        }
        var recordedOutcome = new TrialOutcome(Text(recorded, "status") ?? "unknown", Long(recorded, "steps_to_target"),
            Double(recorded, "initial_loss"), Double(recorded, "final_loss"));
        string dir = FreshDirectory(scratch, row.Study, row.Trial);
        var (record, curve) = await Replay(config, dir, cancel);
        var replayed = Outcome(record);

        string curvePath = Path.Combine(trialDir, CurveFile.FileName);
        CurveComparison comparison;
        string evidence;
        if (File.Exists(curvePath))
        {
            comparison = CurveComparison.Compare(CurveFile.Read(curvePath), curve);
            evidence = $"curve.csv, {curve.Count} rows";
        }
        else
        {
            comparison = CurveComparison.FromEnds(recordedOutcome.SameAs(replayed), Same(recordedOutcome.InitialLoss, replayed.InitialLoss), record.StepsRun);
            evidence = "trial.json";
        }
        bool identical = comparison.Identical && recordedOutcome.SameAs(replayed);

        long? uncapped = null;
        if (!identical && recordedOutcome.StepsToTarget is not null && replayed.StepsToTarget is null
            && record.Status == TrialStatus.BudgetExhausted && Budget(run, row) is { } budget && budget > config.MaxSteps)
        {
            var (wide, _) = await Replay(config with { MaxSteps = budget }, FreshDirectory(scratch, row.Study, row.Trial + "-whole-budget"), cancel);
            uncapped = wide.StepsToTarget;
        }

        var machine = new List<string>();
        var recordedMachine = Optional<MachineProvenance>(recorded, "machine");
        if (recordedMachine is null) machine.Add("machine details (not recorded: the run predates machine provenance)");
        else if (record.Machine is { } here) machine.AddRange(MachineProvenance.Differences(recordedMachine, here));
        machine.AddRange(VersionDifferences(Optional<VersionInfo>(recorded, "versions"), record.Versions));
        return Verdict(row, evidence, config.MaxSteps, identical, comparison, recordedOutcome, replayed, uncapped, machine, dir);
    }

    // ---- runs that keep only their tables: the sweep's own launch of the trial, compared with trials.csv ----

    async Task<TrialVerification> FromTables(RecordedRun run, TrialsRow row, string scratch, CancellationToken cancel)
    {
        if (run.Plan is null)
            throw new VerifyInputException($"{run.Root}: the run keeps no trial directories and no spec (neither {Path.Combine(run.SweepDirectory, "spec.json")} " +
                                           "nor validation/provenance.json), so its trials' configurations are unknown.");
        var study = run.Plan.Studies.FirstOrDefault(s => s.Id == row.Study)
            ?? throw new VerifyInputException($"{run.SpecSource}: the spec has no study {row.Study} (trials.csv names it): the spec is not the one the run used.");
        var trial = study.Trials.FirstOrDefault(t => t.Id == row.Trial);
        if (trial is null || trial.Seed != row.Seed || trial.Point.LearningRate.ToString("R", CultureInfo.InvariantCulture) != row.LearningRate.ToString("R", CultureInfo.InvariantCulture))
            throw new VerifyInputException($"{run.SpecSource}: study {row.Study} trial {row.Trial} has another seed or learning rate than trials.csv records: the spec is not the one the run used.");
        long cap = row.StepCap ?? study.BudgetSteps;
        var recorded = new TrialOutcome(row.Status, row.StepsToTarget, row.InitialLoss, row.FinalLoss);

        string dir = FreshDirectory(scratch, row.Study, row.Trial);
        var (record, _) = await ReplayRequest(new TrialRequest(run.Plan.Spec, study, trial, cap), dir, cancel);
        var log = ResultsStore.ReadLog(dir)!;
        var counted = Counted(study, trial, log, cap);
        var replayed = new TrialOutcome(Snake(counted.Status.ToString()), counted.StepsToTarget, counted.InitialLoss, counted.FinalLoss);
        bool identical = recorded.SameAs(replayed);
        var comparison = CurveComparison.FromEnds(identical, Same(recorded.InitialLoss, replayed.InitialLoss), Math.Min(row.StepsRun, counted.StepsCounted));

        long? uncapped = null;
        if (!identical && recorded.StepsToTarget is not null && replayed.StepsToTarget is null
            && log.Status == TrialStatus.BudgetExhausted && study.BudgetSteps > cap)
        {
            var (wide, _) = await ReplayRequest(new TrialRequest(run.Plan.Spec, study, trial, study.BudgetSteps),
                FreshDirectory(scratch, row.Study, row.Trial + "-whole-budget"), cancel);
            uncapped = wide.StepsToTarget;
        }

        var machine = new List<string>();
        if (run.ProvenanceMachine is { } m && record.Machine is { } here)
            // provenance.json is written by the validate process, not by a trial: compare what it shares with a trial's.
            machine.AddRange(MachineProvenance.Differences(m, here).Where(d => !d.Contains("threads", StringComparison.Ordinal) && !d.Contains("_NUM_THREADS", StringComparison.Ordinal)));
        else
            machine.Add("machine details (not recorded: the run predates machine provenance)");
        machine.AddRange(VersionDifferences(run.ProvenanceVersions, record.Versions));
        return Verdict(row, "trials.csv: initial loss, final loss, outcome", cap, identical, comparison, recorded, replayed, uncapped, machine, dir);
    }

    /// <summary>
    /// The replayed trial as its study counts it, by the sweep's own rule (<see cref="StudyResults.Compute"/>): a
    /// trial launched with cap c &lt; budget counts as if an earlier trial had reached the target at c.
    /// </summary>
    static StudyTrial Counted(StudyPlan study, TrialPlan trial, TrialLog log, long cap)
    {
        var order = new List<TrialPlan>();
        var logs = new Dictionary<string, TrialLog>();
        if (cap < study.BudgetSteps)
        {
            var earlier = trial with { Id = "\0earlier", Index = -1 };
            order.Add(earlier);
            logs[earlier.Id] = new TrialLog(log.Record with { Status = TrialStatus.Reached, StepsToTarget = cap, StepsRun = cap }, []);
        }
        order.Add(trial);
        logs[trial.Id] = log;
        return StudyResults.Compute(study, order, logs, prune: true).Trials[^1];
    }

    static TrialVerification Verdict(TrialsRow row, string evidence, long maxSteps, bool identical, CurveComparison comparison,
        TrialOutcome recorded, TrialOutcome replayed, long? uncapped, List<string> machine, string dir)
    {
        double? relative = null;
        bool lowerBound = false;
        if (recorded.StepsToTarget is { } s && s > 0)
        {
            long? here = replayed.StepsToTarget ?? uncapped;
            if (here is { } h) relative = (double)(h - s) / s;
            else if (replayed.Status == "diverged") relative = double.PositiveInfinity;
            else { relative = (double)(maxSteps + 1 - s) / s; lowerBound = true; }
        }
        return new TrialVerification(row, evidence, maxSteps, identical, comparison.SameThrough, comparison.PartedBy,
            recorded, replayed, uncapped, relative, lowerBound, machine, dir);
    }

    static IEnumerable<string> VersionDifferences(VersionInfo? recorded, VersionInfo here)
    {
        if (recorded is null) { yield return "versions (not recorded)"; yield break; }
        if (recorded.Nqm != here.Nqm) yield return $"nqm build ({recorded.Nqm} recorded, {here.Nqm} here)";
        if (recorded.TorchSharp != here.TorchSharp) yield return $"TorchSharp ({recorded.TorchSharp} recorded, {here.TorchSharp} here)";
        if (recorded.Dotnet != here.Dotnet) yield return $".NET ({recorded.Dotnet} recorded, {here.Dotnet} here)";
        if (recorded.Os != here.Os) yield return $"OS ({recorded.Os} recorded, {here.Os} here)";
        if (recorded.ProcessorCount != here.ProcessorCount) yield return $"processor count ({recorded.ProcessorCount} recorded, {here.ProcessorCount} here)";
    }

    static TrialOutcome Outcome(TrialRecord r) =>
        new(Snake(r.Status.ToString()), r.StepsToTarget, r.InitialLoss, r.FinalLoss);

    // ---- launching ----

    /// <summary>Re-runs a recorded config as `nqm train --config`, in a process set up like a sweep's trial.</summary>
    async Task<(TrialRecord Record, IReadOnlyList<CurvePoint> Curve)> Replay(TrialConfig config, string dir, CancellationToken cancel)
    {
        string configPath = Path.Combine(dir, "config.json");
        TrialJson.Write(configPath, config);
        await Launch(["train", "--config", configPath, "--out", dir, "--quiet"], config.Threads, dir, cancel);
        return ReadReplay(dir);
    }

    /// <summary>Re-runs a trial exactly as the sweep launched it (its arguments and environment).</summary>
    async Task<(TrialRecord Record, IReadOnlyList<CurvePoint> Curve)> ReplayRequest(TrialRequest request, string dir, CancellationToken cancel)
    {
        var runner = new ProcessTrialRunner("dotnet", [_nqmDll]);
        var exit = await runner.RunAsync(request, dir, _ => { }, cancel);
        cancel.ThrowIfCancellationRequested();
        if (exit.ExitCode != 0)
            throw new VerifyReplayException($"the re-run in {dir} failed (exit {exit.ExitCode}): {exit.StderrTail}");
        return ReadReplay(dir);
    }

    async Task Launch(IReadOnlyList<string> arguments, int threads, string dir, CancellationToken cancel)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(_nqmDll);
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // As the sweep starts its trials.
        ProcessTrialRunner.SetTrialEnvironment(info, threads);
        using var process = Process.Start(info) ?? throw new TrialLaunchException("cannot start `dotnet`.");
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(cancel);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }
        string log = await stdout + await stderr;
        await File.WriteAllTextAsync(Path.Combine(dir, "trial.log"), log, CancellationToken.None);
        if (process.ExitCode != 0)
            throw new VerifyReplayException($"the re-run in {dir} failed (exit {process.ExitCode}): {log.Trim().Split('\n')[^1]}");
    }

    static (TrialRecord, IReadOnlyList<CurvePoint>) ReadReplay(string dir)
    {
        var record = TrialJson.Read<TrialRecord>(Path.Combine(dir, "trial.json"));
        string curve = Path.Combine(dir, CurveFile.FileName);
        return (record, File.Exists(curve) ? CurveFile.Read(curve) : []);
    }

    static string FreshDirectory(string scratch, string study, string trial)
    {
        string dir = Path.Combine(scratch, study, trial);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(dir);
        return dir;
    }

    static long? Budget(RecordedRun run, TrialsRow row) =>
        run.Plan?.Studies.FirstOrDefault(s => s.Id == row.Study)?.BudgetSteps;

    // ---- JSON helpers (trial.json files of older versions may lack fields) ----

    static string? Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    static long? Long(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;
    static double? Double(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    static T? Optional<T>(JsonElement e, string name) where T : class
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Object) return null;
        try { return v.Deserialize<T>(TrialJson.Options); }
        catch (JsonException) { return null; }
    }

    static bool Same(double? a, double? b) =>
        a is null ? b is null : b is not null && BitConverter.DoubleToInt64Bits(a.Value) == BitConverter.DoubleToInt64Bits(b.Value);

    static string Snake(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}

/// <summary>A re-run did not finish (crashed, bad exit); the message names its directory and the cause.</summary>
public sealed class VerifyReplayException(string message) : Exception(message);
