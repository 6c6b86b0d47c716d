using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// A tiny real sweep, shared by the end-to-end tests: real `nqm train` processes on the first
/// 5,600 Fashion-MNIST training images (600 to fit + the 5,000 the trial holds out for
/// validation) and 200 test images, a 784-32-10 MLP, SGD and momentum at two batch sizes,
/// two learning rates each. The reference sweep runs once (uninterrupted, pruned).
/// </summary>
public sealed class TinyRealSweep : IDisposable
{
    public const string RealData = "/usr/share/datasets/fashion-mnist";
    public string DataDir { get; }
    public string SpecPath { get; }
    public string Reference { get; }
    public ExperimentSpec Spec { get; }
    public long ReferenceStepsTrained { get; }
    readonly string _root;

    public TinyRealSweep()
    {
        _root = SweepTestKit.TempDir("real");
        DataDir = Path.Combine(_root, "data");
        Directory.CreateDirectory(DataDir);
        WriteSubset("train-images-idx3-ubyte", 5_600, 28 * 28);
        WriteSubset("train-labels-idx1-ubyte", 5_600, 1);
        WriteSubset("t10k-images-idx3-ubyte", 200, 28 * 28);
        WriteSubset("t10k-labels-idx1-ubyte", 200, 1);
        SpecPath = Path.Combine(_root, "tiny-real.json");
        File.WriteAllText(SpecPath, $$"""
        {
          "name": "tiny-real",
          "seed": 3,
          "workload": {
            "data": { "dir": "{{DataDir}}" },
            "model": { "name": "mlp", "hidden_widths": [32] },
            "target": { "metric": "train_loss", "threshold": 1.2 }
          },
          "batch_sizes": [32, 128],
          "optimizers": [
            { "name": "sgd", "learning_rate": { "min": 0.1, "max": 1.0, "points": 2 } },
            { "name": "momentum", "learning_rate": { "min": 0.01, "max": 0.1, "points": 2 },
              "one_minus_momentum": { "min": 0.1, "max": 0.1 } }
          ],
          "budget": { "steps": 150 },
          "evaluation": { "eval_examples": 200 },
          "threads": 1,
          "jobs": 2
        }
        """);
        Spec = SpecLoader.Load(SpecPath);
        Reference = Path.Combine(_root, "reference");
        var summary = new SweepRunner(ProcessTrialRunner.ForCurrentNqm())
            .RunAsync(new SweepOptions(Spec, Reference, Shard.All)).GetAwaiter().GetResult();
        if (!summary.Complete) throw new InvalidOperationException("the reference sweep did not complete");
        ReferenceStepsTrained = summary.StepsTrained;
    }

    void WriteSubset(string name, int count, int itemBytes)
    {
        string source = Path.Combine(RealData, name + ".gz");
        if (!File.Exists(source))
            throw new FileNotFoundException($"{source} missing: the end-to-end sweep tests need the real Fashion-MNIST " +
                                            "(sudo apt-get install dataset-fashion-mnist).");
        using var gz = new GZipStream(File.OpenRead(source), CompressionMode.Decompress);
        int headerBytes = itemBytes == 1 ? 8 : 16;
        var bytes = new byte[headerBytes + count * itemBytes];
        gz.ReadExactly(bytes);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        File.WriteAllBytes(Path.Combine(DataDir, name), bytes);
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }

    /// <summary>Starts `nqm sweep` as its own process (so it can be killed).</summary>
    public Process StartSweep(string outDir, params string[] extra)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "sweep", "--spec", SpecPath, "--out", outDir, "--progress", "none" }.Concat(extra))
            info.ArgumentList.Add(a);
        var p = Process.Start(info)!;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }
}

[CollectionDefinition("tiny real sweep")]
public sealed class TinyRealSweepCollection : ICollectionFixture<TinyRealSweep>;

/// <summary>The end-to-end properties with real trial processes.</summary>
[Collection("tiny real sweep")]
public class SweepProcessTests(TinyRealSweep sweep)
{
    static string[] Key(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "steps.csv")).Select(l => string.Join(",", l.Split(',').Take(5))).ToArray();

    [Fact]
    public void TheReferenceSweepReachedTheTargetInEveryStudyWithRealTrials()
    {
        var rows = File.ReadAllLines(Path.Combine(sweep.Reference, "steps.csv"));
        Assert.Equal(5, rows.Length); // header + 2 optimizers × 2 batch sizes
        Assert.All(rows.Skip(1), r => Assert.NotEqual("", r.Split(',')[2]));
        var trial = File.ReadAllText(Path.Combine(sweep.Reference, "trials", "sgd-b32-r0", "t001", "trial.json"));
        Assert.Contains("\"steps_to_target\"", trial);
    }

    [Fact]
    public async Task PruningNeverChangesTheMinimumAgainstExhaustiveSearch()
    {
        string dir = SweepTestKit.TempDir("exhaustive");
        var summary = await new SweepRunner(ProcessTrialRunner.ForCurrentNqm())
            .RunAsync(new SweepOptions(sweep.Spec with { Prune = false }, dir, Shard.All));
        Assert.True(summary.Complete);
        Assert.Equal(Key(dir), Key(sweep.Reference)); // optimizer, batch_size, steps_to_target, learning_rate, momentum
        Assert.True(summary.StepsTrained > sweep.ReferenceStepsTrained,
            $"exhaustive trained {summary.StepsTrained} steps, pruned {sweep.ReferenceStepsTrained}");
    }

    [Fact]
    public async Task SigkillAtAnyMomentThenResumeGivesTheUninterruptedStepsCsv()
    {
        int total = FinishedTrials(sweep.Reference);
        // Kills the sweep running in `dir` once `finishedBeforeKill` trials are finished; returns how many were at the kill
        // (all of them when the sweep finished before the kill came, which it must then have done successfully).
        async Task<int> StartAndKill(string dir, int finishedBeforeKill)
        {
            using var p = sweep.StartSweep(dir);
            var clock = Stopwatch.StartNew();
            while (!p.HasExited && FinishedTrials(dir) < finishedBeforeKill && clock.Elapsed < TimeSpan.FromMinutes(3))
                await Task.Delay(100);
            int finishedAtKill = FinishedTrials(dir); // at the kill: orphaned trial processes in flight go on afterwards
            if (p.HasExited)
            {
                await p.WaitForExitAsync();
                Assert.Equal(0, p.ExitCode);
                return total;
            }
            p.Kill(entireProcessTree: false); // SIGKILL to the sweep only: its trial processes are orphaned
            await p.WaitForExitAsync();
            return finishedAtKill;
        }
        // Kill once after the first finished trial, with work left: fewer trials finished than the uninterrupted run has.
        // The tiny trials take well under a second and this test's polling can be seconds late on a loaded machine (the
        // suite runs beside it), so a kill that came after the last trial is repeated in a fresh directory (at most three).
        string dir = "";
        int first = total;
        for (int attempt = 0; attempt < 3 && first >= total; attempt++)
            first = await StartAndKill(dir = SweepTestKit.TempDir("killed"), 1);
        Assert.InRange(first, 1, total - 1);
        // Then once while the next trials run. By then every trial may be finished (seen under load: 8 of 8, the orphans
        // and the new sweep's trials done before a late poll): the sweep is then killed while it collects and tabulates,
        // or has even finished; either way the resume below must end with the uninterrupted tables.
        Assert.InRange(await StartAndKill(dir, 3), 3, total);
        var resume = sweep.StartSweep(dir);
        await resume.WaitForExitAsync();
        Assert.Equal(0, resume.ExitCode);
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "steps.csv")), File.ReadAllText(Path.Combine(dir, "steps.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "trials.csv")), File.ReadAllText(Path.Combine(dir, "trials.csv")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(dir, "trials"), ".*attempt-*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task ASecondSweepOnTheSameDirectoryIsRefusedAndTheFirstFinishesAsIfAlone()
    {
        string dir = SweepTestKit.TempDir("concurrent");
        var first = sweep.StartSweep(dir);
        var clock = Stopwatch.StartNew();
        // Wait until the first sweep has trials running (attempt directories with live trial processes).
        while (!first.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3)
               && !(Directory.Exists(Path.Combine(dir, "trials"))
                    && Directory.GetDirectories(Path.Combine(dir, "trials"), ".*attempt-*", SearchOption.AllDirectories)
                        .Any(a => ResultsStore.ProcessesRunning(a).Count > 0)))
            await Task.Delay(50);
        Assert.False(first.HasExited, "the first sweep finished before the second could start");
        // Hold the first sweep still (SIGSTOP: alive, its lock held) while the second starts, which takes seconds on a loaded
        // machine; otherwise the first could finish meanwhile and the second would find the directory free.
        Assert.Equal(0, Signal(first.Id, SigStop));

        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "sweep", "--spec", sweep.SpecPath, "--out", dir, "--progress", "none" })
            info.ArgumentList.Add(a);
        using var second = Process.Start(info)!;
        var secondOut = second.StandardOutput.ReadToEndAsync();
        string secondErr = await second.StandardError.ReadToEndAsync();
        await second.WaitForExitAsync();
        await secondOut;
        Assert.Equal(0, Signal(first.Id, SigCont));
        Assert.Equal(2, second.ExitCode);
        Assert.Contains($"is in use by another run (pid {first.Id} on host {Environment.MachineName}", secondErr);
        // The refused sweep must not have stopped the first one: it goes on to exit 0 with the uninterrupted tables.

        await first.WaitForExitAsync();
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "steps.csv")), File.ReadAllText(Path.Combine(dir, "steps.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "trials.csv")), File.ReadAllText(Path.Combine(dir, "trials.csv")));
        Assert.DoesNotContain("\"crashed\"", string.Concat(Directory.GetFiles(Path.Combine(dir, "trials"), "trial.json", SearchOption.AllDirectories).Select(File.ReadAllText)));
    }

    const int SigStop = 19, SigCont = 18; // Linux x86-64/arm64 numbering

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Signal(int pid, int signal);

    static int FinishedTrials(string dir) =>
        Directory.Exists(Path.Combine(dir, "trials"))
            ? Directory.GetDirectories(Path.Combine(dir, "trials")).Sum(s => Directory.GetDirectories(s, "t*").Length)
            : 0;

    [Fact]
    public async Task ShardsFromSlurmVariablesMergedEqualTheSingleRun()
    {
        string root = SweepTestKit.TempDir("shards");
        // Both array tasks at once, as Slurm would run them.
        var shards = new[] { Path.Combine(root, "shard-0"), Path.Combine(root, "shard-1") };
        var runs = shards.Select(async (dir, i) =>
        {
            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "sweep", "--spec", sweep.SpecPath, "--out", dir, "--progress", "none", "--jobs", "1" })
                info.ArgumentList.Add(a);
            info.Environment["SLURM_ARRAY_TASK_ID"] = i.ToString();
            info.Environment["SLURM_ARRAY_TASK_COUNT"] = "2";
            using var p = Process.Start(info)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            string err = await p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            await stdout;
            return (i, p.ExitCode, err);
        }).ToList();
        foreach (var (i, code, err) in await Task.WhenAll(runs))
        {
            Assert.True(code == 0, err);
            Assert.Contains($"shard {i}/2", err);
        }
        string merged = Path.Combine(root, "merged");
        var m = Process.Start(new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "merge", "--out", merged, .. shards])
            { RedirectStandardOutput = true })!;
        await m.WaitForExitAsync();
        Assert.Equal(0, m.ExitCode);
        Assert.Equal(File.ReadAllText(Path.Combine(sweep.Reference, "steps.csv")), File.ReadAllText(Path.Combine(merged, "steps.csv")));

        var status = Process.Start(new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "status", merged])
            { RedirectStandardOutput = true })!;
        string text = await status.StandardOutput.ReadToEndAsync();
        await status.WaitForExitAsync();
        Assert.Contains("studies 4/4 complete; trials 8/8 finished (0 crashed), 0 running, 0 pending", text);
    }
}
