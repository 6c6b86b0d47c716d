using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace NqmValidate.Training.Sweeps;

/// <summary>What to run: one trial of one study with a step cap.</summary>
public sealed record TrialRequest(ExperimentSpec Spec, StudyPlan Study, TrialPlan Trial, long MaxSteps);

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

/// <summary>The `nqm train` arguments of a trial: the one place that maps spec fields to trial flags.</summary>
public static class TrialCommandLine
{
    static string F(double x) => x.ToString("R", CultureInfo.InvariantCulture);

    public static List<string> Arguments(TrialRequest r, string directory)
    {
        var spec = r.Spec;
        var w = spec.Workload!;
        var m = w.Model!;
        var p = r.Trial.Point;
        var a = new List<string> { "train", "--model", m.Name };
        if (m.HiddenWidths is not null) a.AddRange(["--hidden-widths", string.Join(",", m.HiddenWidths)]);
        if (m.WidthMultiplier is { } wm) a.AddRange(["--width-multiplier", F(wm)]);
        if (m.BlocksPerStage is { } bps) a.AddRange(["--blocks-per-stage", bps.ToString(CultureInfo.InvariantCulture)]);
        a.AddRange(["--optimizer", r.Study.Optimizer, "--batch-size", r.Study.BatchSize.ToString(CultureInfo.InvariantCulture),
            "--learning-rate", F(p.LearningRate), "--lr-schedule", "constant"]);
        if (p.Momentum is { } mom) a.AddRange(["--momentum", F(mom)]);
        if (p.Beta1 is { } b1) a.AddRange(["--beta1", F(b1)]);
        if (p.Beta2 is { } b2) a.AddRange(["--beta2", F(b2)]);
        if (p.Epsilon is { } eps) a.AddRange(["--epsilon", F(eps)]);
        a.AddRange([w.Target!.Metric == "train_loss" ? "--target-loss" : "--target-error", F(w.Target.Threshold)]);
        a.AddRange(["--max-steps", r.MaxSteps.ToString(CultureInfo.InvariantCulture),
            "--seed", r.Trial.Seed.ToString(CultureInfo.InvariantCulture),
            "--threads", spec.Threads.ToString(CultureInfo.InvariantCulture),
            "--device", spec.Device]);
        if (w.Data.Dir is not null) a.AddRange(["--data-dir", w.Data.Dir]);
        if (spec.Evaluation.EvalExamples is { } e) a.AddRange(["--eval-examples", e.ToString(CultureInfo.InvariantCulture)]);
        if (spec.Evaluation.DivergenceFactor is { } d) a.AddRange(["--divergence-factor", F(d)]);
        a.AddRange(["--out", directory, "--quiet"]);
        return a;
    }
}

/// <summary>
/// Runs each trial as a child process of the same `nqm` (`dotnet nqm.dll train ...`), so a native
/// crash or an out-of-memory kill loses one trial, never the sweep. Its stdout and stderr go to
/// DIR/trial.log.
/// </summary>
public sealed class ProcessTrialRunner : ITrialRunner
{
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
        string dll = Path.Combine(AppContext.BaseDirectory, "nqm.dll");
        if (!File.Exists(dll))
            throw new TrialLaunchException($"cannot start trials: {dll} not found (build src/NqmValidate.Cli first: dotnet build -c Release).");
        string dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        return new ProcessTrialRunner(dotnet, [dll]);
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
        foreach (var a in TrialCommandLine.Arguments(request, directory)) info.ArgumentList.Add(a);
        // One trial = `threads` cores: keep OpenMP/MKL pools of the child at that size too.
        info.Environment["OMP_NUM_THREADS"] = request.Spec.Threads.ToString(CultureInfo.InvariantCulture);
        info.Environment["MKL_NUM_THREADS"] = request.Spec.Threads.ToString(CultureInfo.InvariantCulture);
        info.Environment["DOTNET_gcServer"] = "0";

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
