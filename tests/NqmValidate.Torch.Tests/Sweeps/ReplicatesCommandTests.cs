using System.Globalization;
using NqmValidate.Cli;
using NqmValidate.Cli.Commands;
using NqmValidate.Reports;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>`nqm replicates` on the tiny real sweep: the first-crossing bias check end to end.</summary>
[Collection("tiny real sweep")]
public class ReplicatesCommandTests(TinyRealSweep sweep)
{
    [Fact]
    public async Task TheOwnSeedRepeatsTheRecordedStepsAndTheTableFollowsFromTheCurvesWritten()
    {
        string dir = SweepTestKit.TempDir("replicates");
        int code = await NqmApp.RunAsync(["replicates", "--sweep", sweep.Reference, "--optimizer", "sgd", "--replicates", "2", "--out", dir]);
        Assert.Equal(ExitCodes.Ok, code);

        var table = CsvFiles.ReadRows(Path.Combine(dir, ReplicatesCommand.TableFile));
        Assert.Equal(["32", "128"], table.Select(r => r["batch_size"]));
        // Replicate 0 is the recorded trial run again as the sweep ran it: the same steps-to-target, exactly.
        Assert.All(table, r => Assert.Equal(r["recorded_steps"], r["own_seed_measured"]));
        Assert.All(table, r => Assert.Equal("3", r["replicates"]));

        var curves = CsvFiles.ReadRows(Path.Combine(dir, ReplicatesCommand.CurvesFile));
        foreach (var row in table)
        {
            var study = curves.Where(c => c["batch_size"] == row["batch_size"]).ToList();
            var byReplicate = study.GroupBy(c => c["replicate"]).ToDictionary(g => g.Key, g => g.Select(c => double.Parse(c["train_loss"], CultureInfo.InvariantCulture)).ToArray());
            Assert.Equal(3, byReplicate.Count);
            Assert.NotEqual(byReplicate["0"], byReplicate["1"]); // fresh seeds are other runs
            Assert.Equal(3, study.Select(c => c["seed"]).Distinct().Count());
            // The mean-curve crossing is traceable to replicate-curves.csv: recomputed here from the file.
            var steps = study.Where(c => c["replicate"] == "0").Select(c => long.Parse(c["step"], CultureInfo.InvariantCulture)).ToArray();
            long? crossing = steps.Select((s, i) => (s, mean: byReplicate.Values.Average(l => l[i]))).Where(p => p.mean <= 1.2).Select(p => (long?)p.s).FirstOrDefault();
            Assert.Equal(row["mean_curve_crossing"], crossing?.ToString(CultureInfo.InvariantCulture) ?? "");
            Assert.True(steps[0] <= long.Parse(row["recorded_steps"], CultureInfo.InvariantCulture) / 4 + 1 && steps[^1] >= long.Parse(row["recorded_steps"], CultureInfo.InvariantCulture));
            // Replicate 0 replayed is the recorded trial: at every step both evaluated, the same training loss, bit for bit.
            var recorded = NqmValidate.Validation.SweepResults.Load(sweep.Reference).BestTrialCurve("sgd", int.Parse(row["batch_size"], CultureInfo.InvariantCulture))
                .Points.ToDictionary(p => (long)p.Step, p => p.Loss);
            var shared = steps.Select((s, i) => (s, i)).Where(x => recorded.ContainsKey(x.s)).ToList();
            Assert.NotEmpty(shared);
            Assert.All(shared, x => Assert.Equal(recorded[x.s], byReplicate["0"][x.i]));
        }
    }
}

/// <summary>`nqm replicates`' refusals, read from what it prints (Console is process-wide: the console collection).</summary>
[Collection("console")]
public class ReplicatesArgumentTests
{
    static string QuickSweep()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NqmValidate.sln"))) dir = dir.Parent;
        return Path.Combine(dir!.FullName, "experiments", "results", "fmnist-mlp-quick", "sweep");
    }

    [Theory]
    [InlineData("--batch-sizes 32", "--batch-sizes: '32' is not a batch size at which sgd reached the target (those are 16, 64, 256, 1024, 4096)")]
    [InlineData("--replicates 0", "--replicates: must be at least 1")]
    [InlineData("--multiple 1", "--multiple: must be a finite number > 1")]
    [InlineData("--optimizer nesterov", "no nesterov study reached the target")]
    public async Task BadArgumentsAreRefusedByNameBeforeAnyTraining(string arguments, string message)
    {
        string outDir = SweepTestKit.TempDir("rep-bad");
        var r = await Reliability.CliHarness.Run(["replicates", "--sweep", QuickSweep(), "--out", outDir, .. arguments.Split(' ')]);
        Assert.Equal(ExitCodes.BadInput, r.Code);
        Assert.Contains(message, r.Err);
        Assert.False(File.Exists(Path.Combine(outDir, ReplicatesCommand.TableFile)), r.ToString());
    }
}
