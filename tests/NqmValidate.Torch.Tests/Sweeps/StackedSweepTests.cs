using System.Diagnostics;
using System.Runtime.InteropServices;
using NqmValidate.Formats;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// A sweep with `stack`: each study's trials run in waves trained as one stacked model in a worker. The tiny real sweep's
/// data with four trials per study and a stack of 3, so a study is a wave of 3 and a wave of 1 whose cap comes from the first.
/// </summary>
[Collection("tiny real sweep")]
public class StackedSweepTests(TinyRealSweep sweep)
{
    string WriteSpec(string dir, int stack)
    {
        string path = Path.Combine(dir, $"stacked-{stack}.json");
        File.WriteAllText(path, $$"""
        {
          "name": "tiny-stacked",
          "seed": 3,
          "workload": {
            "data": { "dir": "{{sweep.DataDir}}" },
            "model": { "name": "mlp", "hidden_widths": [32] },
            "target": { "metric": "train_loss", "threshold": 1.2 }
          },
          "batch_sizes": [32, 128],
          "optimizers": [
            { "name": "sgd", "learning_rate": { "min": 0.05, "max": 1.0, "points": 4 } },
            { "name": "momentum", "learning_rate": { "min": 0.005, "max": 0.1, "points": 4 },
              "one_minus_momentum": { "min": 0.1, "max": 0.1 } }
          ],
          "budget": { "steps": 200 },
          "evaluation": { "eval_examples": 200 },
          "threads": 1,
          "jobs": 2,
          "stack": {{stack}}
        }
        """);
        return path;
    }

    static IReadOnlyList<StepsRow> Steps(string dir) => StepsFile.Read(Path.Combine(dir, "steps.csv")).Rows;

    static int FinishedIn(string d) => Directory.Exists(Path.Combine(d, "trials"))
        ? Directory.GetDirectories(Path.Combine(d, "trials")).Sum(s => Directory.GetDirectories(s, "t*").Length) : 0;

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);

    /// <summary>
    /// Stacked against one trial at a time in workers (same spec but stack 1): every study's steps-to-target agrees within
    /// seed noise (|log2| ≤ 0.3: these 200-step trials differ by that much between two seeds), waves prune later (at
    /// least as many steps trained); every trial's log says it was stacked and holds its own summary once. Then a stacked
    /// sweep killed mid-run (SIGKILL to the whole process group) and resumed gives the uninterrupted stacked tables, bit
    /// for bit: a member's curve depends on its config only, and a wave's cap on the earlier waves only.
    /// </summary>
    [Fact]
    public async Task AStackedSweepAgreesWithTrialsAloneAndAKilledOneResumesToTheSameTables()
    {
        string root = SweepTestKit.TempDir("stacked");
        var stackedSpec = SpecLoader.Load(WriteSpec(root, 3));
        var aloneSpec = SpecLoader.Load(WriteSpec(root, 1));
        string stackedDir = Path.Combine(root, "stacked"), aloneDir = Path.Combine(root, "alone");
        using (var workers = WorkerTrialRunner.ForCurrentNqm())
        {
            var summary = await new SweepRunner(workers).RunAsync(new SweepOptions(stackedSpec, stackedDir, Shard.All));
            Assert.True(summary.Complete);
            Assert.Equal(0, summary.TrialsCrashedNow);
            Assert.InRange(workers.WorkersStarted, 1, stackedSpec.Jobs);
        }
        using (var workers = WorkerTrialRunner.ForCurrentNqm())
            Assert.True((await new SweepRunner(workers).RunAsync(new SweepOptions(aloneSpec, aloneDir, Shard.All))).Complete);

        var stacked = Steps(stackedDir);
        var alone = Steps(aloneDir);
        Assert.Equal(alone.Select(r => (r.Optimizer, r.BatchSize)), stacked.Select(r => (r.Optimizer, r.BatchSize)));
        foreach (var (a, s) in alone.Zip(stacked))
        {
            Assert.True(a.StepsToTarget is not null && s.StepsToTarget is not null, $"{a.Optimizer} B={a.BatchSize}: both reach");
            double log2 = Math.Log2((double)s.StepsToTarget!.Value / a.StepsToTarget!.Value);
            Assert.True(Math.Abs(log2) <= 0.3, $"{a.Optimizer} B={a.BatchSize}: alone {a.StepsToTarget}, stacked {s.StepsToTarget}");
            Assert.True(s.StepsTrained >= a.StepsTrained - 50, $"{a.Optimizer} B={a.BatchSize}: waves prune later ({s.StepsTrained} vs {a.StepsTrained} steps)");
        }
        foreach (var study in Directory.GetDirectories(Path.Combine(stackedDir, "trials")))
        foreach (var trial in Directory.GetDirectories(study, "t*"))
        {
            string log = File.ReadAllText(Path.Combine(trial, "trial.log"));
            Assert.Contains("stacked with", log);
            Assert.Single(log.Split('\n').Where(l => l.Contains(" -> ")));
            Assert.DoesNotContain("nqm-worker:", log);
        }

        // Killed and resumed. A loaded machine can starve the poll until the whole sweep has finished, which tests
        // nothing: then the attempt is repeated in a fresh directory (at most three times).
        string killedDir = "";
        string specPath = Path.Combine(root, "stacked-3.json");
        Process Start()
        {
            var info = new ProcessStartInfo("setsid") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "dotnet", Path.Combine(AppContext.BaseDirectory, "nqm.dll"), "sweep", "--spec", specPath, "--out", killedDir, "--progress", "none" })
                info.ArgumentList.Add(a);
            var p = Process.Start(info)!;
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            return p;
        }
        int total = FinishedIn(stackedDir), finishedAtKill = total;
        for (int attempt = 0; attempt < 3 && finishedAtKill >= total; attempt++)
        {
            killedDir = Path.Combine(root, $"killed-{attempt}");
            using var p = Start();
            var clock = Stopwatch.StartNew();
            while (!p.HasExited && FinishedIn(killedDir) < 3 && clock.Elapsed < TimeSpan.FromMinutes(3)) await Task.Delay(20);
            if (!p.HasExited) Assert.Equal(0, kill(-p.Id, 9));
            await p.WaitForExitAsync();
            finishedAtKill = FinishedIn(killedDir);
        }
        Assert.InRange(finishedAtKill, 3, total - 1);
        using (var resume = Start())
        {
            await resume.WaitForExitAsync();
            Assert.Equal(0, resume.ExitCode);
        }
        Assert.Equal(File.ReadAllText(Path.Combine(stackedDir, "steps.csv")), File.ReadAllText(Path.Combine(killedDir, "steps.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(stackedDir, "trials.csv")), File.ReadAllText(Path.Combine(killedDir, "trials.csv")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(killedDir, "trials"), ".*attempt-*", SearchOption.AllDirectories));
    }

    [Fact]
    public void AStackNeedsTrialWorkersAndIsPartOfTheResultsKey()
    {
        string root = SweepTestKit.TempDir("stacked-spec");
        var spec = SpecLoader.Load(WriteSpec(root, 3));
        Assert.Contains(SpecValidation.Faults(spec with { TrialProcesses = "per-trial" }), f => f.StartsWith("stack:"));
        Assert.Contains(SpecValidation.Faults(spec with { Stack = 0 }), f => f.StartsWith("stack:"));
        Assert.NotEqual(ResultsStore.ResultsKey(spec), ResultsStore.ResultsKey(spec with { Stack = 1 }));
        var plan = SweepPlan.Create(spec);
        Assert.All(plan.Chains, c => Assert.Equal(3, plan.WaveOf(c)));
        var kfac = spec with { Optimizers = [.. spec.Optimizers!, spec.Optimizers![0] with { Name = "kfac" }] };
        var kfacPlan = SweepPlan.Create(kfac);
        Assert.Equal(1, kfacPlan.WaveOf(kfacPlan.Chains.First(c => c.Optimizer == "kfac")));
    }
}
