using NqmValidate.Formats;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Verification;
using NqmValidate.Validation;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// The sweep writes steps.csv and trials.csv from rows of the Formats types; what every reader (the Formats readers,
/// `nqm verify`'s RecordedRun, the validation's SweepResults) reads back from the files is those rows, for every
/// family's hyperparameter columns (placed and further) and several seeds. Over the synthetic trial (fast; its records
/// hold the planned point only, so every hyperparameter is searched here to reach the tables).
/// </summary>
public class SweepTableReadersTests
{
    const string Spec = """
    {
      "name": "readers",
      "seed": 5,
      "seeds": 2,
      "workload": { "model": { "name": "mlp", "hidden_widths": [16] }, "target": { "metric": "train_loss", "threshold": 1.0 } },
      "batch_sizes": [16, 128],
      "optimizers": [
        { "name": "sgd", "learning_rate": { "min": 0.005, "max": 5.0, "points": 5 } },
        { "name": "momentum", "search": "halton", "trials": 4, "learning_rate": { "min": 0.0005, "max": 0.5 }, "one_minus_momentum": { "min": 0.01, "max": 0.5 } },
        { "name": "adam", "search": "halton", "trials": 4, "learning_rate": { "min": 0.0005, "max": 0.5 }, "one_minus_beta1": { "min": 0.01, "max": 0.5 },
          "epsilon": { "min": 1e-8, "max": 1e-6 } },
        { "name": "ema", "search": "halton", "trials": 4, "learning_rate": { "min": 0.005, "max": 5.0 }, "one_minus_ema_decay": { "min": 0.001, "max": 0.1 } }
      ],
      "budget": { "examples": 64000, "min_steps": 100, "max_steps": 4000 },
      "jobs": 2
    }
    """;

    /// <summary>The row's hyperparameters that are table columns (beta2 is not one).</summary>
    static IReadOnlyDictionary<string, double> AsColumns(IReadOnlyDictionary<string, double> h, IReadOnlyList<string> further) =>
        HyperparameterColumns.Placed.Concat(further).Where(h.ContainsKey).ToDictionary(n => n, n => h[n]);

    [Fact]
    public async Task EveryReaderReadsBackTheRowsTheSweepWrote()
    {
        var spec = SpecLoader.Parse(Spec, "test spec");
        string dir = SweepTestKit.TempDir("readers");
        var summary = await new SweepRunner(new SyntheticTrialRunner()).RunAsync(new SweepOptions(spec, dir, Shard.All), null, default);
        Assert.True(summary.Complete);
        var plan = SweepPlan.Create(spec);
        var ordered = plan.Studies.Select(s => summary.Results.Single(r => r.Study.Id == s.Id)).ToList();

        var written = SweepTables.StepsRows(plan, ordered);
        var steps = StepsFile.Read(Path.Combine(dir, StepsFile.FileName));
        Assert.Equal(["ema_decay"], steps.FurtherHyperparameters);
        Assert.Equal(8, written.Count);
        Assert.Equal(written.Count, steps.Rows.Count);
        for (int i = 0; i < written.Count; i++)
        {
            Assert.Equal(written[i] with { Hyperparameters = steps.Rows[i].Hyperparameters }, steps.Rows[i]);
            Assert.Equal(AsColumns(written[i].Hyperparameters, steps.FurtherHyperparameters), steps.Rows[i].Hyperparameters);
        }
        Assert.Contains(steps.Rows, r => r.Hyperparameter("momentum") is not null);
        Assert.Contains(steps.Rows, r => r.Hyperparameter("beta1") is not null && r.Hyperparameter("epsilon") is not null);
        Assert.Contains(steps.Rows, r => r.Hyperparameter("ema_decay") is not null);

        var writtenTrials = SweepTables.TrialsRows(ordered);
        var trials = TrialsFile.Read(Path.Combine(dir, TrialsFile.FileName));
        var verify = RecordedRun.Open(dir).Rows;
        Assert.Equal(writtenTrials.Count, trials.Rows.Count);
        Assert.Equal(writtenTrials.Count, verify.Count);
        Assert.Contains(trials.Rows, r => r.Replicate == 1);
        for (int i = 0; i < writtenTrials.Count; i++)
        {
            Assert.Equal(writtenTrials[i] with { Hyperparameters = trials.Rows[i].Hyperparameters }, trials.Rows[i]);
            Assert.Equal(AsColumns(writtenTrials[i].Hyperparameters, trials.FurtherHyperparameters), trials.Rows[i].Hyperparameters);
            Assert.Equal(trials.Rows[i], verify[i] with { Hyperparameters = trials.Rows[i].Hyperparameters });
        }

        // The validation's view holds the same numbers as the rows it is built from.
        var sweep = SweepResults.Load(dir);
        Assert.Equal(written.Select(MeasuredStudy.From), sweep.Studies);
        Assert.Equal(writtenTrials.Select(MeasuredTrial.From), sweep.Trials);
    }
}
