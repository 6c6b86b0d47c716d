using NqmValidate.Curvature;
using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>GGN, MC Fisher, empirical Fisher, mean gradient and noise variance against closed forms and brute force.</summary>
public class DiagonalsTests
{
    const double Exact = 1e-6;

    public static IEnumerable<object[]> Cases() => TinyCases.All();

    static DiagonalOptions Options(TinyCase c, int chunk = 5) => new() { Loss = c.Loss, ChunkSize = chunk, McSamples = 0 };

    [Fact]
    public void LinearRegressionWithSquaredErrorHasGgnEqualToXtXOverN()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(3);
        var model = TinyCases.Seeded(nn.Linear(6, 2, dtype: ScalarType.Float64), 4);
        var x = randn(40, 6, dtype: ScalarType.Float64, generator: gen) * 1.7 + 0.3;
        var y = randn(40, 2, dtype: ScalarType.Float64, generator: gen);
        var d = Diagonals.Compute(model, x, y, new DiagonalOptions { Loss = LossKind.MeanSquaredError, ChunkSize = 16, McSamples = 0 });
        // GGN of ½‖Wx + b − y‖² averaged over N is I ⊗ XᵀX/N (with a column of ones for the bias): diagonal mean x_i², and 1.
        var meanSq = x.square().mean([0L]).data<double>().ToArray();
        var expectedWeight = Enumerable.Range(0, 2).SelectMany(_ => meanSq).ToArray();
        Assert.True(TinyCases.RelativeError(d.Parameters[0].Ggn!, expectedWeight) <= Exact);
        Assert.All(d.Parameters[1].Ggn!, v => Assert.Equal(1.0, v, 1e-12));
    }

    [Fact]
    public void SoftmaxRegressionMatchesTheClosedFormGgnDiagonal()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(5);
        var model = TinyCases.Seeded(nn.Linear(4, 3, dtype: ScalarType.Float64), 6);
        var x = randn(30, 4, dtype: ScalarType.Float64, generator: gen);
        var y = randint(0, 3, [30], generator: gen);
        var d = Diagonals.Compute(model, x, y, new DiagonalOptions { ChunkSize = 7, McSamples = 0 });
        // For z = Wx + b: GGN diagonal of W[k,i] = (1/N) Σ_n p_nk(1 − p_nk) x_ni², of b[k] = (1/N) Σ_n p_nk(1 − p_nk).
        var xs = x.data<double>().ToArray();
        var p = nn.functional.softmax(model.call(x).detach(), 1).data<double>().ToArray();
        var w = new double[12];
        var b = new double[3];
        for (int n = 0; n < 30; n++)
            for (int k = 0; k < 3; k++)
            {
                double v = p[n * 3 + k] * (1 - p[n * 3 + k]);
                b[k] += v / 30;
                for (int i = 0; i < 4; i++) w[k * 4 + i] += v * xs[n * 4 + i] * xs[n * 4 + i] / 30;
            }
        Assert.True(TinyCases.RelativeError(d.Parameters[0].Ggn!, w) <= Exact);
        Assert.True(TinyCases.RelativeError(d.Parameters[1].Ggn!, b) <= Exact);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GgnDiagonalMatchesTheFullGgnBuiltWithAutograd(TinyCase c)
    {
        var d = Diagonals.Compute(c.Model, c.Inputs, c.Targets, Options(c));
        var expected = DenseCurvature.Ggn(c).Diagonal().ToArray();
        double err = TinyCases.RelativeError(d.Flatten(p => p.Ggn), expected);
        Assert.True(err <= Exact, $"rel. err {err:g3}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MeanGradientSecondMomentAndNoiseVarianceMatchThePerExampleLoop(TinyCase c)
    {
        var d = Diagonals.Compute(c.Model, c.Inputs, c.Targets, Options(c));
        var rows = TinyCases.PerExampleGradientsByLoop(c);
        int dim = rows[0].Length;
        var mean = new double[dim];
        var second = new double[dim];
        foreach (var r in rows)
            for (int i = 0; i < dim; i++) { mean[i] += r[i] / rows.Length; second[i] += r[i] * r[i] / rows.Length; }
        var variance = new double[dim];
        foreach (var r in rows)
            for (int i = 0; i < dim; i++) variance[i] += Math.Pow(r[i] - mean[i], 2) / rows.Length;
        Assert.True(TinyCases.RelativeError(d.Flatten(p => p.MeanGradient), mean) <= Exact);
        Assert.True(TinyCases.RelativeError(d.Flatten(p => p.SecondMoment), second) <= Exact);
        // c computed as E[g²] − E[g]² agrees with the two-pass variance.
        Assert.True(TinyCases.RelativeError(d.Flatten(p => p.NoiseVariance), variance) <= 1e-6);
        // The mean gradient is the gradient of the mean loss.
        var loss = OutputLoss.PerExample(c.Loss, c.Model.call(c.Inputs), c.Targets).mean();
        var grads = torch.autograd.grad([loss], c.Model.parameters().Select(p => (Tensor)p).ToList());
        var g = cat(grads.Select(t => t.flatten()).ToList()).data<double>().ToArray();
        Assert.True(TinyCases.RelativeError(d.Flatten(p => p.MeanGradient), g) <= Exact);
        Assert.Equal(loss.ToDouble(), d.Loss, 1e-10);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MonteCarloFisherConvergesToTheExactGgnDiagonal(TinyCase c)
    {
        var exact = Diagonals.Compute(c.Model, c.Inputs, c.Targets, Options(c)).Flatten(p => p.Ggn);
        double Error(int samples) => TinyCases.RelativeError(
            Diagonals.Compute(c.Model, c.Inputs, c.Targets, Options(c, (int)c.Examples) with { ExactGgn = false, McSamples = samples, Seed = 9 })
                .Flatten(p => p.McFisher), exact);
        double few = Error(4), many = Error(256);
        // Monte-Carlo error falls like 1/√M: 64× the samples should cut it about eightfold; demand at least 3×.
        Assert.True(many < few / 3, $"error with 4 samples {few:g3}, with 256 samples {many:g3}");
        Assert.True(many < 0.12, $"error with 256 samples {many:g3}");
    }

    [Fact]
    public void BadInputIsRejectedWithAMessageNamingTheFault()
    {
        var c = TinyCases.Mlp();
        var e = Assert.Throws<CurvatureInputException>(() =>
            Diagonals.Compute(c.Model, c.Inputs, c.Targets.to(ScalarType.Float64), Options(c)));
        Assert.Contains("int64 class targets", e.Message);
        Assert.Throws<CurvatureInputException>(() =>
            Diagonals.Compute(c.Model, c.Inputs, c.Targets, Options(c) with { ExactGgn = false, McSamples = 0 }));
    }
}
