using System.CommandLine;
using System.Text.Json.Nodes;
using NqmValidate.Cli;
using NqmValidate.Cli.Commands;
using NqmValidate.Torch.Tests.Sweeps;
using NqmValidate.Torch.Tests.Training;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Reliability;

/// <summary>#14 defects 2, 5, 6 and 7: inputs checked before work, in the user's terms; outcomes recorded truthfully.</summary>
[Collection("console")]
public class InputAndOutcomeTests
{
    static string WriteSpec(string dir, string json, string name = "spec.json")
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    static string Edit(string from, string to)
    {
        Assert.Contains(from, SweepTestKit.SmallSpecJson);
        return SweepTestKit.SmallSpecJson.Replace(from, to);
    }

    // --- command line ---

    [Theory]
    [InlineData("sweep --spec s.json --jobs many", "--jobs", "as an integer")]
    [InlineData("fit --sweep a --curvature b --target-loss low --out c", "--target-loss", "as a number")]
    [InlineData("sweep --spec s.json --bogus", "--bogus", "Unrecognized")]
    [InlineData("train --out x --batch-size", "--batch-size", "")]
    public async Task AParseErrorIsOneLinePlusTheUsageLineWithExitTwoAndNoTypeNames(string args, string names, string says)
    {
        var r = await CliHarness.Run(args.Split(' '));
        Assert.Equal(2, r.Code);
        Assert.Equal(2, r.ErrLines.Length);
        Assert.Contains(names, r.ErrLines[0]);
        Assert.Contains(says, r.ErrLines[0]);
        Assert.StartsWith("usage: nqm " + args.Split(' ')[0], r.ErrLines[1]);
        Assert.DoesNotContain("System.", r.Err);
        Assert.DoesNotContain("Nullable", r.Err);
        Assert.Equal("", r.Out); // no help dump
    }

    [Fact]
    public async Task AnUnexpectedErrorIsOneLineWithExitOneAndTheTraceInALog()
    {
        var root = NqmApp.BuildRoot();
        var boom = new Command("boom");
        boom.SetAction((Func<ParseResult, int>)(_ => throw new InvalidOperationException("the invariant broke")));
        root.Subcommands.Add(boom);
        var r = await CliHarness.Run(root, "boom");
        Assert.Equal(1, r.Code);
        string line = Assert.Single(r.ErrLines);
        Assert.StartsWith("nqm boom: failed: the invariant broke (trace: ", line);
        string log = line[(line.IndexOf("(trace: ", StringComparison.Ordinal) + 8)..^1];
        Assert.Contains("System.InvalidOperationException: the invariant broke", File.ReadAllText(log));
        Assert.Contains(" at ", File.ReadAllText(log));
        File.Delete(log);
    }

    [Theory]
    [InlineData("sweep", "--spec", "S")]
    [InlineData("simulate")]
    [InlineData("fit", "--sweep", "D", "--curvature", "D", "--target-loss", "1")]
    [InlineData("curvature", "--examples", "4")]
    [InlineData("validate", "--spec", "S")]
    [InlineData("train", "--model", "mlp", "--learning-rate", "0.1", "--target-loss", "1")]
    public async Task AnOutThatIsAFileIsRefusedByEveryCommandBeforeWork(params string[] args)
    {
        string dir = SweepTestKit.TempDir("outfile");
        string spec = WriteSpec(dir, SweepTestKit.SmallSpecJson);
        string file = Path.Combine(dir, "a-file");
        File.WriteAllText(file, "keep me");
        var r = await CliHarness.Run([.. args.Select(a => a == "S" ? spec : a == "D" ? dir : a), "--out", file]);
        Assert.Equal(2, r.Code);
        Assert.Equal($"nqm {args[0]}: --out: '{file}' is a file; expected a directory.", Assert.Single(r.ErrLines));
        Assert.Equal("keep me", File.ReadAllText(file));
    }

    // --- specs ---

    [Theory]
    [InlineData("\"seeds\": 1", "\"seeds\": \"two\"", "at `seeds` (line", "expected an integer")]
    [InlineData("\"jobs\": 3", "\"jobs\": 3, \"jbos\": 4", "unknown key `jbos` at the top level", "allowed keys: name, seed, workload, batch_sizes, optimizers, seeds, budget, evaluation, threads, jobs, device, prune, order, trial_processes, stack, curvature, fit")]
    [InlineData("[16, 64, 256]", "{ \"b\": 16 }", "at `batch_sizes` (line", "expected a list")]
    [InlineData("\"threshold\": 1.0", "\"threshold\": [1]", "at `workload.target.threshold`", "expected a number")]
    public async Task ASpecTypeOrKeyErrorSpeaksJsonNotDotNet(string from, string to, string where, string says)
    {
        string dir = SweepTestKit.TempDir("spec-errors");
        string json = SweepTestKit.SmallSpecJson.Contains(from) ? Edit(from, to) : Edit("\"jobs\": 3", "\"jobs\": 3, " + to);
        var r = await CliHarness.Run("sweep", "--spec", WriteSpec(dir, json), "--out", Path.Combine(dir, "out"));
        Assert.Equal(2, r.Code);
        string line = Assert.Single(r.ErrLines);
        Assert.Contains(where, line);
        Assert.Contains(says, line);
        Assert.DoesNotContain(".NET", line);
        Assert.DoesNotContain("System.", line);
        Assert.False(Directory.Exists(Path.Combine(dir, "out")));
    }

    [Fact]
    public async Task ARefusedResumeNamesTheFieldThatDiffers()
    {
        string dir = SweepTestKit.TempDir("resume-diff");
        var store = new ResultsStore(dir);
        store.Open(SweepTestKit.SmallSpec());
        var e = Assert.Throws<SweepStoreException>(() => store.Open(SweepTestKit.SmallSpec(s => s with { Seed = 8 })));
        Assert.Contains("`seed` is 7 there, 8 now", e.Message);
        var target = Assert.Throws<SweepStoreException>(() => store.Open(SweepTestKit.SmallSpec(s =>
            s with { Workload = s.Workload! with { Target = s.Workload.Target! with { Threshold = 0.5 } } })));
        Assert.Contains("`workload.target.threshold` is 1 there, 0.5 now", target.Message);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task FitRefusesATargetOtherThanTheSweepsBeforeWriting()
    {
        string dir = SweepTestKit.TempDir("fit-target");
        string sweep = Path.Combine(dir, "sweep");
        new ResultsStore(sweep).Open(SweepTestKit.SmallSpec()); // target train_loss 1.0
        string outDir = Path.Combine(dir, "out");
        var r = await CliHarness.Run("fit", "--sweep", sweep, "--curvature", dir, "--target-loss", "0.3", "--out", outDir);
        Assert.Equal(2, r.Code);
        string line = Assert.Single(r.ErrLines);
        Assert.Contains("--target-loss 0.3 differs from the sweep's target (train_loss 1 in", line);
        Assert.False(Directory.Exists(outDir));
        // The sweep's own target passes this check (and then fails on the missing tables, not on the target).
        var same = await CliHarness.Run("fit", "--sweep", sweep, "--curvature", dir, "--target-loss", "1", "--out", outDir);
        Assert.Equal(2, same.Code);
        Assert.DoesNotContain("differs", same.Err);
    }

    [Fact]
    public async Task BatchSizesAboveTheDataSetAndAMissingDataDirAreFoundBeforeAnyTrial()
    {
        string dir = SweepTestKit.TempDir("precheck");
        var big = await CliHarness.Run("sweep", "--spec", WriteSpec(dir, Edit("[16, 64, 256]", "[16, 60000]")), "--out", Path.Combine(dir, "a"));
        Assert.Equal(2, big.Code);
        Assert.Contains("batch_sizes: 60000 exceed the 55000 training examples", Assert.Single(big.ErrLines));
        Assert.False(Directory.Exists(Path.Combine(dir, "a")));

        var noData = await CliHarness.Run("sweep", "--spec", WriteSpec(dir, SweepTestKit.SmallSpecJson, "s2.json"), "--out", Path.Combine(dir, "b"),
            "--data-dir", Path.Combine(dir, "no-such-data"));
        Assert.Equal(2, noData.Code);
        Assert.Contains("no-such-data", Assert.Single(noData.ErrLines));
        Assert.False(Directory.Exists(Path.Combine(dir, "b")));
    }

    [Fact]
    public async Task ABadCurvatureSectionIsFoundBeforeTheSweepAndNamedAsTheSpecs()
    {
        string dir = SweepTestKit.TempDir("curv-precheck");
        string outDir = Path.Combine(dir, "out");
        var checkpoint = await CliHarness.Run("validate", "--spec",
            WriteSpec(dir, Edit("\"jobs\": 3", "\"jobs\": 3, \"curvature\": { \"checkpoint\": \"halfway\" }")), "--out", outDir);
        Assert.Equal(2, checkpoint.Code);
        string line = Assert.Single(checkpoint.ErrLines);
        Assert.Contains("curvature.checkpoint", line);
        Assert.DoesNotContain("--checkpoint", line);
        Assert.False(Directory.Exists(Path.Combine(outDir, "sweep")));

        var examples = await CliHarness.Run("validate", "--spec",
            WriteSpec(dir, Edit("\"jobs\": 3", "\"jobs\": 3, \"curvature\": { \"examples\": 1 }"), "s2.json"), "--out", outDir);
        Assert.Equal(2, examples.Code);
        Assert.Contains("curvature: examples must be ≥ 2", Assert.Single(examples.ErrLines));
        Assert.False(Directory.Exists(Path.Combine(outDir, "sweep")));
    }

    [Theory]
    [InlineData("--target", "0")]
    [InlineData("--target", "-1")]
    [InlineData("--target", "NaN")]
    [InlineData("--pieces", "0")]
    [InlineData("--threads", "0")]
    [InlineData("--batch-sizes", "4,4,16")]
    public async Task SimulateRefusesValuesItCannotUse(string option, string value)
    {
        string outDir = Path.Combine(SweepTestKit.TempDir("sim-bad"), "out");
        var r = await CliHarness.Run("simulate", option, value, "--out", outDir);
        Assert.Equal(2, r.Code);
        Assert.Single(r.ErrLines);
        Assert.Contains(option == "--batch-sizes" ? "repeated" : option, r.Err);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public async Task ReportWithoutFitJsonIsAnInputErrorNamingTheFile()
    {
        // The tables are there (empty), fit.json is not: this used to end in a stack trace (exit 1).
        string dir = SweepTestKit.TempDir("report-nofit");
        foreach (var table in new[] { "measured", "predictions", "comparison", "errors", "scaling", "verdicts", "spectra" })
            File.WriteAllText(Path.Combine(dir, table + ".csv"), "");
        var r = await CliHarness.Run("report", dir);
        Assert.Equal(2, r.Code);
        Assert.Contains("fit.json", Assert.Single(r.ErrLines));
        Assert.DoesNotContain("   at ", r.Err);
    }

    // --- outcomes ---

    [Fact]
    public async Task ASweepWhoseEveryTrialCrashedSaysFailedAndExitsOne()
    {
        string dir = SweepTestKit.TempDir("all-crashed");
        var summary = await new SweepRunner(new SyntheticTrialRunner { Crashes = _ => true })
            .RunAsync(new SweepOptions(SweepTestKit.SmallSpec(), dir, Shard.All));
        Assert.True(summary.Complete);
        Assert.Equal("failed", SweepCommand.Outcome(summary));
        var r = await CliHarnessVerdict(summary, dir);
        Assert.Equal(1, r.Code);
        Assert.Contains("trial(s) crashed", r.Err);
        Assert.Contains("--retry-crashed", r.Err);

        // Some crashed, others reached: complete, exit 0, but the crashes are said.
        string some = SweepTestKit.TempDir("some-crashed");
        var partial = await new SweepRunner(new SyntheticTrialRunner { Crashes = t => t.Trial.Point.LearningRate > 1 })
            .RunAsync(new SweepOptions(SweepTestKit.SmallSpec(), some, Shard.All));
        Assert.StartsWith("complete with ", SweepCommand.Outcome(partial));
        var p = await CliHarnessVerdict(partial, some);
        Assert.Equal(0, p.Code);
        Assert.Contains("crashed", p.Err);
    }

    static Task<CliHarness.Outcome> CliHarnessVerdict(SweepSummary summary, string dir)
    {
        var (stdout, stderr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return Task.FromResult(new CliHarness.Outcome(SweepCommand.Verdict(summary, dir), o.ToString(), e.ToString())); }
        finally { Console.SetOut(stdout); Console.SetError(stderr); }
    }
}

/// <summary>Outcomes of real trials (#14 defect 5): what the record says is what ran.</summary>
public class TrialOutcomeTests
{
    static TrialConfig Config(string dataDir, double lr = 0.1, int batch = 32, int eval = 200) => new()
    {
        Model = new ModelSpec("mlp", HiddenWidths: [8]),
        Optimizer = new OptimizerSpec("sgd", lr),
        BatchSize = batch,
        Target = new Target(TargetMetric.TrainLoss, 0.01),
        MaxSteps = 5,
        Seed = 1,
        EvalExamples = eval,
        DataDir = dataDir,
    };

    static JsonNode Record(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "trial.json")))!;

    [Fact]
    public void AnOverflowingLearningRateDivergesAndEvalExamplesAreRecordedAsUsedAndAnOversizedBatchWritesNothing()
    {
        using var fixtures = new IdxFixtures().WriteValid(train: FashionMnist.ValidationExamples + 300, test: 20);

        string overflow = SweepTestKit.TempDir("lr-overflow");
        var diverged = TrialRunner.RunToDirectory(Config(fixtures.Directory, lr: 1e39), overflow);
        Assert.Equal(TrialStatus.Diverged, diverged.Record.Status);
        Assert.Contains("overflows float32", diverged.Record.DivergenceReason);
        Assert.Equal("diverged", Record(overflow)["status"]!.GetValue<string>());

        string clamped = SweepTestKit.TempDir("eval-clamp");
        TrialRunner.RunToDirectory(Config(fixtures.Directory, eval: 100_000), clamped);
        Assert.Equal(300, Record(clamped)["config"]!["eval_examples"]!.GetValue<int>());

        string oversized = SweepTestKit.TempDir("batch-too-big");
        var e = Assert.Throws<TrialConfigException>(() => TrialRunner.RunToDirectory(Config(fixtures.Directory, batch: 301), oversized));
        Assert.Contains("exceeds the 300 training examples", e.Message);
        Assert.False(File.Exists(Path.Combine(oversized, "trial.json")), "a refused trial left a trial.json saying running");
    }
}
