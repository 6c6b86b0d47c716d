using NqmValidate.Common;
using NqmValidate.Training.Data;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>The sweep's scheduling, pruning, resume and merge logic over a synthetic trial (fast).
/// The same properties are checked end to end with real `nqm train` processes in SweepProcessTests.</summary>
public class SweepRunnerTests
{
    static async Task<(SweepSummary Summary, SyntheticTrialRunner Runner)> Run(ExperimentSpec spec, string dir, Shard? shard = null,
        SyntheticTrialRunner? runner = null, CancellationToken cancel = default)
    {
        runner ??= new SyntheticTrialRunner();
        var summary = await new SweepRunner(runner).RunAsync(new SweepOptions(spec, dir, shard ?? Shard.All), null, cancel);
        return (summary, runner);
    }

    static string[] Columns(string csv, params string[] names)
    {
        var lines = csv.TrimEnd().Split('\n');
        var header = lines[0].Split(',');
        var idx = names.Select(n => Array.IndexOf(header, n)).ToArray();
        Assert.DoesNotContain(-1, idx);
        return lines.Skip(1).Select(l => string.Join(",", idx.Select(i => l.Split(',')[i]))).ToArray();
    }

    [Fact]
    public async Task PruningNeverChangesTheMinimumAndTrainsFewerSteps()
    {
        var spec = SweepTestKit.SmallSpec();
        var (pruned, prunedRunner) = await Run(spec, SweepTestKit.TempDir("pruned"));
        var (full, fullRunner) = await Run(spec with { Prune = false }, SweepTestKit.TempDir("full"));
        Assert.True(pruned.Complete && full.Complete);
        string[] key = ["optimizer", "batch_size", "steps_to_target", "learning_rate", "momentum"];
        var a = Columns(SweepTables.StepsCsv(spec, SweepTables.StepsRows(SweepPlan.Create(spec), pruned.Results)), key);
        var b = Columns(SweepTables.StepsCsv(spec, SweepTables.StepsRows(SweepPlan.Create(spec), full.Results)), key);
        Assert.Equal(b, a);
        Assert.Equal(6, a.Length);
        Assert.All(a, row => Assert.NotEqual("", row.Split(',')[2])); // every study reached
        Assert.True(prunedRunner.StepsTrained * 2 < fullRunner.StepsTrained,
            $"pruned {prunedRunner.StepsTrained} vs exhaustive {fullRunner.StepsTrained} steps");
        Assert.Contains(pruned.Results, r => r.Count(StudyTrialStatus.Pruned) > 0);
    }

    /// <summary>Collects progress reports synchronously (Progress&lt;T&gt; would post them to the thread pool).</summary>
    sealed class Recorder : IProgress<SweepProgress>
    {
        public readonly List<SweepProgress> Reports = [];
        public void Report(SweepProgress value) { lock (Reports) Reports.Add(value); }
    }

    [Fact]
    public async Task ProgressCountsEachTrialOnceAndShowsEveryRunningTrial()
    {
        var spec = SweepTestKit.SmallSpec() with { Jobs = 2 };
        var recorder = new Recorder();
        var summary = await new SweepRunner(new SyntheticTrialRunner()).RunAsync(
            new SweepOptions(spec, SweepTestKit.TempDir("progress"), Shard.All), recorder, default);
        Assert.True(summary.Complete);
        int total = recorder.Reports[0].TrialsTotal;
        Assert.All(recorder.Reports, p => Assert.InRange(p.TrialsDone, 0, total));
        Assert.All(recorder.Reports, p => Assert.InRange(p.Running, 0, 2));
        Assert.Contains(recorder.Reports, p => p.Running == 2); // two jobs: reported while both run
        Assert.Equal(total, recorder.Reports[^1].TrialsDone);
        Assert.Equal(0, recorder.Reports[^1].Running);
    }

    [Fact]
    public async Task TheMinimumIsTheSmallestSyntheticStepsToTargetOverTheGrid()
    {
        var spec = SweepTestKit.SmallSpec();
        var (summary, _) = await Run(spec, SweepTestKit.TempDir("oracle"));
        foreach (var r in summary.Results)
        {
            long? oracle = r.Study.Trials
                .Select(t => SyntheticTrialRunner.Outcome(new TrialRequest(spec, r.Study, t, r.Study.BudgetSteps)).Steps)
                .Where(s => s is not null).Min();
            Assert.Equal(oracle, r.StepsToTarget);
        }
    }

    [Fact]
    public async Task TablesDoNotDependOnTheNumberOfJobs()
    {
        var spec = SweepTestKit.SmallSpec();
        string one = SweepTestKit.TempDir("jobs1"), many = SweepTestKit.TempDir("jobs5");
        await Run(spec with { Jobs = 1 }, one, runner: new SyntheticTrialRunner { CapSensitive = true });
        // 5 slots for 2 chains: trials are launched speculatively before earlier ones finish.
        var (summary, _) = await Run(spec with { Jobs = 5 }, many,
            runner: new SyntheticTrialRunner { CapSensitive = true, Delay = TimeSpan.FromMilliseconds(3) });
        Assert.True(summary.TrialsDiscarded > 0, "no speculative trial had to run again: the test does not exercise the cap check");
        Assert.Equal(SweepTestKit.Read(one, "steps.csv"), SweepTestKit.Read(many, "steps.csv"));
        Assert.Equal(SweepTestKit.Read(one, "trials.csv"), SweepTestKit.Read(many, "trials.csv"));
    }

    [Fact]
    public async Task InterruptedAtRandomMomentsAndResumedGivesTheSameTablesWithoutRepeatingFinishedTrials()
    {
        var spec = SweepTestKit.SmallSpec();
        string reference = SweepTestKit.TempDir("uninterrupted");
        var (_, refRunner) = await Run(spec with { Jobs = 1 }, reference, runner: new SyntheticTrialRunner { CapSensitive = true });
        string dir = SweepTestKit.TempDir("resumed");
        var rng = new Random(11);
        int launched = 0, runs = 0;
        while (true)
        {
            runs++;
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(rng.Next(20, 120)));
            var runner = new SyntheticTrialRunner { CapSensitive = true, Delay = TimeSpan.FromMilliseconds(rng.Next(2, 10)) };
            var (summary, _) = await Run(spec, dir, runner: runner, cancel: runs < 30 ? cts.Token : default);
            launched += runner.Launched;
            if (summary.Complete) break;
        }
        Assert.True(runs > 2, "the sweep was never interrupted");
        Assert.Equal(SweepTestKit.Read(reference, "steps.csv"), SweepTestKit.Read(dir, "steps.csv"));
        Assert.Equal(SweepTestKit.Read(reference, "trials.csv"), SweepTestKit.Read(dir, "trials.csv"));
        Assert.True(launched >= refRunner.Launched);
    }

    [Fact]
    public async Task ShardsMergedEqualOneRun()
    {
        var spec = SweepTestKit.SmallSpec(s => s with { Seeds = 2 });
        string single = SweepTestKit.TempDir("single");
        await Run(spec, single);
        var shards = Enumerable.Range(0, 3).Select(i => SweepTestKit.TempDir($"shard{i}")).ToList();
        for (int i = 0; i < 3; i++)
        {
            var (summary, _) = await Run(spec, shards[i], new Shard(i, 3));
            Assert.True(summary.Complete);
        }
        string merged = SweepTestKit.TempDir("merged");
        var m = SweepMerge.Merge(shards, merged);
        Assert.Equal(m.StudiesTotal, m.Results.Count);
        Assert.Equal(SweepTestKit.Read(single, "steps.csv"), SweepTestKit.Read(merged, "steps.csv"));
        Assert.Equal(SweepTestKit.Read(single, "trials.csv"), SweepTestKit.Read(merged, "trials.csv"));
        // Merging again (or a shard twice) changes nothing.
        SweepMerge.Merge([.. shards, shards[0]], merged);
        Assert.Equal(SweepTestKit.Read(single, "steps.csv"), SweepTestKit.Read(merged, "steps.csv"));
    }

    [Fact]
    public async Task SeveralSeedsGiveTheSpreadOfPerSeedMinima()
    {
        var spec = SweepTestKit.SmallSpec(s => s with { Seeds = 3 });
        var (summary, _) = await Run(spec, SweepTestKit.TempDir("seeds"));
        var rows = SweepTables.StepsRows(SweepPlan.Create(spec), summary.Results);
        foreach (var row in rows)
        {
            var minima = summary.Results.Where(r => r.Study.Optimizer == row.Optimizer && r.Study.BatchSize == row.BatchSize)
                .Select(r => r.StepsToTarget!.Value).Order().ToList();
            Assert.Equal(3, row.Seeds);
            Assert.Equal(minima[0], row.StepsMin);
            Assert.Equal(minima[1], row.StepsMedian);
            Assert.Equal(minima[2], row.StepsMax);
            Assert.Equal(minima[1], row.StepsToTarget);
        }
    }

    [Fact]
    public async Task ACrashedTrialIsRecordedAndTheSweepGoesOn()
    {
        var spec = SweepTestKit.SmallSpec(s => s with { Jobs = 1 }); // no speculative reruns: exact counts
        string dir = SweepTestKit.TempDir("crash");
        var runner = new SyntheticTrialRunner { Crashes = r => r.Study.Id == "sgd-b64-r0" && r.Trial.Index == 6 };
        var (summary, _) = await Run(spec, dir, runner: runner);
        Assert.True(summary.Complete);
        Assert.Equal(1, summary.TrialsCrashedNow);
        var study = summary.Results.Single(r => r.Study.Id == "sgd-b64-r0");
        Assert.Equal(1, study.Count(StudyTrialStatus.Crashed));
        Assert.Contains("\"crashed\"", File.ReadAllText(Path.Combine(dir, "trials", "sgd-b64-r0", "t006", "trial.json")));
        // A crashed trial is finished: not rerun, unless asked.
        var (again, r2) = await Run(spec, dir);
        Assert.Equal(0, r2.Launched);
        var retry = new SyntheticTrialRunner();
        var retried = await new SweepRunner(retry).RunAsync(new SweepOptions(spec, dir, Shard.All, RetryCrashed: true));
        Assert.Equal(1, retry.Launched);
        Assert.Equal(0, retried.Results.Sum(r => r.Count(StudyTrialStatus.Crashed)));
    }

    [Fact]
    public async Task ResumingWithAnotherSpecIsRefused()
    {
        string dir = SweepTestKit.TempDir("otherspec");
        await Run(SweepTestKit.SmallSpec(), dir);
        var e = await Assert.ThrowsAsync<SweepStoreException>(() => Run(SweepTestKit.SmallSpec(s => s with { Seed = 99 }), dir));
        Assert.Contains("different spec", e.Message);
        // More jobs is the same sweep.
        var (summary, runner) = await Run(SweepTestKit.SmallSpec(s => s with { Jobs = 1 }), dir);
        Assert.True(summary.Complete);
        Assert.Equal(0, runner.Launched);
    }

    [Fact]
    public async Task AFinishedAttemptOfAKilledSweepIsAdoptedAndAnUnfinishedOneDiscarded()
    {
        var spec = SweepTestKit.SmallSpec(s => s with { Jobs = 1 }); // no speculative reruns: exact counts
        string dir = SweepTestKit.TempDir("adopt");
        var store = new ResultsStore(dir);
        store.Open(spec);
        var study = SweepPlan.Create(spec).Studies.First();
        // t003 is the centre of the grid: the first trial of the first study, capped by the budget.
        var finished = store.NewAttempt(study.Id, "t003");
        await new SyntheticTrialRunner().RunAsync(new TrialRequest(spec, study, study.Trials[3], study.BudgetSteps), finished, _ => { }, default);
        var unfinished = store.NewAttempt(study.Id, "t004");
        File.WriteAllText(Path.Combine(unfinished, "trial.json"), "{\"status\": \"running\"}");
        var runner = new SyntheticTrialRunner();
        var (summary, _) = await Run(spec, dir, runner: runner);
        Assert.Equal(1, summary.TrialsAdopted);
        Assert.False(Directory.Exists(unfinished));
        Assert.Equal(SweepPlan.Create(spec).Studies.Sum(s => s.Trials.Count) - 1, runner.Launched);
    }

    [Fact]
    public void ShardsComeFromSlurmArrayVariables()
    {
        var env = new Dictionary<string, string?> { ["SLURM_ARRAY_TASK_ID"] = "2", ["SLURM_ARRAY_TASK_COUNT"] = "4" };
        Assert.Equal(new Shard(2, 4), Shard.FromEnvironment(k => env.GetValueOrDefault(k)));
        env["SLURM_ARRAY_TASK_MIN"] = "1";
        Assert.Equal(new Shard(1, 4), Shard.FromEnvironment(k => env.GetValueOrDefault(k)));
        Assert.Null(Shard.FromEnvironment(_ => null));
        Assert.Throws<SpecException>(() => Shard.Parse("4/4"));
        Assert.Equal(new Shard(0, 1), Shard.Parse("0/1"));
    }

    [Fact]
    public void TheSlurmScriptIsAnArrayOverTheShards()
    {
        var spec = SweepTestKit.SmallSpec();
        string script = SlurmScript.Render(spec with { Threads = 2 }, new SlurmOptions("/x/nqm.dll", "/x/spec.json", "/out", 4, Gpu: true, "gpu", "01:00:00"), chains: 2);
        Assert.Contains("#SBATCH --array=0-3", script);
        Assert.Contains("#SBATCH --gres=gpu:1", script);
        // One chain per task at most: one trial at a time, `threads` cores.
        Assert.Contains("#SBATCH --cpus-per-task=2", script);
        Assert.Contains("--jobs 1 --threads 2", script);
        // Fewer tasks than chains: each task runs several chains side by side.
        Assert.Contains("#SBATCH --cpus-per-task=6", SlurmScript.Render(spec with { Threads = 2 },
            new SlurmOptions("/x/nqm.dll", "/x/spec.json", "/out", 2, false, null, null), chains: 6));
        Assert.Contains("out='/out'", script);
        Assert.Contains("--out \"$out/shards/shard-${SLURM_ARRAY_TASK_ID}\"", script);
        Assert.Contains("--device cuda", script);
        Assert.Contains("merge --out '\\''/out'\\'' '\\''/out'\\''/shards/shard-*", script);
    }
}

public class DataIdentityTests
{
    [Fact]
    public void AResumeOnOtherDataIsRefusedAndTheSameFilesElsewhereAreAccepted()
    {
        // The data directory is not part of the spec's results key when it comes from NQM_DATA_DIR (or differs between
        // shard machines), so the sweep records the files' hash in DIR/data.json and checks it on every run.
        using var a = new Training.IdxFixtures().WriteValid(train: 300, test: 20);
        using var copy = new Training.IdxFixtures().WriteValid(train: 300, test: 20);   // the same bytes in another folder
        using var other = new Training.IdxFixtures().WriteValid(train: 310, test: 20);  // other data
        var store = new ResultsStore(SweepTestKit.TempDir("data-identity"));
        store.CheckData(FashionMnist.Identity(a.Directory));
        Assert.True(File.Exists(store.DataPath));
        store.CheckData(FashionMnist.Identity(copy.Directory));
        var e = Assert.Throws<SweepStoreException>(() => store.CheckData(FashionMnist.Identity(other.Directory)));
        Assert.Contains(a.Directory, e.Message);
        Assert.Contains(other.Directory, e.Message);
        Assert.Contains("must not mix", e.Message);
    }
}
