using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using NqmValidate.Common;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// Persistent trial workers (`nqm worker`, <see cref="WorkerTrialRunner"/>): the same results as a process per trial bit
/// for bit, a crash that loses one trial only, and no worker outliving its sweep.
/// </summary>
[Collection("tiny real sweep")]
public class WorkerTests(TinyRealSweep sweep)
{
    /// <summary>A curve without its timing column (train_seconds is wall time, the only field that may differ).</summary>
    static string[] CurveWithoutTiming(string trialDir)
    {
        var lines = File.ReadAllLines(Path.Combine(trialDir, "curve.csv"));
        int timing = Array.IndexOf(lines[0].Split(','), "train_seconds");
        Assert.True(timing >= 0, "curve.csv has a train_seconds column");
        return lines.Select(l => string.Join(",", l.Split(',').Where((_, i) => i != timing))).ToArray();
    }

    /// <summary>trial.json without what says when, how long and how it was launched: outcome, config and machine stay.</summary>
    static string RecordWithoutTiming(string trialDir)
    {
        var record = TrialJson.Read<TrialRecord>(Path.Combine(trialDir, "trial.json"));
        return JsonSerializer.Serialize(record with
        {
            WallSeconds = 0, LoadSeconds = 0, TrainSeconds = 0, EvalSeconds = 0, StartedUtc = default, CommandLine = null,
        });
    }

    static IEnumerable<string> TrialDirs(string sweepDir) =>
        Directory.GetDirectories(Path.Combine(sweepDir, "trials"))
            .SelectMany(s => Directory.GetDirectories(s, "t*"))
            .Select(d => Path.GetRelativePath(sweepDir, d))
            .Order(StringComparer.Ordinal);

    [Fact]
    public async Task WorkersGiveTheSameTablesCurvesAndRecordsAsAProcessPerTrialBitForBit()
    {
        // The fixture's reference ran every trial in its own `nqm train` process (2 jobs, 1 thread).
        string dir = SweepTestKit.TempDir("workers");
        using var workers = WorkerTrialRunner.ForCurrentNqm();
        var summary = await new SweepRunner(workers).RunAsync(new SweepOptions(sweep.Spec, dir, Shard.All));
        Assert.True(summary.Complete);
        Assert.Equal(0, summary.TrialsCrashedNow);
        // One worker per job slot ran every trial: the data set was loaded twice, not once per trial.
        Assert.InRange(workers.WorkersStarted, 1, sweep.Spec.Jobs);
        Assert.True(summary.TrialsRunNow > workers.WorkersStarted, $"{summary.TrialsRunNow} trials in {workers.WorkersStarted} workers");

        Assert.Equal(File.ReadAllBytes(Path.Combine(sweep.Reference, "steps.csv")), File.ReadAllBytes(Path.Combine(dir, "steps.csv")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(sweep.Reference, "trials.csv")), File.ReadAllBytes(Path.Combine(dir, "trials.csv")));
        var trials = TrialDirs(dir).ToList();
        Assert.Equal(TrialDirs(sweep.Reference), trials);
        foreach (var trial in trials)
        {
            Assert.Equal(CurveWithoutTiming(Path.Combine(sweep.Reference, trial)), CurveWithoutTiming(Path.Combine(dir, trial)));
            // Same outcome, resolved config and machine record (threads, OpenMP/MKL environment) in both modes.
            Assert.Equal(RecordWithoutTiming(Path.Combine(sweep.Reference, trial)), RecordWithoutTiming(Path.Combine(dir, trial)));
            // The trial's log holds its own output: its one summary line, naming its own attempt, and no protocol line.
            string log = File.ReadAllText(Path.Combine(dir, trial, "trial.log"));
            var summaries = log.Split('\n').Where(l => l.Contains(" -> ")).ToList();
            string name = Path.GetFileName(trial);
            Assert.True(summaries.Count == 1 && summaries[0].Contains($"/.{name}.attempt-"), $"{trial}/trial.log:\n{log}");
            Assert.DoesNotContain("nqm-worker:", log);
        }
    }

    /// <summary>
    /// Kills the worker (SIGKILL, as a native crash or the out-of-memory killer would) the moment it is handed the chosen
    /// trial: the trial then never answers, whichever instant the signal lands (deterministic, unlike racing a short trial).
    /// </summary>
    sealed class KillingRunner(ITrialRunner inner, Func<TrialRequest, bool> victim) : ITrialRunner
    {
        public readonly List<int> Pids = new();
        public string? Killed;

        public Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel) =>
            inner.RunAsync(request, directory, pid =>
            {
                started(pid);
                lock (Pids)
                {
                    Pids.Add(pid);
                    if (Killed is not null || !victim(request)) return;
                    Killed = $"{request.Study.Id}/{request.Trial.Id}";
                }
                using var p = Process.GetProcessById(pid);
                p.Kill(); // SIGKILL to the worker only
            }, cancel);
    }

    [Fact]
    public async Task ATrialThatKillsItsWorkerIsRecordedCrashedAndAFreshWorkerRunsTheRest()
    {
        string dir = SweepTestKit.TempDir("worker-crash");
        using var workers = WorkerTrialRunner.ForCurrentNqm();
        // The first trial of the sgd chain: launched first with its exact cap, so never a speculative launch run again.
        var killer = new KillingRunner(workers, r => r.Study.Id == "sgd-b32-r0");
        var summary = await new SweepRunner(killer).RunAsync(new SweepOptions(sweep.Spec, dir, Shard.All));

        Assert.True(summary.Complete);
        Assert.Equal(1, summary.TrialsCrashedNow);
        Assert.NotNull(killer.Killed);
        var crashed = TrialJson.Read<TrialRecord>(Path.Combine(dir, "trials", killer.Killed, "trial.json"));
        Assert.Equal(TrialStatus.Crashed, crashed.Status);
        Assert.Contains("exited with code 137", crashed.Error); // 128 + SIGKILL, as for a killed trial process
        // Two job slots plus the one replacement: nothing else was restarted.
        Assert.Equal(sweep.Spec.Jobs + 1, workers.WorkersStarted);
        Assert.Equal(workers.WorkersStarted, killer.Pids.Distinct().Count());
        // The other chain, whose trials ran beside the crash, is the process-per-trial reference's, table and curves.
        string[] Rows(string d) => File.ReadAllLines(Path.Combine(d, "steps.csv")).Where(l => !l.StartsWith("sgd,", StringComparison.Ordinal)).ToArray();
        Assert.Equal(3, Rows(dir).Length); // header + momentum at two batch sizes
        Assert.Equal(Rows(sweep.Reference), Rows(dir));
        foreach (var trial in TrialDirs(dir).Where(t => t.Contains("momentum-")))
            Assert.Equal(CurveWithoutTiming(Path.Combine(sweep.Reference, trial)), CurveWithoutTiming(Path.Combine(dir, trial)));
        Assert.Equal(1, TrialDirs(dir).Count(t => TrialJson.Read<TrialRecord>(Path.Combine(dir, t, "trial.json")).Status == TrialStatus.Crashed));
    }

    /// <summary>Notes, before the sweep cleans the attempt up, how each trial ended and which process ran it.</summary>
    sealed class WatchingRunner(ITrialRunner inner) : ITrialRunner
    {
        public readonly List<int> Pids = new();
        public readonly List<(TrialStatus? Status, TrialExit Exit)> Ends = new();

        public async Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel)
        {
            var exit = await inner.RunAsync(request, directory, pid => { started(pid); lock (Pids) Pids.Add(pid); }, cancel);
            string json = Path.Combine(directory, "trial.json");
            lock (Ends) Ends.Add((File.Exists(json) ? TrialJson.Read<TrialRecord>(json).Status : null, exit));
            return exit;
        }
    }

    [Fact]
    public async Task CancellingTheSweepInterruptsTheWorkersTrialsAndTheWorkersExit()
    {
        string dir = SweepTestKit.TempDir("worker-cancel");
        // Trials that would run for minutes: the cancellation, not the trial, ends them.
        var spec = sweep.Spec with
        {
            Budget = new BudgetSpec { Steps = 5_000_000 },
            Workload = sweep.Spec.Workload! with { Target = new TargetSpec { Metric = "train_loss", Threshold = 1e-6 } },
        };
        using var workers = WorkerTrialRunner.ForCurrentNqm();
        var watch = new WatchingRunner(workers);
        using var cancel = new CancellationTokenSource();
        var run = new SweepRunner(watch).RunAsync(new SweepOptions(spec, dir, Shard.All), cancel: cancel.Token);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(2)
               && (!Directory.Exists(Path.Combine(dir, "trials"))
                   || Directory.GetFiles(Path.Combine(dir, "trials"), "trial.json", SearchOption.AllDirectories).Length < spec.Jobs))
            await Task.Delay(50);
        await cancel.CancelAsync();
        var summary = await run.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.False(summary.Complete);
        Assert.Equal(0, summary.TrialsRunNow);
        Assert.Equal(spec.Jobs, watch.Ends.Count);
        // Each trial stopped cleanly (SIGTERM: it wrote trial.json as interrupted), as a trial process does.
        Assert.All(watch.Ends, e => Assert.True(e.Status == TrialStatus.Interrupted && e.Exit.Cancelled && e.Exit.ExitCode == 130, $"{e}"));
        Assert.Empty(Directory.GetDirectories(Path.Combine(dir, "trials"), ".*attempt-*", SearchOption.AllDirectories));
        // The interrupted workers exited by themselves, before the runner was disposed.
        foreach (int pid in watch.Pids.Distinct())
        {
            var gone = Stopwatch.StartNew();
            while (ResultsStore.CommandLine(pid).Count > 1 && gone.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(50);
            Assert.True(ResultsStore.CommandLine(pid).Count <= 1, $"worker {pid} still runs after its trial was interrupted");
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);

    [Fact]
    public async Task SigkillToTheWholeProcessGroupMidSweepThenResumeGivesTheUninterruptedTablesWithWorkers()
    {
        static int FinishedIn(string d) => Directory.Exists(Path.Combine(d, "trials"))
            ? Directory.GetDirectories(Path.Combine(d, "trials")).Sum(s => Directory.GetDirectories(s, "t*").Length) : 0;
        int total = FinishedIn(sweep.Reference), finishedAtKill = total;
        string dir = "";
        // Workers finish the tiny sweep's short trials fast: if one run completes between two polls, start another in a fresh
        // directory (at most three); a sweep that exits with an error fails the test with what it printed.
        for (int attempt = 0; attempt < 3 && finishedAtKill >= total; attempt++)
        {
            dir = SweepTestKit.TempDir("group-killed");
            // `setsid` makes the sweep a process group leader (it execs in place: same pid), its workers in its group.
            var info = new ProcessStartInfo("setsid") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "dotnet", Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "sweep", "--spec", sweep.SpecPath, "--out", dir,
                         "--progress", "none", "--trial-processes", "worker" })
                info.ArgumentList.Add(a);
            var stderr = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var p = Process.Start(info)!;
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) stderr.Enqueue(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            var clock = Stopwatch.StartNew();
            while (!p.HasExited && FinishedIn(dir) < 3 && clock.Elapsed < TimeSpan.FromMinutes(3)) await Task.Delay(50);
            int killed = -1;
            if (!p.HasExited)
            {
                // Killed with work left: counted at the kill (a fixed upper bound raced: workers finish a short trial between polls).
                finishedAtKill = FinishedIn(dir);
                killed = Kill(-p.Id, 9); // SIGKILL to the sweep and its workers at once
            }
            if (killed == 0) await p.WaitForExitAsync();
            else // it had exited before the kill came (then the group is gone: kill fails with ESRCH)
            {
                finishedAtKill = total;
                await p.WaitForExitAsync();
                Assert.True(p.ExitCode == 0, $"the sweep exited with code {p.ExitCode} before it could be killed: {string.Join("\n", stderr)}");
            }
        }
        Assert.InRange(finishedAtKill, 3, total - 1);

        var resume = sweep.StartSweep(dir, "--trial-processes", "worker");
        await resume.WaitForExitAsync();
        Assert.Equal(0, resume.ExitCode);
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "steps.csv")), File.ReadAllText(Path.Combine(dir, "steps.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "trials.csv")), File.ReadAllText(Path.Combine(dir, "trials.csv")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(dir, "trials"), ".*attempt-*", SearchOption.AllDirectories));
    }

    /// <summary>A trial that would run for minutes on the fixture's data: an unreachable target and a large budget.</summary>
    TrialConfig LongTrial(int threads = 1) => new()
    {
        Model = new ModelSpec("mlp", [32]),
        Optimizer = new OptimizerSpec { Name = "sgd", LearningRate = 0.01 },
        BatchSize = 32,
        Target = new Target(TargetMetric.TrainLoss, 1e-6),
        MaxSteps = 10_000_000,
        Seed = 1,
        Threads = threads,
        DataDir = sweep.DataDir,
        EvalExamples = 200,
    };

    /// <summary>An `nqm worker` started by the test (its stderr drained), for trials under <paramref name="trialsRoot"/>.</summary>
    Process StartWorker(string trialsRoot, int threads = 1)
    {
        var (executable, prefix) = ProcessTrialRunner.CurrentNqm();
        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in prefix.Concat(WorkerProtocol.Arguments(new WorkerKey(trialsRoot, Path.GetFullPath(sweep.DataDir), threads, "cpu"))))
            info.ArgumentList.Add(a);
        ProcessTrialRunner.SetTrialEnvironment(info, threads);
        var p = Process.Start(info)!;
        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        return p;
    }

    static string NewAttempt(string trialsRoot, string trial, int sweepPid, TrialConfig config)
    {
        string attempt = Path.Combine(trialsRoot, "sgd-b32-r0", $".{trial}.attempt-{sweepPid}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(attempt);
        TrialJson.Write(Path.Combine(attempt, ProcessTrialRunner.ConfigFileName), config);
        return attempt;
    }

    static async Task WaitUntilRunning(string attempt)
    {
        var clock = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(attempt, "trial.json")) && clock.Elapsed < TimeSpan.FromMinutes(2)) await Task.Delay(50);
        Assert.True(File.Exists(Path.Combine(attempt, "trial.json")), $"the worker did not start the trial in {attempt}");
    }

    static bool Exits(Process p, TimeSpan within) => p.WaitForExit(within);

    [Fact]
    public async Task AWorkerRunsTrialsAfterOneAnotherExactlyAsNqmTrainAtTwoThreadsAndExitsWhenItsStdinCloses()
    {
        string root = SweepTestKit.TempDir("worker-seq");
        string trials = Path.Combine(root, "trials");
        // Different models and optimizers one after another: nothing of one trial may leak into the next.
        var configs = new[]
        {
            LongTrial(2) with { MaxSteps = 120, Target = new Target(TargetMetric.TrainLoss, 0.9), Optimizer = new OptimizerSpec { Name = "momentum", LearningRate = 0.05 } },
            LongTrial(2) with { MaxSteps = 80, BatchSize = 128, Target = new Target(TargetMetric.ValidationError, 0.3), Optimizer = new OptimizerSpec { Name = "adam", LearningRate = 0.003 } },
            LongTrial(2) with { MaxSteps = 100, Target = new Target(TargetMetric.TrainLoss, 1.0), Model = new ModelSpec("mlp", [16, 16]) },
        };
        var attempts = configs.Select((c, i) => NewAttempt(trials, $"t{i:D3}", Environment.ProcessId, c)).ToList();
        // A trial at another thread count needs a worker of its own: refused as bad input (2), and the worker goes on.
        string foreign = NewAttempt(trials, "t009", Environment.ProcessId, LongTrial(1));
        using var worker = StartWorker(trials, threads: 2);
        foreach (var (attempt, expected) in attempts.Take(1).Append(foreign).Concat(attempts.Skip(1)).Select(a => (a, a == foreign ? 2 : 0)))
        {
            await worker.StandardInput.WriteLineAsync(WorkerProtocol.FormatRequest(attempt));
            await worker.StandardInput.FlushAsync();
            string? reply = await worker.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(3));
            Assert.Equal(expected, WorkerProtocol.ParseReply(reply ?? "(none)"));
        }
        Assert.False(File.Exists(Path.Combine(foreign, "trial.json")), "a refused trial must not have started");
        worker.StandardInput.Close();
        Assert.True(Exits(worker, TimeSpan.FromSeconds(30)), "the worker did not exit when its stdin closed");
        Assert.Equal(0, worker.ExitCode);

        // The same configs, each in its own `nqm train` process with a trial process's environment.
        var (executable, prefix) = ProcessTrialRunner.CurrentNqm();
        foreach (var attempt in attempts)
        {
            string alone = attempt + "-alone";
            var info = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in prefix.Concat(["train", "--config", Path.Combine(attempt, ProcessTrialRunner.ConfigFileName), "--out", alone, "--quiet"]))
                info.ArgumentList.Add(a);
            ProcessTrialRunner.SetTrialEnvironment(info, 2);
            using var train = Process.Start(info)!;
            var stdout = train.StandardOutput.ReadToEndAsync();
            string err = await train.StandardError.ReadToEndAsync();
            await train.WaitForExitAsync();
            await stdout;
            Assert.True(train.ExitCode == 0, err);
            Assert.Equal(CurveWithoutTiming(alone), CurveWithoutTiming(attempt));
            Assert.Equal(RecordWithoutTiming(alone), RecordWithoutTiming(attempt));
        }
    }

    [Fact]
    public async Task AWorkerWhoseStdinClosesMidTrialStopsItAsInterruptedAndExits()
    {
        string trials = Path.Combine(SweepTestKit.TempDir("worker-eof"), "trials");
        string attempt = NewAttempt(trials, "t000", Environment.ProcessId, LongTrial());
        using var worker = StartWorker(trials);
        await worker.StandardInput.WriteLineAsync(WorkerProtocol.FormatRequest(attempt));
        await worker.StandardInput.FlushAsync();
        await WaitUntilRunning(attempt);
        worker.StandardInput.Close(); // what the kernel does when the sweep dies
        Assert.True(Exits(worker, TimeSpan.FromSeconds(30)), "the worker kept running after its sweep went away");
        Assert.Equal(TrialStatus.Interrupted, TrialJson.Read<TrialRecord>(Path.Combine(attempt, "trial.json")).Status);
    }

    [Fact]
    public async Task RecoveryStopsAWorkerStillRunningAnAttemptOfADeadSweepAndSparesOtherWorkers()
    {
        string root = SweepTestKit.TempDir("worker-orphan");
        var store = new ResultsStore(root);
        store.Open(sweep.Spec);
        // An attempt of a sweep that is gone (pid 0x3FFFFFFF is beyond any pid_max), its trial still running in a worker.
        string orphan = NewAttempt(store.TrialsRoot, "t000", 0x3FFFFFFF, LongTrial());
        using var worker = StartWorker(store.TrialsRoot);
        ResultsStore.RecordPid(orphan, worker.Id); // the sweep records the pid before it sends the trial
        await worker.StandardInput.WriteLineAsync(WorkerProtocol.FormatRequest(orphan));
        await worker.StandardInput.FlushAsync();
        await WaitUntilRunning(orphan);

        // A worker of another sweep directory whose pid an attempt here happens to name (a recycled pid): not ours to stop.
        string otherTrials = Path.Combine(SweepTestKit.TempDir("worker-other"), "trials");
        using var other = StartWorker(otherTrials);
        string stale = NewAttempt(store.TrialsRoot, "t001", 0x3FFFFFFF, LongTrial());
        ResultsStore.RecordPid(stale, other.Id);

        Assert.Equal([worker.Id], ResultsStore.ProcessesRunning(orphan));
        Assert.Empty(ResultsStore.ProcessesRunning(stale));
        Assert.Equal(1, SweepStatus.Read(root).TrialsRunning); // `nqm status` sees the worker's trial as running

        Assert.Equal(0, store.RecoverAttempts());
        Assert.True(Exits(worker, TimeSpan.FromSeconds(15)), "recovery left the orphaned worker running");
        Assert.False(Directory.Exists(orphan));
        Assert.False(Directory.Exists(stale));
        Assert.False(other.HasExited, "recovery stopped a worker of another sweep directory");
        other.StandardInput.Close();
        Assert.True(Exits(other, TimeSpan.FromSeconds(30)), "an idle worker did not exit when its stdin closed");
    }
}

/// <summary>`trial_processes` in the spec and `--trial-processes` on the command line (no trials run).</summary>
public class TrialProcessesOptionTests
{
    [Fact]
    public void WorkersAreTheDefaultPerTrialIsTheWayBackAndNeitherChangesTheResultsKey()
    {
        var spec = SweepTestKit.SmallSpec();
        Assert.Equal("worker", spec.TrialProcessMode);
        var perTrial = SpecLoader.Parse(SweepTestKit.SmallSpecJson.Replace("\"jobs\": 3", "\"jobs\": 3, \"trial_processes\": \"per-trial\""), "spec");
        Assert.Equal("per-trial", perTrial.TrialProcessMode);
        Assert.IsType<ProcessTrialRunner>(TrialHosting.Create(perTrial.TrialProcessMode, "dotnet", []));
        using (var w = (WorkerTrialRunner)TrialHosting.Create(spec.TrialProcessMode, "dotnet", [])) Assert.Equal(0, w.WorkersStarted);
        // A sweep started with workers resumes with a process per trial and the other way round: same results.
        Assert.Equal(ResultsStore.ResultsKey(spec), ResultsStore.ResultsKey(perTrial));
        Assert.DoesNotContain("trial_processes", ResultsStore.ResultsKey(perTrial));
        Assert.True(Cli.NqmApp.BuildRoot().Subcommands.Single(c => c.Name == WorkerProtocol.Command).Hidden, "`nqm worker` is internal to sweeps");

        var e = Assert.Throws<SpecException>(() =>
            SpecLoader.Parse(SweepTestKit.SmallSpecJson.Replace("\"jobs\": 3", "\"jobs\": 3, \"trial_processes\": \"threads\""), "spec.json"));
        Assert.Contains("trial_processes: must be one of `worker`, `per-trial` (got \"threads\")", e.Message);
    }

    [Fact]
    public void TheCommandLineOverridesTheSpecAndTheSlurmScriptCarriesIt()
    {
        string dir = SweepTestKit.TempDir("cli-mode");
        string path = Path.Combine(dir, "spec.json");
        File.WriteAllText(path, SweepTestKit.SmallSpecJson);
        var parse = Cli.NqmApp.BuildRoot().Parse(["sweep", "--spec", path, "--out", "x", "--trial-processes", "per-trial"]);
        Assert.Empty(parse.Errors);
        var resolved = Cli.Commands.SweepCommand.Resolve(Cli.Commands.SweepCommand.Map(parse));
        Assert.Equal("per-trial", resolved.TrialProcessMode);
        string script = SlurmScript.Render(resolved, new SlurmOptions("/x/nqm.dll", path, dir, 2, false, null, null), 2);
        Assert.Contains("--trial-processes per-trial", script);

        var bad = Cli.NqmApp.BuildRoot().Parse(["sweep", "--spec", path, "--out", "x", "--trial-processes", "fork"]);
        var e = Assert.Throws<SpecException>(() => Cli.Commands.SweepCommand.Resolve(Cli.Commands.SweepCommand.Map(bad)));
        Assert.Contains("trial_processes: must be one of `worker`, `per-trial`", e.Message);
    }
}
