using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Sweeps;

/// <summary>What to run: one trial of one study with a step cap.</summary>
public sealed record TrialRequest(ExperimentSpec Spec, StudyPlan Study, TrialPlan Trial, long MaxSteps)
{
    /// <summary>
    /// The trial's typed configuration: the one place where spec fields become trial fields. Defaults the spec
    /// leaves open (evaluation subset, divergence factor, data directory) stay open and the trial resolves them.
    /// </summary>
    public TrialConfig Config
    {
        get
        {
            var w = Spec.Workload!;
            var defaults = new TrialConfig();
            var schedule = Spec.Optimizers!.First(o => o.Name == Study.Optimizer).Schedule;
            return defaults with
            {
                Model = SpecValidation.ToModelSpec(w.Model!),
                Optimizer = new OptimizerSpec
                {
                    Name = Study.Optimizer, LearningRate = Trial.Point.LearningRate, Hyperparameters = Trial.Point.Hyperparameters,
                    Schedule = schedule?.Kind ?? "constant", DecaySteps = schedule?.DecaySteps, FinalFraction = schedule?.FinalFraction,
                    PieceSteps = schedule?.PieceSteps, Factors = schedule?.Factors is { } factors ? [.. factors] : null,
                },
                BatchSize = Study.BatchSize,
                Target = new Target(w.Target!.Metric == "train_loss" ? TargetMetric.TrainLoss : TargetMetric.ValidationError, w.Target.Threshold),
                LooserTargets = w.Target.Looser is { Count: > 0 } looser ? [.. looser.OrderDescending()] : null,
                MaxSteps = MaxSteps,
                Seed = Trial.Seed,
                Threads = Spec.Threads,
                Device = Spec.Device,
                DataDir = w.Data.Dir,
                EvalExamples = Spec.Evaluation.EvalExamples ?? defaults.EvalExamples,
                DivergenceFactor = Spec.Evaluation.DivergenceFactor ?? defaults.DivergenceFactor,
            };
        }
    }
}

/// <summary>How a trial process ended. <see cref="Cancelled"/>: the sweep stopped it.</summary>
public sealed record TrialExit(int ExitCode, string StderrTail, bool Cancelled);

/// <summary>The trial's launcher failed in a way that will fail every trial (bad arguments, missing executable).</summary>
public sealed class TrialLaunchException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Runs one trial into a directory: afterwards the directory holds the trial's trial.json and
/// curve.csv (or nothing usable, if it crashed). Injectable so the sweep logic can be tested
/// with a synthetic trial.
/// </summary>
public interface ITrialRunner
{
    /// <param name="request">The trial.</param>
    /// <param name="directory">Where its files go.</param>
    /// <param name="started">Called with the process id once the trial process runs (0 for in-process runners).</param>
    /// <param name="cancel">Stops the trial (it is then not a result).</param>
    Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel);
}

/// <summary>A trial runner that can also train a wave of trials at once as one stacked model (<see cref="Stacks.TrialStack"/>).</summary>
public interface IWaveRunner
{
    /// <summary>
    /// Runs <paramref name="members"/> (one study's wave) together; one task per member, in order, each completing with
    /// that member's exit as it ends.
    /// </summary>
    IReadOnlyList<Task<TrialExit>> RunWave(IReadOnlyList<(TrialRequest Request, string Directory)> members, Action<int> started, CancellationToken cancel);
}

/// <summary>
/// Runs each trial as a child process of the same `nqm` (`dotnet nqm.dll train --config DIR/config.json
/// --out DIR`), so a native crash or an out-of-memory kill loses one trial, never the sweep. The trial's
/// typed configuration travels as config.json (<see cref="TrialRequest.Config"/>); stdout and stderr go to
/// DIR/trial.log.
/// </summary>
public sealed class ProcessTrialRunner : ITrialRunner
{
    /// <summary>
    /// The environment of a trial process (the sweep's and `nqm verify`'s re-runs alike): one trial = `threads` cores,
    /// so the OpenMP/MKL pools of the child are kept at that size too; workstation GC; and glibc's allocator told to keep
    /// tensor-sized blocks (<see cref="MallocTunables"/>) unless the user's environment already tunes it.
    /// </summary>
    public static void SetTrialEnvironment(ProcessStartInfo info, int threads)
    {
        info.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        info.Environment["MKL_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        info.Environment["DOTNET_gcServer"] = "0";
        if (string.IsNullOrEmpty(info.Environment.TryGetValue("GLIBC_TUNABLES", out var mine) ? mine : null))
            info.Environment["GLIBC_TUNABLES"] = MallocTunables;
    }

    /// <summary>
    /// glibc malloc settings for a trial process. By default glibc serves blocks above 128 KiB (its threshold grows only
    /// up to 32 MiB, and shrinks back) with mmap and returns them on free, so every step's gradient, optimizer temporary
    /// and activation of a few MiB is a fresh mapping whose pages fault in again: on this project's MLP that is most of an
    /// Adam step. Raising the mmap and trim thresholds keeps those blocks in the heap for reuse. Memory only: a trial's
    /// numbers do not change (verify's bit-identical re-runs hold); a worker keeps up to its peak heap.
    /// Measured by `scripts/bench stack-profile` (docs/sweeps.md).
    /// </summary>
    public const string MallocTunables = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=536870912";

    /// <summary>The trial's configuration in its attempt directory.</summary>
    public const string ConfigFileName = "config.json";

    readonly string _executable;
    readonly IReadOnlyList<string> _prefix;

    /// <param name="executable">What to start (e.g. `dotnet`, or the `nqm` apphost).</param>
    /// <param name="prefixArguments">Arguments before `train` (e.g. the path of nqm.dll).</param>
    public ProcessTrialRunner(string executable, IReadOnlyList<string> prefixArguments)
    {
        _executable = executable;
        _prefix = prefixArguments;
    }

    /// <summary>The runner for the `nqm` the current process was started from (the CLI) or,
    /// from another host (tests), for the nqm.dll beside the running assemblies.</summary>
    public static ProcessTrialRunner ForCurrentNqm()
    {
        var (executable, prefix) = CurrentNqm();
        return new ProcessTrialRunner(executable, prefix);
    }

    /// <summary>How to start the `nqm` beside the running assemblies: `dotnet` and the path of its nqm.dll.</summary>
    public static (string Executable, IReadOnlyList<string> Prefix) CurrentNqm()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "nqm.dll");
        if (!File.Exists(dll))
            throw new TrialLaunchException($"cannot start trials: {dll} not found (build src/NqmValidate.Cli first: dotnet build -c Release).");
        string dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        return (dotnet, [dll]);
    }

    public async Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel)
    {
        Directory.CreateDirectory(directory);
        var info = new ProcessStartInfo(_executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in _prefix) info.ArgumentList.Add(a);
        string configPath = Path.Combine(directory, ConfigFileName);
        TrialJson.Write(configPath, request.Config);
        foreach (var a in new[] { "train", "--config", configPath, "--out", directory, "--quiet" }) info.ArgumentList.Add(a);
        SetTrialEnvironment(info, request.Spec.Threads);

        using var log = new StreamWriter(Path.Combine(directory, "trial.log"), append: false, Encoding.UTF8) { AutoFlush = true };
        await log.WriteLineAsync("$ " + _executable + " " + string.Join(" ", info.ArgumentList));
        var tail = new Queue<string>();
        var gate = new object();
        void OnLine(string? line, bool error)
        {
            if (line is null) return;
            lock (gate)
            {
                log.WriteLine(line);
                if (!error) return;
                tail.Enqueue(line);
                if (tail.Count > 20) tail.Dequeue();
            }
        }

        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => OnLine(e.Data, false);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data, true);
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new TrialLaunchException($"cannot start `{_executable}`: {e.Message}", e);
        }
        started(process.Id);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        bool cancelled = false;
        try
        {
            await process.WaitForExitAsync(cancel);
        }
        catch (OperationCanceledException)
        {
            cancelled = true;
            // Ask the trial to stop cleanly (it records `interrupted`), then insist.
            if (!process.HasExited) _ = Kill(process.Id, SigTerm);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try { await process.WaitForExitAsync(grace.Token); }
            catch (OperationCanceledException) { process.Kill(entireProcessTree: true); await process.WaitForExitAsync(); }
        }
        process.WaitForExit(); // flushes the redirected streams
        lock (gate) return new TrialExit(process.ExitCode, string.Join("\n", tail), cancelled);
    }

    // SIGTERM rather than SIGINT: a sweep started in the background inherits an ignored SIGINT, and so would its trials.
    const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);
}
