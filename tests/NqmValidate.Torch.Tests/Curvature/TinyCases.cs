using NqmValidate.Curvature;
using NqmValidate.Training.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>A tiny network, its data and loss: the shared cases every curvature estimator is checked on.</summary>
public sealed record TinyCase(string Name, nn.Module<Tensor, Tensor> Model, Tensor Inputs, Tensor Targets, LossKind Loss)
{
    public override string ToString() => Name;
    public long Examples => Inputs.shape[0];
    public long Classes => Targets.dim() == 1 ? Model.call(Inputs.narrow(0, 0, 1)).shape[1] : Targets.shape[1];
}

/// <summary>Two convolutions and a linear read-out, called through module.call so forward hooks fire.</summary>
public sealed class TinyCnn : nn.Module<Tensor, Tensor>
{
    readonly Conv2d conv1 = nn.Conv2d(2, 3, 3, padding: 1, dtype: ScalarType.Float64);
    readonly Conv2d conv2 = nn.Conv2d(3, 4, 2, stride: 2, dtype: ScalarType.Float64);
    readonly Linear fc = nn.Linear(36, 3, dtype: ScalarType.Float64);

    public TinyCnn() : base(nameof(TinyCnn)) => RegisterComponents();

    public override Tensor forward(Tensor x)
    {
        var h = nn.functional.tanh(conv1.call(x));
        h = nn.functional.tanh(conv2.call(h));
        return fc.call(h.flatten(1));
    }
}

public static class TinyCases
{
    /// <summary>Sets every parameter from its own generator so cases are reproducible while tests run in parallel.</summary>
    public static T Seeded<T>(T model, long seed, double scale = 0.5) where T : nn.Module
    {
        var gen = new Generator((ulong)seed);
        using (no_grad())
            foreach (var p in model.parameters())
                p.copy_(randn(p.shape, dtype: ScalarType.Float64, generator: gen) * scale);
        return model;
    }

    public static TinyCase Mlp(long examples = 12, LossKind loss = LossKind.CrossEntropy)
    {
        TorchRuntime.Initialize(1);
        var model = Seeded(nn.Sequential(
            ("fc1", nn.Linear(5, 7, dtype: ScalarType.Float64)), ("act", nn.Tanh()),
            ("fc2", nn.Linear(7, 4, dtype: ScalarType.Float64))), 11);
        var gen = new Generator(12);
        var x = randn(examples, 5, dtype: ScalarType.Float64, generator: gen);
        var y = loss == LossKind.CrossEntropy
            ? randint(0, 4, [examples], generator: gen)
            : randn(examples, 4, dtype: ScalarType.Float64, generator: gen);
        return new TinyCase($"mlp-{loss}", model, x, y, loss);
    }

    public static TinyCase Cnn(long examples = 10)
    {
        TorchRuntime.Initialize(1);
        var model = Seeded(new TinyCnn(), 21);
        var gen = new Generator(22);
        var x = randn(examples, 2, 6, 6, dtype: ScalarType.Float64, generator: gen);
        var y = randint(0, 3, [examples], generator: gen);
        return new TinyCase("cnn", model, x, y, LossKind.CrossEntropy);
    }

    /// <summary>An MLP with a LayerNorm: a parameterised layer with no fast rule, so it must loop.</summary>
    public static TinyCase MlpWithLayerNorm(long examples = 9)
    {
        TorchRuntime.Initialize(1);
        var model = Seeded(nn.Sequential(
            ("fc1", nn.Linear(4, 6, dtype: ScalarType.Float64)), ("norm", nn.LayerNorm(6, dtype: ScalarType.Float64)),
            ("act", nn.Tanh()), ("fc2", nn.Linear(6, 3, dtype: ScalarType.Float64))), 31);
        var gen = new Generator(32);
        var x = randn(examples, 4, dtype: ScalarType.Float64, generator: gen);
        var y = randint(0, 3, [examples], generator: gen);
        return new TinyCase("mlp-layernorm", model, x, y, LossKind.CrossEntropy);
    }

    /// <summary>A Linear applied to every position of a (B, T, in) input: per-example gradients sum over positions.</summary>
    public static TinyCase SequenceMlp(long examples = 8)
    {
        TorchRuntime.Initialize(1);
        var model = Seeded(nn.Sequential(
            ("embed", nn.Linear(4, 5, dtype: ScalarType.Float64)), ("act", nn.Tanh()), ("flat", nn.Flatten()),
            ("head", nn.Linear(15, 3, dtype: ScalarType.Float64))), 41);
        var gen = new Generator(42);
        var x = randn(examples, 3, 4, dtype: ScalarType.Float64, generator: gen);
        var y = randint(0, 3, [examples], generator: gen);
        return new TinyCase("sequence-mlp", model, x, y, LossKind.CrossEntropy);
    }

    public static IEnumerable<object[]> All() =>
    [
        [Mlp()], [Mlp(loss: LossKind.MeanSquaredError)], [Cnn()], [MlpWithLayerNorm()], [SequenceMlp()],
    ];

    /// <summary>The oracle: per-example gradients by one backward pass per example, flattened in parameter order.</summary>
    public static double[][] PerExampleGradientsByLoop(TinyCase c)
    {
        var parameters = c.Model.parameters().Select(p => (Tensor)p).ToList();
        var rows = new double[c.Examples][];
        for (long n = 0; n < c.Examples; n++)
        {
            using var scope = NewDisposeScope();
            var z = c.Model.call(c.Inputs.narrow(0, n, 1));
            var y = c.Targets.narrow(0, n, 1);
            var loss = c.Loss == LossKind.CrossEntropy
                ? nn.functional.cross_entropy(z, y)
                : 0.5 * (z - y).square().sum();
            var grads = torch.autograd.grad([loss], parameters);
            rows[n] = cat(grads.Select(g => g.flatten()).ToList()).data<double>().ToArray();
        }
        return rows;
    }

    public static double RelativeError(double[] actual, double[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++) { diff += Math.Pow(actual[i] - expected[i], 2); norm += expected[i] * expected[i]; }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-300);
    }
}
