using System.Diagnostics;
using System.Text.Json;
using NqmValidate.Torch.Tests.Sweeps;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Torch.Tests.Reliability;

/// <summary>#14 defect 1: one live sweep per directory; recovery never kills a trial whose sweep is alive.</summary>
public class RunLockTests
{
    static async Task WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException(what);
            await Task.Delay(20);
        }
    }

    static bool HasAttempt(string dir) =>
        Directory.Exists(Path.Combine(dir, "trials"))
        && Directory.EnumerateDirectories(Path.Combine(dir, "trials"), ".*.attempt-*", SearchOption.AllDirectories).Any();

    [Fact]
    public async Task ASecondSweepOnALiveDirectoryIsRefusedNamingTheOwnerAndTheFirstFinishesAsAlone()
    {
        var spec = SweepTestKit.SmallSpec();
        string reference = SweepTestKit.TempDir("lock-ref");
        Assert.True((await new SweepRunner(new SyntheticTrialRunner()).RunAsync(new SweepOptions(spec, reference, Shard.All))).Complete);

        string dir = SweepTestKit.TempDir("lock");
        var slow = new SyntheticTrialRunner { Delay = TimeSpan.FromMilliseconds(30) };
        var first = new SweepRunner(slow).RunAsync(new SweepOptions(spec, dir, Shard.All));
        await WaitFor(() => HasAttempt(dir), "the first sweep started no trial");

        var second = new SyntheticTrialRunner();
        var e = await Assert.ThrowsAsync<RunLockedException>(() => new SweepRunner(second).RunAsync(new SweepOptions(spec, dir, Shard.All)));
        Assert.Contains($"pid {Environment.ProcessId} on host {Environment.MachineName}", e.Message);
        Assert.Equal(0, second.Launched); // refused before touching a trial
        Assert.False(first.IsCompleted, "the first sweep should still be running (raise its trial delay)");

        var summary = await first;
        Assert.True(summary.Complete);
        Assert.Equal(0, summary.TrialsCrashedNow);
        Assert.Equal(SweepTestKit.Read(reference, "steps.csv"), SweepTestKit.Read(dir, "steps.csv"));
        Assert.Equal(SweepTestKit.Read(reference, "trials.csv"), SweepTestKit.Read(dir, "trials.csv"));
        // Released at the end: the next run may take the directory.
        using var again = RunLock.Acquire(dir);
        Assert.Null(again.TookOverFrom);
    }

    [Fact]
    public void AStaleLockOfADeadOwnerIsTakenOver()
    {
        string dir = SweepTestKit.TempDir("stale");
        using var dead = Process.Start(new ProcessStartInfo("true"))!;
        dead.WaitForExit();
        var owner = new RunLockOwner(dead.Id, Environment.MachineName, DateTime.UtcNow.AddMinutes(-5), DateTime.UtcNow.AddMinutes(-5));
        File.WriteAllText(Path.Combine(dir, RunLock.OwnerFileName), JsonSerializer.Serialize(owner));
        File.WriteAllText(Path.Combine(dir, RunLock.LockFileName), "");
        using var taken = RunLock.Acquire(dir);
        Assert.Equal(dead.Id, taken.TookOverFrom?.Pid);
        Assert.Equal(Environment.ProcessId, RunLock.ReadOwner(Path.Combine(dir, RunLock.OwnerFileName))!.Pid);
    }

    [Fact]
    public void ALiveOwnerRecordedOnThisHostIsRespectedEvenWhereFileLocksAreNotEnforced()
    {
        // The lock file is free (as on a file system without flock), but run.owner names a live process.
        string dir = SweepTestKit.TempDir("owner");
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "30"))!;
        try
        {
            var owner = new RunLockOwner(sleeper.Id, Environment.MachineName, DateTime.UtcNow, sleeper.StartTime.ToUniversalTime());
            File.WriteAllText(Path.Combine(dir, RunLock.OwnerFileName), JsonSerializer.Serialize(owner));
            var e = Assert.Throws<RunLockedException>(() => RunLock.Acquire(dir));
            Assert.Contains($"pid {sleeper.Id}", e.Message);
            // A recycled pid (same number, another start time) is not the owner.
            var recycled = owner with { ProcessStartUtc = owner.ProcessStartUtc!.Value.AddHours(-1) };
            File.WriteAllText(Path.Combine(dir, RunLock.OwnerFileName), JsonSerializer.Serialize(recycled));
            using var taken = RunLock.Acquire(dir);
            Assert.Equal(sleeper.Id, taken.TookOverFrom?.Pid);
        }
        finally { sleeper.Kill(); sleeper.WaitForExit(); }
    }

    [Fact]
    public async Task RecoveryLeavesATrialOfALiveSweepAloneAndStopsItOnceItsSweepIsDead()
    {
        string dir = SweepTestKit.TempDir("recover");
        var store = new ResultsStore(dir);
        store.Open(SweepTestKit.SmallSpec());
        // A stand-in sweep (bash, pid $$) makes an attempt directory named after itself and starts a
        // "trial" whose command line names that directory, then waits for it, as the real sweep does.
        string studyDir = Path.Combine(store.TrialsRoot, "sgd-b16-r0");
        Directory.CreateDirectory(studyDir);
        var sweep = Process.Start(new ProcessStartInfo("bash",
            ["-c", "d=\"$0/.t000.attempt-$$-abcd1234\"; mkdir -p \"$d\"; sh -c 'sleep 60; true' \"$d\" & wait", studyDir]))!;
        string attempt = "";
        int trial = 0;
        // The precondition, read from one listing: exactly one process names the attempt and it is the sweep's child.
        // (While sh forks its `sleep`, the child names the attempt too until it execs, and a process in the middle of
        // exec can show an empty command line: listing twice raced with both under load.)
        await WaitFor(() =>
        {
            var found = Directory.GetDirectories(studyDir, ".*.attempt-*");
            if (found.Length == 0) return false;
            attempt = found[0];
            var naming = ResultsStore.ProcessesNaming(attempt);
            if (naming.Count != 1 || ResultsStore.ParentPid(naming[0]) != sweep.Id) return false;
            trial = naming[0];
            return true;
        }, "the stand-in trial did not start");
        try
        {
            store.RecoverAttempts();
            Assert.True(Directory.Exists(attempt), "the attempt of a live sweep was deleted");
            Assert.Contains(trial, ResultsStore.ProcessesNaming(attempt));

            sweep.Kill(entireProcessTree: false); // the sweep dies; its trial is now an orphan
            sweep.WaitForExit();
            await WaitFor(() => ResultsStore.ParentPid(trial) != sweep.Id, "the orphan was not re-parented");
            store.RecoverAttempts();
            Assert.False(Directory.Exists(attempt));
            await WaitFor(() => ResultsStore.ProcessesNaming(attempt).Count == 0, "the orphaned trial still runs");
        }
        finally
        {
            foreach (int pid in ResultsStore.ProcessesNaming(attempt))
                try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
            if (!sweep.HasExited) sweep.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task ShardsInSiblingDirectoriesRunAtOnceAndMergeToTheSingleRun()
    {
        var spec = SweepTestKit.SmallSpec();
        string single = SweepTestKit.TempDir("single");
        await new SweepRunner(new SyntheticTrialRunner()).RunAsync(new SweepOptions(spec, single, Shard.All));
        string root = SweepTestKit.TempDir("shared-fs");
        var shards = new[] { Path.Combine(root, "shards", "shard-0"), Path.Combine(root, "shards", "shard-1") };
        var runs = shards.Select((d, i) => new SweepRunner(new SyntheticTrialRunner { Delay = TimeSpan.FromMilliseconds(2) })
            .RunAsync(new SweepOptions(spec, d, new Shard(i, 2)))).ToArray();
        Assert.All(await Task.WhenAll(runs), s => Assert.True(s.Complete));
        SweepMerge.Merge(shards, root);
        Assert.Equal(SweepTestKit.Read(single, "steps.csv"), SweepTestKit.Read(root, "steps.csv"));
    }
}
