using NqmValidate.Common;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Torch.Tests.Sweeps;

public class ExperimentSpecTests
{
    static string Fault(string json)
    {
        var e = Assert.Throws<SpecException>(() => SpecLoader.Parse(json, "spec.json"));
        Assert.StartsWith("spec.json:", e.Message);
        return e.Message;
    }

    static string Edit(string from, string to)
    {
        Assert.Contains(from, SweepTestKit.SmallSpecJson);
        return SweepTestKit.SmallSpecJson.Replace(from, to);
    }

    [Fact]
    public void TheSmallSpecIsValidAndKeepsItsFields()
    {
        var spec = SweepTestKit.SmallSpec();
        Assert.Equal([16, 64, 256], spec.BatchSizes!);
        Assert.Equal(4000, spec.Budget!.StepsFor(16));   // 64000/16, clamped to max_steps
        Assert.Equal(250, spec.Budget.StepsFor(256));
        Assert.Equal(100, spec.Budget.StepsFor(100_000)); // min_steps
        Assert.Null(spec.Curvature);
        Assert.Equal(1, spec.Seeds);
    }

    [Theory]
    [InlineData("\"name\": \"sgd\"", "\"name\": \"rmsprop\"", "optimizers[0].name: must be one of `sgd`, `momentum`, `nesterov`, `adam`, `ema`, `kfac` (got \"rmsprop\")")]
    [InlineData("\"metric\": \"train_loss\"", "\"metric\": \"accuracy\"", "workload.target.metric: must be one of `train_loss`, `validation_error`")]
    [InlineData("\"min\": 0.005", "\"min\": -1", "optimizers[0].learning_rate.min: must be a finite number > 0")]
    [InlineData("\"points\": 7", "\"points\": 1", "optimizers[0].learning_rate.points: a grid over a range needs `points` >= 2")]
    [InlineData("\"trials\": 8,", "", "optimizers[1].trials: halton search needs `trials` >= 1")]
    [InlineData("\"max\": 0.5 } }", "\"max\": 1.5 } }", "optimizers[1].one_minus_momentum.max: 1 − β must be < 1")]
    [InlineData("[16, 64, 256]", "[16, 16]", "batch_sizes: duplicates")]
    [InlineData("\"name\": \"mlp\"", "\"name\": \"vgg\"", "workload.model.name: must be one of `mlp`, `cnn`, `cnn-narrow`, `cnn-wide`, `resnet`, `resnet-nonorm` (got \"vgg\")")]
    [InlineData("\"name\": \"mlp\"", "\"name\": \"cnn\"", "workload.model: hidden_widths applies to the mlp only")]
    [InlineData("\"jobs\": 3", "\"jobs\": 0", "jobs: must be >= 1 (got 0)")]
    [InlineData("\"jobs\": 3", "\"jobs\": 3, \"order\": \"random\"", "order: must be one of `predicted`, `canonical`")]
    [InlineData("\"budget\": { \"examples\": 64000,", "\"budget\": { \"steps\": 10, \"examples\": 64000,", "budget: give exactly one of `steps` and `examples`")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"one_minus_momentum\": { \"min\": 0.1, \"max\": 0.1 },", "optimizers[0].one_minus_momentum: not a key of `sgd`; allowed: name, search, trials, learning_rate, schedule.")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"cosine\" },", "optimizers[0].schedule.kind: must be one of `constant`, `linear`, `piecewise` (got \"cosine\")")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"linear\" },", "optimizers[0].schedule.decay_steps: a linear schedule in a sweep needs its decay length")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"linear\", \"decay_steps\": 500, \"final_fraction\": 2 },", "optimizers[0].schedule.final_fraction: must be in [0, 1] (got 2)")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"piecewise\", \"factors\": [1, 0.3] },", "optimizers[0].schedule.piece_steps: a piecewise schedule needs its piece length in steps")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"piecewise\", \"piece_steps\": 50, \"factors\": [1, 0] },", "optimizers[0].schedule.factors: a piecewise schedule needs one or more positive finite multipliers of the learning rate (got [1, 0])")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"linear\", \"decay_steps\": 500, \"piece_steps\": 50 },", "optimizers[0].schedule: piece_steps and factors belong to the piecewise schedule only")]
    [InlineData("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"constant\", \"decay_steps\": 500 },", "optimizers[0].schedule: decay_steps and final_fraction belong to the linear schedule only")]
    public void AnInvalidValueIsReportedWithItsFieldAndTheAllowedValues(string from, string to, string expected) =>
        Assert.Contains(expected, Fault(Edit(from, to)));

    [Fact]
    public void AnUnknownKeyIsAnErrorNamingIt()
    {
        string message = Fault(Edit("\"jobs\": 3", "\"jobs\": 3, \"jbos\": 4"));
        Assert.Contains("jbos", message);
    }

    [Fact]
    public void AnUnknownNestedKeyIsAnErrorNamingItsPath()
    {
        string message = Fault(Edit("\"hidden_widths\": [16]", "\"hiden_widths\": [16]"));
        Assert.Contains("unknown key `hiden_widths` in `workload.model`", message);
        // The keys allowed there, in the spec's own spelling (no .NET member or type names).
        Assert.Contains("allowed keys: name, hidden_widths, width_multiplier, blocks_per_stage", message);
        Assert.DoesNotContain(".NET", message);
    }

    [Fact]
    public void ADuplicatedKeyIsAnError() =>
        Assert.Contains("seed", Fault(Edit("\"seed\": 7,", "\"seed\": 7, \"seed\": 8,")), StringComparison.OrdinalIgnoreCase);

    [Fact]
    public void AMissingSectionIsNamed()
    {
        string message = Fault("{ \"name\": \"x\" }");
        Assert.Contains("workload: missing", message);
        Assert.Contains("batch_sizes: missing", message);
        Assert.Contains("optimizers: missing", message);
        Assert.Contains("budget: missing", message);
    }

    [Fact]
    public void CurvatureAndFitSectionsAreKeptAsRawJson()
    {
        var spec = SpecLoader.Parse(Edit("\"jobs\": 3", "\"jobs\": 3, \"curvature\": { \"examples\": 2048, \"anything\": [1, 2] }, \"fit\": { \"floor\": 0 }"), "s");
        Assert.Equal(2048, spec.Curvature!.Value.GetProperty("examples").GetInt32());
        Assert.Equal(0, spec.Fit!.Value.GetProperty("floor").GetInt32());
        // And they survive the round trip through DIR/spec.json.
        var again = SpecLoader.Parse(SpecLoader.ToJson(spec), "again");
        Assert.Equal(SpecLoader.ToJson(spec), SpecLoader.ToJson(again));
    }

    [Fact]
    public void AMissingFileIsNamed()
    {
        var e = Assert.Throws<SpecException>(() => SpecLoader.Load("/nonexistent/spec.json"));
        Assert.Contains("/nonexistent/spec.json", e.Message);
    }

    [Theory]
    [InlineData("fmnist-mlp-quick.json")]
    [InlineData("fmnist-mlp.json")]
    [InlineData("fmnist-cnn.json")]
    [InlineData("fmnist-resnet.json")]
    public void TheShippedExperimentsAreValid(string file)
    {
        string dir = AppContext.BaseDirectory;
        while (dir is not null && !Directory.Exists(Path.Combine(dir, "experiments"))) dir = Path.GetDirectoryName(dir)!;
        Assert.NotNull(dir);
        var spec = SpecLoader.Load(Path.Combine(dir!, "experiments", file));
        Assert.Equal(Path.GetFileNameWithoutExtension(file), spec.Name);
        // The sections `nqm validate` reads after the sweep are checked too (they are checked before it starts).
        NqmValidate.Curvature.CurvatureSpecFile.From(spec, file).ToRequest("out").Settings.Validate();
        NqmValidate.Validation.FitOptions.Parse(spec.Fit, file);
    }

    /// <summary>An optimizer entry's schedule reaches every trial's typed config; without one the trials run constant.</summary>
    [Fact]
    public void AScheduleInTheSpecIsEveryTrialsScheduleAndTheDefaultIsConstant()
    {
        var spec = SpecLoader.Parse(Edit("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"linear\", \"decay_steps\": 500, \"final_fraction\": 0.1 },"), "spec.json");
        var plan = SweepPlan.Create(spec);
        foreach (var study in plan.Chains.SelectMany(c => c.Studies))
        {
            var config = new TrialRequest(spec, study, study.Trials[0], 100).Config;
            if (study.Optimizer == "sgd")
                Assert.Equal(("linear", 500L, 0.1), (config.Optimizer.Schedule, config.Optimizer.DecaySteps!.Value, config.Optimizer.FinalFraction!.Value));
            else
                Assert.Equal(("constant", (long?)null, (double?)null), (config.Optimizer.Schedule, config.Optimizer.DecaySteps, config.Optimizer.FinalFraction));
        }
        var piecewise = SpecLoader.Parse(Edit("{ \"name\": \"sgd\",", "{ \"name\": \"sgd\", \"schedule\": { \"kind\": \"piecewise\", \"piece_steps\": 40, \"factors\": [1, 0.5, 0.1] },"), "spec.json");
        var sgd = SweepPlan.Create(piecewise).Chains.SelectMany(c => c.Studies).First(s => s.Optimizer == "sgd");
        var o = new TrialRequest(piecewise, sgd, sgd.Trials[0], 100).Config.Optimizer;
        Assert.Equal(("piecewise", 40L), (o.Schedule, o.PieceSteps!.Value));
        Assert.Equal([1, 0.5, 0.1], o.Factors!.Value.ToArray());
    }
}
