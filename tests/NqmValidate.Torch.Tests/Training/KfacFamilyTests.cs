using NqmValidate.Common;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// K-FAC: its Kronecker factors against an explicit per-example loop, its update against a dense solve of
/// (F + λI)⁻¹g, a short real training run, and its hyperparameters refused by name.
/// </summary>
public class KfacFamilyTests(TrialData data) : IClassFixture<TrialData>
{
    const ScalarType F64 = ScalarType.Float64;

    static KfacRule Rule(nn.Module model, double lr = 0.1, double momentum = 0.9, double damping = 0.01, double decay = 0.95, int every = 10) =>
        (KfacRule)OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec("kfac", lr,
            ("momentum", momentum), ("damping", damping), ("factor_decay", decay), ("inverse_every", every)), 10), model);

    static void AssertClose(Tensor expected, Tensor actual, string what, double tolerance = 1e-10)
    {
        double scale = Math.Max(1e-12, expected.abs().max().item<double>());
        double error = (expected - actual).abs().max().item<double>();
        Assert.True(error <= tolerance * scale, $"{what}: max error {error:G3} at scale {scale:G3}");
    }

    static Tensor WithOne(Tensor a) => cat([a, ones(1, dtype: a.dtype)]);

    static Dictionary<string, Tensor> Snapshot(nn.Module model)
    {
        using var noGrad = no_grad();
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    [Fact]
    public void LinearFactorsAreThePerExampleMomentsOfInputsAndLossGradients()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(11);
        var fc1 = nn.Linear(4, 5, dtype: F64);
        var fc2 = nn.Linear(5, 3, dtype: F64);
        var model = nn.Sequential(("fc1", fc1), ("act", nn.Tanh()), ("fc2", fc2));
        var x = randn(6, 4, dtype: F64, generator: gen);
        var y = randint(0, 3, [6], generator: gen);

        // Oracle, before the step moves the weights: one example at a time, its own loss, its gradients with respect to
        // each layer's pre-activation. A = mean [x;1][x;1]ᵀ, S = mean g gᵀ.
        var (a1, s1, a2, s2) = (zeros(5, 5, dtype: F64), zeros(5, 5, dtype: F64), zeros(6, 6, dtype: F64), zeros(3, 3, dtype: F64));
        for (int n = 0; n < 6; n++)
        {
            var xn = x[n];
            var u = fc1.call(xn.unsqueeze(0));
            var h = tanh(u);
            var z = fc2.call(h);
            var loss = nn.functional.cross_entropy(z, y[n].unsqueeze(0));
            var g = torch.autograd.grad([loss], [u, z]);
            var (ain, hid) = (WithOne(xn), WithOne(h.detach()[0]));
            a1.add_(outer(ain, ain)); s1.add_(outer(g[0][0], g[0][0]));
            a2.add_(outer(hid, hid)); s2.add_(outer(g[1][0], g[1][0]));
        }
        foreach (var t in new[] { a1, s1, a2, s2 }) t.div_(6);

        using var rule = Rule(model, decay: 0.95); // the running average starts at the first batch's factors
        rule.Step(() => nn.functional.cross_entropy(model.call(x), y), 0.1);
        var factors = rule.Factors();
        Assert.Equal(["fc1", "fc2"], factors.Select(f => f.Layer));
        AssertClose(a1, factors[0].A, "A fc1"); AssertClose(s1, factors[0].S, "S fc1");
        AssertClose(a2, factors[1].A, "A fc2"); AssertClose(s2, factors[1].S, "S fc2");
    }

    [Fact]
    public void ConvolutionFactorsTakePositionsAsExamplesInAAndSumThemInS()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(12);
        var conv = nn.Conv2d(2, 3, 3, padding: 1, dtype: F64);
        var fc = nn.Linear(3 * 4 * 4, 4, dtype: F64);
        var model = nn.Sequential(("conv", conv), ("act", nn.ReLU()), ("flat", nn.Flatten()), ("fc", fc));
        const int B = 3, T = 16;
        var x = randn(B, 2, 4, 4, dtype: F64, generator: gen);
        var y = randint(0, 4, [B], generator: gen);

        // Oracle: each example alone; its patches cut out of the zero-padded input by hand (channel, kernel row, kernel
        // column: the layout of weight.reshape(out, -1)); A = mean over examples and positions of [p;1][p;1]ᵀ,
        // S = mean over examples of Σ_positions g gᵀ (KFC).
        var (aConv, sConv) = (zeros(19, 19, dtype: F64), zeros(3, 3, dtype: F64));
        var (aFc, sFc) = (zeros(49, 49, dtype: F64), zeros(4, 4, dtype: F64));
        for (int n = 0; n < B; n++)
        {
            var xn = x[n].unsqueeze(0);
            var u = conv.call(xn);
            var h = nn.functional.relu(u).flatten(1);
            var z = fc.call(h);
            var loss = nn.functional.cross_entropy(z, y[n].unsqueeze(0));
            var g = torch.autograd.grad([loss], [u, z]);
            var padded = nn.functional.pad(x[n], [1, 1, 1, 1]);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                {
                    var p = WithOne(padded.narrow(1, i, 3).narrow(2, j, 3).reshape(-1));
                    aConv.add_(outer(p, p));
                    var gt = g[0][0].select(1, i).select(1, j);
                    sConv.add_(outer(gt, gt));
                }
            var hid = WithOne(h.detach()[0]);
            aFc.add_(outer(hid, hid)); sFc.add_(outer(g[1][0], g[1][0]));
        }
        aConv.div_(B * T); sConv.div_(B); aFc.div_(B); sFc.div_(B);

        using var rule = Rule(model, decay: 0.5);
        rule.Step(() => nn.functional.cross_entropy(model.call(x), y), 0.1);
        var factors = rule.Factors();
        Assert.Equal(["conv", "fc"], factors.Select(f => f.Layer));
        AssertClose(aConv, factors[0].A, "A conv"); AssertClose(sConv, factors[0].S, "S conv");
        AssertClose(aFc, factors[1].A, "A fc"); AssertClose(sFc, factors[1].S, "S fc");
    }

    [Fact]
    public void WhereTheFisherIsExactlyKroneckerTheStepIsTheDenseDampedNewtonStep()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(13);
        var layer = nn.Linear(3, 4, dtype: F64);
        // Every example has the same input and its own label: the empirical Fisher (1/B) Σ vec(g_n aᵀ) vec(g_n aᵀ)ᵀ is
        // then exactly (a aᵀ) ⊗ mean(g gᵀ), the one case K-FAC's block is not an approximation.
        const int B = 5;
        var x = randn(1, 3, dtype: F64, generator: gen).expand(B, 3).contiguous();
        var y = tensor(new long[] { 0, 1, 2, 3, 1 });
        const double lr = 0.3, damping = 0.02;

        // Oracle: per-example gradients J_n = (∂W, ∂b) flattened, F = mean J_n J_nᵀ, ḡ = mean J_n, Δθ = −η (F + λI)⁻¹ ḡ.
        var rows = new List<Tensor>();
        for (int n = 0; n < B; n++)
        {
            var loss = nn.functional.cross_entropy(layer.call(x[n].unsqueeze(0)), y[n].unsqueeze(0));
            var g = torch.autograd.grad([loss], [layer.weight!, layer.bias!]);
            rows.Add(cat([g[0].flatten(), g[1]]));
        }
        var j = stack(rows);
        var fisher = j.t().matmul(j).div(B);
        var gradient = j.mean([0]);
        var step = -lr * linalg.solve(fisher + damping * eye(16, dtype: F64), gradient);

        var before = Snapshot(layer);
        using var rule = Rule(layer, lr, momentum: 0.9, damping: damping); // the velocity starts at the first direction
        rule.Step(() => nn.functional.cross_entropy(layer.call(x), y), lr);
        var after = Snapshot(layer);
        var actual = cat([(after["weight"] - before["weight"]).flatten(), after["bias"] - before["bias"]]);
        AssertClose(step, actual, "Δθ", 1e-9);
        // Not the SGD step: the preconditioner is doing something.
        Assert.True((actual + lr * gradient).abs().max().item<double>() > 1e-3);
    }

    /// <summary>(A ⊗ S + λI)⁻¹ applied to a layer's [∂W | ∂b], densely: column-major vec(S G A) = (A ⊗ S) vec(G).</summary>
    static Tensor DenseDirection(Tensor a, Tensor s, Tensor g, double damping)
    {
        long n = a.shape[0] * s.shape[0];
        var x = linalg.solve(kron(a, s) + damping * eye(n, dtype: F64), g.t().flatten());
        return x.reshape(a.shape[0], s.shape[0]).t();
    }

    static Tensor LayerGradient(Linear layer, Tensor[] g) => cat([g[0], g[1].unsqueeze(1)], 1);

    [Fact]
    public void StepsAreHeavyBallOnTheDampedKroneckerDirectionWithEigenbasesRefreshedEveryTSteps()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(14);
        static Sequential Net() => nn.Sequential(("fc1", nn.Linear(4, 5, dtype: F64)), ("act", nn.Tanh()), ("fc2", nn.Linear(5, 3, dtype: F64)));
        var model = Net();
        var fresh = Net(); // the same weights; decay 0, so its factors are each batch's own
        using (no_grad())
            foreach (var (p, q) in model.parameters().Zip(fresh.parameters())) q.copy_(p);
        var x = randn(2, 8, 4, dtype: F64, generator: gen);
        var y = randint(0, 3, [2, 8], generator: gen);
        const double lr = 0.2, mu = 0.8, rho = 0.7, damping = 0.05;
        using var rule = Rule(model, lr, mu, damping, rho, every: 2);
        using var batchOnly = Rule(fresh, lr, mu, damping, 0.0, every: 2);
        Linear[] layers = [(Linear)model.children().ElementAt(0), (Linear)model.children().ElementAt(2)];

        Tensor[] Gradients(int t)
        {
            var loss = nn.functional.cross_entropy(model.call(x[t]), y[t]);
            var g = torch.autograd.grad([loss], layers.SelectMany(l => new Tensor[] { l.weight!, l.bias! }).ToList());
            return [LayerGradient(layers[0], [g[0], g[1]]), LayerGradient(layers[1], [g[2], g[3]])];
        }

        // Step 1: each layer moves by −η (A₁ ⊗ S₁ + λI)⁻¹ g₁ (the velocity starts at the first direction).
        var g1 = Gradients(0);
        var before = Snapshot(model);
        rule.Step(() => nn.functional.cross_entropy(model.call(x[0]), y[0]), lr);
        batchOnly.Step(() => nn.functional.cross_entropy(fresh.call(x[0]), y[0]), lr);
        var f1 = rule.Factors();
        var d1 = Enumerable.Range(0, 2).Select(i => DenseDirection(f1[i].A, f1[i].S, g1[i], damping)).ToArray();
        var after1 = Snapshot(model);
        for (int i = 0; i < 2; i++)
            AssertClose(-lr * d1[i], Moved(before, after1, i), $"step 1 layer {i}", 1e-8);

        // Step 2 (T = 2: no refresh): the factors average (ρ A₁ + (1 − ρ) A_batch), but the direction still uses step 1's
        // eigenbasis, i.e. A₁ and S₁; heavy ball: v₂ = μ d₁ + d₂.
        var g2 = Gradients(1);
        rule.Step(() => nn.functional.cross_entropy(model.call(x[1]), y[1]), lr);
        batchOnly.Step(() => nn.functional.cross_entropy(fresh.call(x[1]), y[1]), lr);
        var after2 = Snapshot(model);
        var (f2, batch2) = (rule.Factors(), batchOnly.Factors());
        for (int i = 0; i < 2; i++)
        {
            AssertClose(rho * f1[i].A + (1 - rho) * batch2[i].A, f2[i].A, $"averaged A layer {i}");
            AssertClose(rho * f1[i].S + (1 - rho) * batch2[i].S, f2[i].S, $"averaged S layer {i}");
            var d2 = DenseDirection(f1[i].A, f1[i].S, g2[i], damping);
            AssertClose(-lr * (mu * d1[i] + d2), Moved(after1, after2, i), $"step 2 layer {i}", 1e-8);
        }
    }

    static Tensor Moved(Dictionary<string, Tensor> from, Dictionary<string, Tensor> to, int layer)
    {
        string name = layer == 0 ? "fc1" : "fc2";
        return cat([to[name + ".weight"] - from[name + ".weight"], (to[name + ".bias"] - from[name + ".bias"]).unsqueeze(1)], 1);
    }

    [Fact]
    public void AShortFashionMnistRunLearnsWithoutDiverging()
    {
        var config = new TrialConfig
        {
            Model = new ModelSpec("mlp", HiddenWidths: [32]),
            Optimizer = new OptimizerSpec("kfac", 0.02),
            BatchSize = 64,
            Target = new Target(TargetMetric.TrainLoss, 1e-4), // never met: the trial runs its budget
            MaxSteps = 60,
            Seed = 3,
            EvalExamples = 500,
            LogEvery = 20,
        };
        var record = TrialRunner.Run(config, data.RealSmall).Record;
        Assert.Equal(TrialStatus.BudgetExhausted, record.Status);
        Assert.True(record.FinalLoss < 0.6 * record.InitialLoss, $"initial {record.InitialLoss}, final {record.FinalLoss}");
    }

    [Fact]
    public void BadHyperparametersAreRefusedByNameAndASweepSearchesTheDamping()
    {
        var e = Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("kfac", 0.1, ("damping", 0.0)), 10));
        Assert.Contains("damping", e.Message);
        e = Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("kfac", 0.1, ("inverse_every", 2.5)), 10));
        Assert.Contains("inverse_every must be in [1, ∞) (whole numbers), got 2.5", e.Message);
        var resolved = OptimizerFamilies.Resolve(new OptimizerSpec("kfac", 0.1), 10);
        Assert.Equal((0.9, KfacFamily.DefaultDamping, 0.95, 10.0),
            (resolved["momentum"], resolved["damping"], resolved["factor_decay"], resolved["inverse_every"]));

        const string sgd = "\"name\": \"sgd\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }";
        var spec = SpecLoader.Parse(Sweeps.SweepTestKit.SmallSpecJson.Replace(sgd,
            "\"name\": \"kfac\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }, \"damping\": { \"min\": 0.001, \"max\": 0.1, \"points\": 3 }"), "test");
        Assert.Equal([0.001, 0.01, 0.1], new SearchSpace(spec.Optimizers![0]).Points().Select(p => p.Point["damping"]!.Value).Distinct().Order()
            .Select(v => Math.Round(v, 12)));
        // momentum has its own column already; the others follow as the family's further hyperparameters.
        Assert.EndsWith(",steps_trained,damping,factor_decay,inverse_every", SweepTables.StepsCsv(spec, []).TrimEnd());
        var fault = Assert.Throws<SpecException>(() => SpecLoader.Parse(Sweeps.SweepTestKit.SmallSpecJson.Replace(sgd,
            "\"name\": \"kfac\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }, \"inverse_every\": 0"), "test"));
        Assert.Contains("inverse_every: must be in [1, ∞) (whole numbers)", fault.Message);
    }
    [Fact]
    public void TheNqmCounterpartRunsAtTheDampingTheTrialsRanWith()
    {
        const string sgd = "\"name\": \"sgd\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }";
        IReadOnlyList<string> Counterparts(string damping) => Cli.Commands.FitCommand.NqmCounterparts(SpecLoader.Parse(
            Sweeps.SweepTestKit.SmallSpecJson.Replace(sgd, "\"name\": \"kfac\", \"learning_rate\": { \"min\": 0.005, \"max\": 5.0, \"points\": 7 }" + damping),
            "test"))["kfac"];
        Assert.Equal(["precond-p1-d0.1", "precond-p1"], Counterparts(""));
        Assert.Equal(["precond-p1-d0.03", "precond-p1"], Counterparts(", \"damping\": { \"min\": 0.03, \"max\": 0.03 }"));
        // Searched: the NQM does not search λ; one damped counterpart at the range's geometric midpoint.
        Assert.Equal(["precond-p1-d0.01", "precond-p1"], Counterparts(", \"damping\": { \"min\": 0.001, \"max\": 0.1, \"points\": 3 }"));
        // Without a spec (or without a kfac entry) the default.
        Assert.Equal(["precond-p1-d0.1", "precond-p1"], Cli.Commands.FitCommand.NqmCounterparts(null)["kfac"]);
    }
}
