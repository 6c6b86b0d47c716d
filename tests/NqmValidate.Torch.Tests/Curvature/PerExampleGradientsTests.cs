using NqmValidate.Curvature;
using NqmValidate.Curvature.PerExample;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>The fast path (hooks + (gy²)ᵀ(x²) / unfold) and the loop path against a per-example backward loop.</summary>
public class PerExampleGradientsTests
{
    const double Tolerance = 1e-6;

    public static IEnumerable<object[]> Cases() => TinyCases.All();

    [Theory]
    [MemberData(nameof(Cases))]
    public void SumsOfSquaredAndOfPerExampleGradientsMatchTheLoop(TinyCase c)
    {
        foreach (var policy in new[] { PathPolicy.Auto, PathPolicy.ForceLoop })
        {
            using var engine = new PerExampleGradients(c.Model, policy);
            // Two chunks, to exercise accumulation across chunks.
            long half = c.Examples / 2;
            foreach (var (start, length) in new[] { (0L, half), (half, c.Examples - half) })
            {
                var y = c.Targets.narrow(0, start, length);
                engine.AccumulateChunk(c.Inputs.narrow(0, start, length),
                    z => [new SeedGroup("truth", [OutputLoss.Gradient(c.Loss, z, y)], KeepSum: true)]);
            }
            var (expectedSq, expectedSum) = LoopSums(c);

            var actualSq = engine.Parameters.SelectMany(p => engine.SumOfSquares("truth", p.Name)).ToArray();
            var actualSum = engine.Parameters.SelectMany(p => engine.Sum("truth", p.Name)).ToArray();
            Assert.True(TinyCases.RelativeError(actualSq, expectedSq) <= Tolerance, $"{policy}: sum of squares rel. err {TinyCases.RelativeError(actualSq, expectedSq):g3}");
            Assert.True(TinyCases.RelativeError(actualSum, expectedSum) <= Tolerance, $"{policy}: sum rel. err {TinyCases.RelativeError(actualSum, expectedSum):g3}");
        }
    }

    /// <summary>The oracle: sums of squares and sums of the per-example gradients computed one example at a time.</summary>
    static (double[] SumOfSquares, double[] Sum) LoopSums(TinyCase c)
    {
        var oracle = TinyCases.PerExampleGradientsByLoop(c);
        var sq = new double[oracle[0].Length];
        var sum = new double[oracle[0].Length];
        foreach (var row in oracle)
            for (int i = 0; i < row.Length; i++) { sq[i] += row[i] * row[i]; sum[i] += row[i]; }
        return (sq, sum);
    }

    /// <summary>
    /// Convolutions with dilation, stride, rectangular kernels and unequal padding, on inputs large enough that the
    /// per-example products go through in several sub-batches (8 MB of temporaries each: here 21 + 19 examples).
    /// </summary>
    [Fact]
    public void StridedDilatedConvolutionsMatchTheLoop()
    {
        var c = StridedDilatedCnn(examples: 40);
        var (expectedSq, expectedSum) = LoopSums(c);
        using var engine = new PerExampleGradients(c.Model);
        // Two groups, the first with two seeds: several output gradients share each sub-batch's patches.
        engine.AccumulateChunk(c.Inputs, z =>
        [
            new SeedGroup("truth", [OutputLoss.Gradient(c.Loss, z, c.Targets)], KeepSum: true),
            new SeedGroup("twice", [OutputLoss.Gradient(c.Loss, z, c.Targets), OutputLoss.Gradient(c.Loss, z, c.Targets)], KeepSum: true),
        ]);
        Assert.All(engine.Layers, l => Assert.Equal(LayerPath.Fast, l.Path));
        var actualSq = engine.Parameters.SelectMany(p => engine.SumOfSquares("truth", p.Name)).ToArray();
        var actualSum = engine.Parameters.SelectMany(p => engine.Sum("truth", p.Name)).ToArray();
        var twiceSq = engine.Parameters.SelectMany(p => engine.SumOfSquares("twice", p.Name, 0.5)).ToArray();
        Assert.True(TinyCases.RelativeError(actualSq, expectedSq) <= Tolerance, $"sum of squares rel. err {TinyCases.RelativeError(actualSq, expectedSq):g3}");
        Assert.True(TinyCases.RelativeError(actualSum, expectedSum) <= Tolerance, $"sum rel. err {TinyCases.RelativeError(actualSum, expectedSum):g3}");
        Assert.True(TinyCases.RelativeError(twiceSq, expectedSq) <= Tolerance, $"two seeds: rel. err {TinyCases.RelativeError(twiceSq, expectedSq):g3}");
    }

    static TinyCase StridedDilatedCnn(long examples)
    {
        NqmValidate.Training.Runtime.TorchRuntime.Initialize(1);
        var model = TinyCases.Seeded(TorchSharp.torch.nn.Sequential(
            ("conv1", TorchSharp.torch.nn.Conv2d(2, 3, (3, 2), stride: (2, 1), padding: (1, 2), dilation: (2, 1), dtype: ScalarType.Float64)),
            ("act1", TorchSharp.torch.nn.Tanh()),
            ("conv2", TorchSharp.torch.nn.Conv2d(3, 4, (2, 3), stride: (1, 2), dilation: (1, 2), bias: false, dtype: ScalarType.Float64)),
            ("act2", TorchSharp.torch.nn.Tanh()), ("flat", TorchSharp.torch.nn.Flatten()),
            ("fc", TorchSharp.torch.nn.Linear(4 * 30 * 64, 3, dtype: ScalarType.Float64))), 51, scale: 0.1);
        var gen = new TorchSharp.torch.Generator(52);
        var x = randn(examples, 2, 64, 128, dtype: ScalarType.Float64, generator: gen);
        var y = randint(0, 3, [examples], generator: gen);
        return new TinyCase("strided-dilated-cnn", model, x, y, LossKind.CrossEntropy);
    }

    [Fact]
    public void LinearAndConvLayersTakeTheFastPathAndOtherLayersLoop()
    {
        var cnn = TinyCases.Cnn();
        using (var engine = new PerExampleGradients(cnn.Model))
        {
            engine.AccumulateChunk(cnn.Inputs, z => [new SeedGroup("truth", [OutputLoss.Gradient(cnn.Loss, z, cnn.Targets)], true)]);
            Assert.All(engine.Layers, l => Assert.Equal(LayerPath.Fast, l.Path));
            Assert.Equal(["Conv2d", "Conv2d", "Linear"], engine.Layers.Select(l => l.Kind).ToArray());
        }
        var norm = TinyCases.MlpWithLayerNorm();
        using (var engine = new PerExampleGradients(norm.Model))
        {
            engine.AccumulateChunk(norm.Inputs, z => [new SeedGroup("truth", [OutputLoss.Gradient(norm.Loss, z, norm.Targets)], true)]);
            var byLayer = engine.Layers.ToDictionary(l => l.Layer);
            Assert.Equal(LayerPath.Fast, byLayer["fc1"].Path);
            Assert.Equal(LayerPath.Fast, byLayer["fc2"].Path);
            Assert.Equal(LayerPath.Loop, byLayer["norm"].Path);
            Assert.Equal(12, byLayer["norm"].Parameters);
            Assert.Equal(norm.Model.parameters().Select(p => p.numel()).Sum(), engine.Parameters.Sum(p => p.Count));
        }
    }
}
