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
            var oracle = TinyCases.PerExampleGradientsByLoop(c);
            int dim = oracle[0].Length;
            var expectedSq = new double[dim];
            var expectedSum = new double[dim];
            foreach (var row in oracle)
                for (int i = 0; i < dim; i++) { expectedSq[i] += row[i] * row[i]; expectedSum[i] += row[i]; }

            var actualSq = engine.Parameters.SelectMany(p => engine.SumOfSquares("truth", p.Name)).ToArray();
            var actualSum = engine.Parameters.SelectMany(p => engine.Sum("truth", p.Name)).ToArray();
            Assert.True(TinyCases.RelativeError(actualSq, expectedSq) <= Tolerance, $"{policy}: sum of squares rel. err {TinyCases.RelativeError(actualSq, expectedSq):g3}");
            Assert.True(TinyCases.RelativeError(actualSum, expectedSum) <= Tolerance, $"{policy}: sum rel. err {TinyCases.RelativeError(actualSum, expectedSum):g3}");
        }
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
