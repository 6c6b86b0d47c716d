using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Training;

public class TrialFilesTests
{
    [Fact]
    public void CurveCsvRoundTripsWithEmptyCellsForMissingEvaluations()
    {
        string dir = Directory.CreateTempSubdirectory("nqm-curve-").FullName;
        try
        {
            var points = new[]
            {
                new CurvePoint(0, 0, 0, null, 2.302585092994046, 2.31, 0.9),
                new CurvePoint(5, 640, 0.125, 1.2345678901234567, null, null, null, 0.1),
            };
            string path = Path.Combine(dir, CurveFile.FileName);
            CurveFile.Write(path, points);
            Assert.Equal("step,examples_seen,train_seconds,minibatch_loss,train_loss,validation_loss,validation_error,learning_rate",
                File.ReadLines(path).First());
            Assert.Equal("5,640,0.125,1.2345678901234567,,,,0.1", File.ReadLines(path).ElementAt(2));
            Assert.Equal(points, CurveFile.Read(path));
            Assert.Single(Directory.GetFiles(dir)); // no temporary file left behind
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TrialConfigFilesUseSnakeCaseAndRejectUnknownKeys()
    {
        string dir = Directory.CreateTempSubdirectory("nqm-config-").FullName;
        try
        {
            string good = Path.Combine(dir, "good.json");
            File.WriteAllText(good, """
                { "model": { "name": "cnn-narrow" }, "optimizer": { "name": "adam", "learning_rate": 0.001, "beta1": 0.8 },
                  "batch_size": 32, "target": { "metric": "validation_error", "threshold": 0.1 }, "max_steps": 50, "seed": 9 }
                """);
            var config = TrialConfig.Load(good);
            Assert.Equal(new ModelSpec("cnn-narrow"), config.Model);
            Assert.Equal(0.8, config.Optimizer["beta1"]);
            Assert.Equal(new Target(TargetMetric.ValidationError, 0.1), config.Target);
            Assert.Equal(128, new TrialConfig().BatchSize); // defaults stay for absent keys
            Assert.Equal(1, config.Threads);

            var resolved = config.Resolve();
            Assert.Equal(0.999, resolved.Optimizer["beta2"]);
            Assert.Equal(1.0, resolved.Model.WidthMultiplier);

            string bad = Path.Combine(dir, "bad.json");
            File.WriteAllText(bad, """{ "batch_sise": 32 }""");
            var e = Assert.Throws<TrialConfigException>(() => TrialConfig.Load(bad));
            Assert.Contains("bad.json", e.Message);
            Assert.Contains("batch_sise", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TrialRecordsWriteStatusInSnakeCaseAndReadBack()
    {
        string dir = Directory.CreateTempSubdirectory("nqm-record-").FullName;
        try
        {
            var record = new TrialRecord
            {
                Status = TrialStatus.BudgetExhausted, StepsRun = 10,
                Config = new TrialConfig { Target = new Target(TargetMetric.TrainLoss, 0.5), Optimizer = new OptimizerSpec("momentum", 0.1, ("momentum", 0.9)) },
                Versions = VersionInfo.Current(),
            };
            string path = Path.Combine(dir, "trial.json");
            TrialJson.Write(path, record);
            string text = File.ReadAllText(path);
            Assert.Contains("\"status\": \"budget_exhausted\"", text);
            Assert.Contains("\"metric\": \"train_loss\"", text);
            Assert.Contains("\"steps_to_target\": null", text);
            var back = TrialJson.Read<TrialRecord>(path);
            Assert.Equal(TrialStatus.BudgetExhausted, back.Status);
            Assert.Equal(record.Config.Optimizer, back.Config.Optimizer);
        }
        finally { Directory.Delete(dir, true); }
    }
}
