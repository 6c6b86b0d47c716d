using NqmValidate.Training.Trials;
using System.CommandLine;
using System.Runtime.InteropServices;
using NqmValidate.Training.Sweeps;
using NqmValidate.Common;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;

namespace NqmValidate.Cli.Commands;

/// <summary>The options of `nqm sweep`, mapped from the command line.</summary>
public sealed record SweepCommandOptions(
    string SpecPath, string? OutDirectory, int? Jobs, int? Threads, string? Device, string? DataDir,
    bool NoPrune, string? Order, string? Shard, bool RetryCrashed, string? EmitSlurm, bool Gpu, int? Shards,
    string? Partition, string? TimeLimit, string Progress, string? TrialProcesses = null);

/// <summary>`nqm sweep`: runs (or resumes) every study of an experiment spec.</summary>
public static class SweepCommand
{
    static readonly Option<string> Spec = new("--spec") { Description = "Experiment spec (experiments/*.json).", Required = true };
    static readonly Option<string> Out = new("--out") { Description = "Sweep directory; running again resumes it." };
    static readonly Option<int?> Jobs = new("--jobs") { Description = "Trials at once, each in a worker or a process of its own (overrides the spec's `jobs`)." };
    static readonly Option<int?> Threads = new("--threads") { Description = "Threads per trial (overrides `threads`)." };
    static readonly Option<string?> Device = new("--device") { Description = "cpu | cuda (overrides `device`)." };
    static readonly Option<string?> DataDir = new("--data-dir") { Description = "Fashion-MNIST folder (overrides workload.data.dir)." };
    static readonly Option<bool> NoPrune = new("--no-prune") { Description = "Run every trial to its budget (exhaustive search; for comparison)." };
    static readonly Option<string?> Order = new("--order") { Description = "predicted | canonical trial order (overrides `order`)." };
    static readonly Option<string?> TrialProcesses = new("--trial-processes")
    {
        Description = "worker (default: persistent worker processes, data loaded once) | per-trial (one `nqm train` process per trial); overrides `trial_processes`. Same results either way.",
    };
    static readonly Option<string?> ShardOpt = new("--shard") { Description = "Run shard i/n only (default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else all)." };
    static readonly Option<bool> RetryCrashed = new("--retry-crashed") { Description = "Run crashed trials again." };
    static readonly Option<string?> EmitSlurm = new("--emit-slurm") { Description = "Write an sbatch array script for the sweep to this file and exit." };
    static readonly Option<bool> Gpu = new("--gpu") { Description = "With --emit-slurm: one GPU per task, trials on cuda." };
    static readonly Option<int?> Shards = new("--shards") { Description = "With --emit-slurm: array size (default: one per optimizer × seed chain)." };
    static readonly Option<string?> Partition = new("--partition") { Description = "With --emit-slurm: Slurm partition." };
    static readonly Option<string?> TimeLimit = new("--time") { Description = "With --emit-slurm: Slurm time limit, e.g. 04:00:00." };
    static readonly Option<string> Progress = new("--progress")
    {
        Description = "auto | live | plain | none (auto: live on a terminal, plain lines otherwise or when CI=true).",
        DefaultValueFactory = _ => "auto",
    };

    public static Command Create()
    {
        var command = new Command("sweep", "Run every study (optimizer × batch size × seed) of an experiment spec; resumable, parallel, shardable.");
        foreach (var o in new Option[] { Spec, Out, Jobs, Threads, Device, DataDir, NoPrune, Order, TrialProcesses, ShardOpt, RetryCrashed,
                     EmitSlurm, Gpu, Shards, Partition, TimeLimit, Progress })
            command.Options.Add(o);
        // Signals are handled here, not by System.CommandLine (whose termination timeout would end
        // the process before the running trials have stopped and been cleaned up).
        command.SetAction(parse =>
        {
            using var cancel = new CancellationTokenSource();
            void Stop(PosixSignalContext context) { context.Cancel = true; cancel.Cancel(); }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            return RunAsync(Map(parse), cancel.Token).GetAwaiter().GetResult();
        });
        return command;
    }

    public static SweepCommandOptions Map(ParseResult p) => new(
        p.GetValue(Spec)!, p.GetValue(Out), p.GetValue(Jobs), p.GetValue(Threads), p.GetValue(Device), p.GetValue(DataDir), p.GetValue(NoPrune), p.GetValue(Order), p.GetValue(ShardOpt), p.GetValue(RetryCrashed),
        p.GetValue(EmitSlurm), p.GetValue(Gpu), p.GetValue(Shards), p.GetValue(Partition), p.GetValue(TimeLimit), p.GetValue(Progress)!,
        p.GetValue(TrialProcesses));

    /// <summary>Defaults → spec file → command-line overrides, validated again after the overrides.</summary>
    public static ExperimentSpec Resolve(SweepCommandOptions o)
    {
        var spec = SpecLoader.Load(o.SpecPath);
        spec = spec with
        {
            Jobs = o.Jobs ?? spec.Jobs,
            Threads = o.Threads ?? spec.Threads,
            Device = o.Device ?? spec.Device,
            Prune = !o.NoPrune && spec.Prune,
            Order = o.Order ?? spec.Order,
            TrialProcesses = o.TrialProcesses ?? spec.TrialProcesses,
            Workload = spec.Workload! with
            {
                Data = spec.Workload!.Data with
                {
                    Dir = o.DataDir is null ? spec.Workload.Data.Dir : Path.GetFullPath(o.DataDir),
                },
            },
        };
        SpecValidation.Validate(spec, $"{o.SpecPath} with command-line overrides");
        return spec;
    }

    /// <summary>
    /// What the trials would find only when they start, checked before any does: the data directory
    /// and its files, batch sizes no larger than the training set.
    /// </summary>
    public static void CheckBeforeWork(ExperimentSpec spec)
    {
        int examples;
        try { examples = FashionMnist.TrainingExamples(spec.Workload!.Data.Dir); }
        catch (DataSetException e) { throw new SpecException($"data: {e.Message}", e); }
        var tooLarge = spec.BatchSizes!.Where(b => b > examples).ToList();
        if (tooLarge.Count > 0)
            throw new SpecException($"batch_sizes: {string.Join(", ", tooLarge)} exceed the {examples} training examples of " +
                                    $"{FashionMnist.ResolveDirectory(spec.Workload!.Data.Dir)} (a batch is drawn without replacement from one epoch).");
    }

    /// <summary>Said once the checks passed and the work starts: convolution widths LibTorch was seen to get wrong, and oversubscribed cores (every trial slower).</summary>
    public static void WarnBeforeWork(ExperimentSpec spec)
    {
        if (spec.Workload?.Model is { } model && ModelRegistry.ChannelCountsOffTheGrid(SpecValidation.ToModelSpec(model)) is { Count: > 0 } off)
            Console.Error.WriteLine($"note: convolution channel counts off the 16-grid ({string.Join(", ", off.Take(4))}{(off.Count > 4 ? ", …" : "")}): LibTorch's CPU " +
                                    "convolution was seen to return NaN at such widths (docs/design/torchsharp.md), and a NaN ends a trial as diverged; prefer widths giving multiples of 16.");
        if (spec.Jobs * spec.Threads > Environment.ProcessorCount)
            Console.Error.WriteLine($"note: {spec.Jobs} jobs × {spec.Threads} threads = {spec.Jobs * spec.Threads} threads on {Environment.ProcessorCount} cores: " +
                                    "oversubscribed trials run much slower; lower --jobs or --threads.");
    }

    static async Task<int> RunAsync(SweepCommandOptions o, CancellationToken cancel)
    {
        try
        {
            var spec = Resolve(o);
            if (o.EmitSlurm is not null) return Emit(spec, o);
            if (o.OutDirectory is null) throw new SpecException("--out: required (the sweep directory).");
            var shard = o.Shard is not null ? Training.Sweeps.Shard.Parse(o.Shard)
                : Training.Sweeps.Shard.FromEnvironment(Environment.GetEnvironmentVariable) ?? Training.Sweeps.Shard.All;
            CheckBeforeWork(spec);
            WarnBeforeWork(spec);
            var plan = SweepPlan.Create(spec);
            var chains = plan.Shard(shard.Index, shard.Count);
            Console.Error.WriteLine($"sweep {spec.Name}: shard {shard} = {chains.Count} of {plan.Chains.Count} chains, " +
                                    $"{chains.Sum(c => c.Studies.Count)} studies, {chains.Sum(c => c.Studies.Sum(s => s.Trials.Count))} trials; " +
                                    $"{spec.Jobs} jobs × {spec.Threads} threads, trials in {(spec.TrialProcessMode == "worker" ? "persistent workers" : "a process each")}; pruning {(spec.Prune ? "on" : "off")}, order {spec.Order}; out {Path.GetFullPath(o.OutDirectory)}");
            var trials = TrialHosting.ForCurrentNqm(spec.TrialProcessMode);
            using var closeWorkers = trials as IDisposable; // closing their stdin ends the workers
            var runner = new SweepRunner(trials);
            var options = new SweepOptions(spec, o.OutDirectory, shard, o.RetryCrashed);
            var summary = await SweepProgressView.RunAsync(o.Progress, p => runner.RunAsync(options, p, cancel));
            closeWorkers?.Dispose();

            Console.WriteLine($"{Outcome(summary)}: {summary.Results.Count}/{summary.StudiesTotal} studies; " +
                              $"{summary.TrialsRunNow} trials run now, {summary.TrialsReused} reused, {summary.TrialsAdopted} adopted, " +
                              $"{summary.TrialsCrashedNow} crashed, {summary.TrialsDiscarded} speculative reruns; {summary.StepsTrained} steps trained; {summary.Wall.TotalSeconds:F0} s.");
            foreach (var r in summary.Results)
                Console.WriteLine($"  {r.Study.Id,-22} steps_to_target {(r.StepsToTarget?.ToString() ?? "-"),7}  " +
                                  $"lr {(r.Best?.Trial.Point.LearningRate.ToString("G3") ?? "-"),8}  reached {r.Count(StudyTrialStatus.Reached)}/{r.Trials.Count}, " +
                                  $"pruned {r.Count(StudyTrialStatus.Pruned)}, diverged {r.Count(StudyTrialStatus.Diverged)}, crashed {r.Count(StudyTrialStatus.Crashed)}");
            Console.WriteLine($"tables: {Path.Combine(Path.GetFullPath(o.OutDirectory), "steps.csv")}, trials.csv");
            if (!summary.Complete) return ExitCodes.Interrupted;
            return Verdict(summary, o.OutDirectory);
        }
        catch (RunLockedException e) { Console.Error.WriteLine($"nqm sweep: {e.Message}"); return ExitCodes.BadInput; }
        catch (SlurmScriptException e) { Console.Error.WriteLine($"nqm sweep: {e.Message}"); return ExitCodes.BadInput; }
        catch (SpecException e) { Console.Error.WriteLine($"nqm sweep: {e.Message}"); return ExitCodes.BadInput; }
        catch (SweepStoreException e) { Console.Error.WriteLine($"nqm sweep: {e.Message}"); return ExitCodes.BadInput; }
        catch (TrialLaunchException e) { Console.Error.WriteLine(e.Message); return ExitCodes.Failure; }
    }

    /// <summary>
    /// The closing line and exit code of a complete sweep: crashed trials are named (they are not
    /// results: `--retry-crashed` runs them again), and a sweep in which no study reached its target
    /// while trials crashed is a failure, not "complete".
    /// </summary>
    public static string Outcome(SweepSummary summary)
    {
        if (!summary.Complete) return "interrupted";
        int crashed = summary.Results.Sum(r => r.Count(StudyTrialStatus.Crashed));
        if (crashed == 0) return "complete";
        return summary.Results.Any(r => r.StepsToTarget is not null) ? $"complete with {crashed} crashed trial(s)" : "failed";
    }

    public static int Verdict(SweepSummary summary, string outDirectory)
    {
        int crashed = summary.Results.Sum(r => r.Count(StudyTrialStatus.Crashed));
        int reached = summary.Results.Count(r => r.StepsToTarget is not null);
        if (crashed > 0)
            Console.Error.WriteLine($"warning: {crashed} trial(s) crashed (their trial.log under {Path.Combine(Path.GetFullPath(outDirectory), "trials")} says why); " +
                                    "rerun with --retry-crashed to run them again.");
        if (crashed > 0 && reached == 0)
        {
            Console.Error.WriteLine($"nqm sweep: failed: no study reached its target and {crashed} trial(s) crashed.");
            return ExitCodes.Failure;
        }
        return ExitCodes.Ok;
    }

    static int Emit(ExperimentSpec spec, SweepCommandOptions o)
    {
        if (o.OutDirectory is null) throw new SpecException("--out: required with --emit-slurm (where the shards and the merged sweep go).");
        var plan = SweepPlan.Create(spec);
        int shards = o.Shards ?? plan.Chains.Count;
        if (shards < 1) throw new SpecException($"--shards: must be >= 1 (got {shards}).");
        string dll = Path.Combine(AppContext.BaseDirectory, "nqm.dll");
        var script = SlurmScript.Render(spec, new SlurmOptions(dll, Path.GetFullPath(o.SpecPath), Path.GetFullPath(o.OutDirectory),
            shards, o.Gpu, o.Partition, o.TimeLimit), plan.Chains.Count);
        string path = Path.GetFullPath(o.EmitSlurm!);
        // Slurm does not create the folder of --output: a task whose log cannot be opened fails.
        Directory.CreateDirectory(Path.Combine(Path.GetFullPath(o.OutDirectory), "slurm"));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, script);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute);
        Console.WriteLine($"wrote {path}: {shards} array tasks; submit with `sbatch {path}`, then merge (see the script's header).");
        if (shards > plan.Chains.Count)
            Console.Error.WriteLine($"note: {shards} shards but only {plan.Chains.Count} chains; {shards - plan.Chains.Count} tasks will have nothing to do.");
        return ExitCodes.Ok;
    }
}
