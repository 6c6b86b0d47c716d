using NqmValidate.Common;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>The EMA-of-iterates family: its update rule against the recurrence written out, and a trial evaluated at the average.</summary>
public class EmaFamilyTests(TrialData data) : IClassFixture<TrialData>
{
    sealed class Linear : nn.Module
    {
        public readonly Parameter W = new(tensor(new[] { 1.0, -2.0, 0.5 }, dtype: ScalarType.Float64));
        public Linear() : base("linear") => RegisterComponents();
    }

    [Fact]
    public void TheAverageFollowsTheRecurrenceAndTrainingWeightsComeBackAfterEvaluation()
    {
        TorchRuntime.Initialize(1);
        double[] w0 = [1.0, -2.0, 0.5], c = [0.3, -1.5, 2.0];
        const double lr = 0.1, gamma = 0.8;
        var model = new Linear();
        using var grad = tensor(c, dtype: ScalarType.Float64);
        using var rule = OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec("ema", lr, ("ema_decay", gamma)), 10), model);
        // Oracle: with a constant gradient SGD gives θ_t = θ0 − tηc, and θ̄_t = γθ̄_{t−1} + (1−γ)θ_t from θ̄_0 = θ0.
        var average = (double[])w0.Clone();
        for (int t = 1; t <= 5; t++)
        {
            using var loss = rule.Step(() => (model.W * grad).sum(), lr);
            var live = w0.Select((w, i) => w - t * lr * c[i]).ToArray();
            average = average.Select((a, i) => gamma * a + (1 - gamma) * live[i]).ToArray();
            using (rule.UseEvaluationWeights())
                Assert.Equal(average, model.W.detach().data<double>().ToArray(), (x, y) => Math.Abs(x - y) < 1e-12);
            Assert.Equal(live, model.W.detach().data<double>().ToArray(), (x, y) => Math.Abs(x - y) < 1e-12);
        }
    }

    static readonly TrialConfig Base = new()
    {
        Model = new ModelSpec("mlp", HiddenWidths: [32]),
        Optimizer = new OptimizerSpec("sgd", 0.1),
        BatchSize = 32,
        Target = new Target(TargetMetric.TrainLoss, 1e-4), // never met: the trial runs its budget and evaluates its last step
        MaxSteps = 12,
        Seed = 5,
        EvalExamples = 500,
    };

    [Fact]
    public void WithDecayZeroTheEmaTrialIsTheSgdTrial()
    {
        var sgd = TrialRunner.Run(Base, data.RealSmall).Curve;
        var ema = TrialRunner.Run(Base with { Optimizer = new OptimizerSpec("ema", 0.1, ("ema_decay", 0.0)) }, data.RealSmall).Curve;
        Assert.Equal(sgd.Select(p => (p.Step, p.MinibatchLoss, p.TrainLoss)), ema.Select(p => (p.Step, p.MinibatchLoss, p.TrainLoss)));
    }

    [Fact]
    public void TheTrialIsEvaluatedAtTheAverageOfItsSgdIterates()
    {
        const double gamma = 0.7;
        var record = TrialRunner.Run(Base with { Optimizer = new OptimizerSpec("ema", 0.1, ("ema_decay", gamma)) }, data.RealSmall).Record;
        Assert.Equal(TrialStatus.BudgetExhausted, record.Status);

        // Oracle: the same seed's SGD iterates θ_0 … θ_12 (TrainModel replays the trial), averaged by hand.
        Dictionary<string, Tensor>? average = null;
        for (long s = 0; s <= Base.MaxSteps; s++)
        {
            using var model = TrialRunner.TrainModel(Base, data.RealSmall, s);
            using var noGrad = no_grad();
            var weights = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
            if (average is null) average = weights;
            else foreach (var (name, w) in weights) { average[name].mul_(gamma).add_(w, alpha: 1 - gamma); w.Dispose(); }
        }
        using var probe = TrialRunner.TrainModel(Base, data.RealSmall, 0);
        using (no_grad())
            foreach (var (name, p) in probe.named_parameters()) p.copy_(average![name]);
        probe.eval();
        using var x = data.RealSmall.Train.Images.narrow(0, 0, Base.EvalExamples);
        using var y = data.RealSmall.Train.Labels.narrow(0, 0, Base.EvalExamples);
        double expected;
        using (no_grad()) expected = nn.functional.cross_entropy(probe.call(x), y).item<float>();
        Assert.Equal(expected, record.FinalLoss!.Value, 4);
        // And not at the live SGD weights, which are somewhere else after 12 steps.
        var sgd = TrialRunner.Run(Base, data.RealSmall).Record;
        Assert.True(Math.Abs(sgd.FinalLoss!.Value - record.FinalLoss.Value) > 1e-3, $"EMA {record.FinalLoss} vs SGD {sgd.FinalLoss}");
    }

    [Fact]
    public void ASweepSearchesOneMinusTheDecayAndTheTablesGetAnEmaDecayColumn()
    {
        var spec = SpecLoader.Parse(Sweeps.SweepTestKit.SmallSpecJson.Replace(
            "\"name\": \"sgd\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }",
            "\"name\": \"ema\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }, \"one_minus_ema_decay\": { \"min\": 0.01, \"max\": 0.1, \"points\": 2 }"), "test");
        var points = new SearchSpace(spec.Optimizers![0]).Points();
        Assert.Equal(14, points.Count);
        Assert.Equal([0.99, 0.9], points.Select(p => p.Point["ema_decay"]!.Value).Distinct().Order().Reverse());
        Assert.EndsWith(",steps_trained,ema_decay", SweepTables.StepsCsv(spec, []).TrimEnd());
        var e = Assert.Throws<SpecException>(() => SpecLoader.Parse(Sweeps.SweepTestKit.SmallSpecJson.Replace(
            "\"name\": \"sgd\", \"learning_rate\"", "\"name\": \"ema\", \"one_minus_momentum\": { \"min\": 0.1, \"max\": 0.1 }, \"learning_rate\""), "test"));
        Assert.Contains("one_minus_ema_decay", e.Message);
    }
}
