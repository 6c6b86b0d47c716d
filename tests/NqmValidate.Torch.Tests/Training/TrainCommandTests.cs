using System.Diagnostics;
using NqmValidate.Cli;
using NqmValidate.Cli.Commands;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>`nqm train`: flags → configuration, exit codes, files, and a real SIGTERM.</summary>
public class TrainCommandTests
{
    static TrialConfig Parse(string args) => TrainCommand.ToConfig(NqmApp.BuildRoot().Parse("train --out x " + args));

    static int Invoke(params string[] args) => NqmApp.BuildRoot().Parse(args).Invoke();

    [Fact]
    public void AnyFamilyHyperparameterIsSetByNameAndCheckedByItsFamily()
    {
        var c = Parse("--optimizer ema --learning-rate 0.1 --hyperparameter ema_decay=0.95 --target-loss 1");
        Assert.Equal(0.95, c.Optimizer["ema_decay"]);
        Assert.Equal(0.95, c.Resolve().Optimizer["ema_decay"]);
        Assert.Contains("ema_decay", Assert.Throws<TrialConfigException>(() => Parse("--optimizer sgd --hyperparameter ema_decay=0.9 --target-loss 1").Resolve()).Message);
        Assert.Throws<TrialConfigException>(() => Parse("--optimizer ema --hyperparameter ema_decay --target-loss 1"));
    }

    [Fact]
    public void FlagsMapOntoTheConfiguration()
    {
        var c = Parse("--model mlp --hidden-widths 128,64 --optimizer nesterov --momentum 0.95 --learning-rate 0.05 --batch-size 256 " +
                      "--target-error 0.12 --max-steps 777 --seed 3 --threads 2 --device cpu --data-dir /d --eval-examples 500 " +
                      "--lr-schedule linear --decay-steps 100 --final-lr-fraction 0.1");
        Assert.Equal([128, 64], c.Model.HiddenWidths);
        Assert.Equal(("nesterov", 0.95, 0.05, "linear", 100L, 0.1),
            (c.Optimizer.Name, c.Optimizer["momentum"]!.Value, c.Optimizer.LearningRate, c.Optimizer.Schedule, c.Optimizer.DecaySteps!.Value, c.Optimizer.FinalFraction!.Value));
        Assert.Equal(new Target(TargetMetric.ValidationError, 0.12), c.Target);
        Assert.Equal((256, 777L, 3L, 2, "/d", 500), (c.BatchSize, c.MaxSteps, c.Seed, c.Threads, c.DataDir, c.EvalExamples));
    }

    [Fact]
    public void FlagsOverrideAConfigFile()
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("nqm-cfg-").FullName, "trial.json");
        File.WriteAllText(file, """{ "batch_size": 32, "seed": 8, "target": { "metric": "train_loss", "threshold": 0.4 } }""");
        var c = Parse($"--config {file} --seed 9");
        Assert.Equal((32, 9L), (c.BatchSize, c.Seed));
        Assert.Equal(0.4, c.Target!.Threshold);
        Assert.Equal(new Target(TargetMetric.ValidationError, 0.2), Parse($"--config {file} --target-error 0.2").Target);
    }

    [Fact]
    public void BadInputExitsWithTwo()
    {
        string outDir = Directory.CreateTempSubdirectory("nqm-bad-").FullName;
        string noData = Path.Combine(outDir, "no-such-data");
        Assert.Equal(ExitCodes.BadInput, Invoke("train", "--target-loss", "0.5", "--data-dir", noData, "--out", outDir));
        Assert.Equal(ExitCodes.BadInput, Invoke("train", "--target-loss", "0.5", "--target-error", "0.1", "--out", outDir));
        Assert.Equal(ExitCodes.BadInput, Invoke("train", "--out", outDir)); // no target
        Assert.Equal(ExitCodes.BadInput, Invoke("train", "--target-loss", "0.5", "--model", "vgg", "--out", outDir));
        Assert.Equal(ExitCodes.BadInput, Invoke("train", "--target-loss", "0.5", "--optimizer", "sgd", "--momentum", "0.9", "--out", outDir));
        // This machine has no CUDA build of TorchSharp: a clear refusal, not a crash.
        Assert.Equal(ExitCodes.BadInput, Invoke("train", "--target-loss", "0.5", "--device", "cuda", "--out", outDir));
    }

    [Fact]
    public void SigtermStopsATrialWhichRecordsInterruptedAndExits130()
    {
        using var fixtures = new IdxFixtures().WriteValid(train: 5100, test: 20);
        string outDir = Directory.CreateTempSubdirectory("nqm-sigterm-").FullName;
        string nqm = Path.Combine(AppContext.BaseDirectory, "nqm.dll");
        Assert.True(File.Exists(nqm), $"{nqm} missing: the test project must reference the CLI");
        // A small learning rate: the trial must still be training (not diverged) when the signal arrives.
        var psi = new ProcessStartInfo("dotnet", ["exec", nqm, "train", "--target-loss", "0.0001", "--max-steps", "10000000", "--batch-size", "4", "--learning-rate", "0.001",
            "--hidden-widths", "8", "--eval-examples", "100", "--data-dir", fixtures.Directory, "--out", outDir, "--quiet"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        string trialJson = Path.Combine(outDir, "trial.json");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(trialJson) && clock.Elapsed < TimeSpan.FromSeconds(60) && !process.HasExited) Thread.Sleep(100);
        Thread.Sleep(1500); // let it train a little
        Process.Start("kill", ["-TERM", process.Id.ToString()])!.WaitForExit();
        Assert.True(process.WaitForExit(30_000), "nqm train did not stop after SIGTERM");
        string stderr = process.StandardError.ReadToEnd();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.ExitCode == ExitCodes.Interrupted, $"exit code {process.ExitCode}; stdout: {stdout}; stderr: {stderr}");
        var record = TrialJson.Read<TrialRecord>(trialJson);
        Assert.Equal(TrialStatus.Interrupted, record.Status);
        Assert.True(File.Exists(Path.Combine(outDir, CurveFile.FileName)));
        Directory.Delete(outDir, true);
    }
}
