using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using NqmValidate.Torch.Tests.Sweeps;
using NqmValidate.Training.Verification;

namespace NqmValidate.Torch.Tests.Verification;

/// <summary>
/// `nqm verify` on the tiny real sweep (real `nqm train` processes, 150 steps): the run as made reproduces exactly;
/// one trial whose recorded config the test altered is reported as differing (exit 1); the committed runs' layout
/// (tables and provenance.json only) is re-run from the spec and compared with trials.csv. The run is never written.
/// </summary>
[Collection("tiny real sweep")]
public class VerifyCommandTests(TinyRealSweep sweep)
{
    static (int Code, string[] Lines, string Stderr) Nqm(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "nqm.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), stderr.Result);
    }

    static Dictionary<string, string> Hashes(string dir) => Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
        .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    static void CopyTree(string from, string to)
    {
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
    }

    [Fact]
    public void AFreshRunReproducesExactlyAndEveryTrialRecordsItsMachine()
    {
        var before = Hashes(sweep.Reference);
        string scratch = SweepTestKit.TempDir("verify-fresh");
        var (code, lines, stderr) = Nqm("verify", sweep.Reference, "--scratch", scratch);
        Assert.True(code == 0, string.Join("\n", lines) + stderr);
        Assert.Equal("reproduces exactly", lines[^1]);
        // The covering sample: 2 optimizers × {smallest, largest batch size}, each compared on its whole curve.
        var trials = lines.Where(l => l.StartsWith("  ", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, trials.Count);
        Assert.All(trials, l => Assert.Contains("bit-identical (curve.csv", l));
        foreach (var (o, b) in new[] { ("sgd", 32), ("sgd", 128), ("momentum", 32), ("momentum", 128) })
            Assert.Contains(trials, l => l.Contains($"{o} B={b} "));
        Assert.Equal(before, Hashes(sweep.Reference));

        var trialJson = JsonNode.Parse(File.ReadAllText(Directory.GetFiles(Path.Combine(sweep.Reference, "trials"), "trial.json", SearchOption.AllDirectories)[0]))!;
        var machine = trialJson["machine"]!;
        Assert.Equal(Environment.ProcessorCount, machine["logical_cores"]!.GetValue<int>());
        Assert.Equal(1, machine["intra_op_threads"]!.GetValue<int>()); // the spec's threads
        Assert.Equal("1", machine["environment"]!["OMP_NUM_THREADS"]!.GetValue<string>()); // set by the sweep for its trials
    }

    [Fact]
    public void ARunWithOneAlteredRecordedConfigIsReportedAsDifferingThereAndNowhereElse()
    {
        string run = SweepTestKit.TempDir("verify-altered");
        CopyTree(sweep.Reference, run);
        var rows = RecordedRun.Open(run).Rows;
        var altered = VerifySample.Choose(rows, null).First(r => r.Optimizer == "sgd" && r.Status == "reached");
        string path = Path.Combine(run, "trials", altered.Study, altered.Trial, "trial.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        double lr = json["config"]!["optimizer"]!["learning_rate"]!.GetValue<double>();
        json["config"]!["optimizer"]!["learning_rate"] = lr * 0.5;
        File.WriteAllText(path, json.ToJsonString());
        var before = Hashes(run);

        var (code, lines, stderr) = Nqm("verify", run, "--scratch", SweepTestKit.TempDir("verify-altered-scratch"));
        Assert.True(code == 1, string.Join("\n", lines) + stderr);
        var trials = lines.Where(l => l.StartsWith("  ", StringComparison.Ordinal)).ToList();
        string line = Assert.Single(trials, l => l.Contains($"{altered.Study}/{altered.Trial} "));
        // Halving the learning rate cannot change the loss before the first update, and must change the curve after it.
        Assert.Contains("differs: curves part after step 0 and by step", line);
        Assert.Contains($"recorded reached at step {altered.StepsToTarget}", line);
        Assert.All(trials.Where(l => l != line), l => Assert.Contains("bit-identical", l));
        Assert.Equal("3 of 4 trials bit-identical.", lines[^2]);
        Assert.StartsWith("differs at the level of ", lines[^1]);
        Assert.Contains("% in steps-to-target (median over 4 trials), machines differ in: nothing recorded", lines[^1]);
        Assert.Equal(before, Hashes(run));
    }

    [Fact]
    public async Task ARunKeepingOnlyItsTablesIsReRunFromItsSpecAndComparedWithTrialsCsv()
    {
        // The layout of the committed runs under experiments/results/: sweep/{steps,trials}.csv and
        // validation/provenance.json (with the spec as given), no trial directories, no machine record.
        string run = SweepTestKit.TempDir("verify-tables");
        Directory.CreateDirectory(Path.Combine(run, "sweep"));
        Directory.CreateDirectory(Path.Combine(run, "validation"));
        foreach (var f in new[] { "steps.csv", "trials.csv" })
            File.Copy(Path.Combine(sweep.Reference, f), Path.Combine(run, "sweep", f));
        var provenance = new JsonObject { ["spec"] = JsonNode.Parse(File.ReadAllText(Path.Combine(sweep.Reference, "spec.json"))), ["resolved_threads"] = 1 };
        File.WriteAllText(Path.Combine(run, "validation", "provenance.json"), provenance.ToJsonString());

        var report = await new RunVerifier().RunAsync(new VerifyOptions(run, 5, SweepTestKit.TempDir("verify-tables-scratch")));
        Assert.True(report.ReproducesExactly, string.Join("\n", report.Trials.Select(t => t.Describe())));
        Assert.Equal(5, report.Trials.Count);
        Assert.All(report.Trials, t => Assert.StartsWith("trials.csv", t.Evidence));
        Assert.All(report.Trials, t => Assert.Equal(0.0, t.RelativeDifference ?? 0.0));
        Assert.Equal("reproduces exactly", report.Conclusion());
        Assert.False(Directory.Exists(Path.Combine(run, "sweep", "trials")), "verify must not write into the run");
    }

    [Fact]
    public void BadInputExitsWith2AndOneLine()
    {
        string empty = SweepTestKit.TempDir("verify-empty");
        var (code, _, stderr) = Nqm("verify", empty);
        Assert.Equal(2, code);
        Assert.Contains("not a run directory", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var (inside, _, insideErr) = Nqm("verify", sweep.Reference, "--scratch", Path.Combine(sweep.Reference, "verify"));
        Assert.Equal(2, inside);
        Assert.Contains("inside the run directory", insideErr);
        var (small, _, smallErr) = Nqm("verify", sweep.Reference, "--sample", "3");
        Assert.Equal(2, small);
        Assert.Contains("--sample 3: covering every optimizer at the smallest and the largest batch size takes 4 trials", smallErr);
    }
}
