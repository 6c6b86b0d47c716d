using MathNet.Numerics.LinearAlgebra;
using NqmValidate.Curvature;
using NqmValidate.Curvature.Operators;
using NqmValidate.Curvature.Spectral;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>Hessian/GGN products, Lanczos, Hutchinson, SLQ, B_simple and directional noise against brute force.</summary>
public class OperatorsTests
{
    public static IEnumerable<object[]> Cases() => TinyCases.All();

    static CurvatureProblem Problem(TinyCase c, int chunk = 5) => new(c.Model, c.Inputs, c.Targets, c.Loss, chunk);

    static Vector<double> ToVector(Tensor t) => Vector<double>.Build.Dense(t.data<double>().ToArray());

    static Tensor RandomVector(long dim, ulong seed) => randn(dim, dtype: ScalarType.Float64, generator: new Generator(seed));

    static double[] Gradient(CurvatureProblem p)
    {
        var loss = OutputLoss.PerExample(p.Loss, p.Model.call(p.Inputs), p.Targets).mean();
        return CurvatureProblem.Flatten(torch.autograd.grad([loss], p.Parameters())).data<double>().ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void HessianVectorProductsMatchCentralFiniteDifferencesOfTheGradient(TinyCase c)
    {
        var problem = Problem(c);
        var v = RandomVector(problem.Dimension, 1);
        var hv = new HessianOperator(problem).Multiply(v).data<double>().ToArray();
        const double eps = 1e-5;
        var theta = CurvatureProblem.Flatten(problem.Parameters());
        double[] GradientAt(Tensor point)
        {
            using (no_grad())
                foreach (var (p, s) in problem.Parameters().Zip(problem.Split(point))) p.copy_(s);
            return Gradient(problem);
        }
        var plus = GradientAt(theta + eps * v);
        var minus = GradientAt(theta - eps * v);
        GradientAt(theta);
        var fd = plus.Zip(minus, (a, b) => (a - b) / (2 * eps)).ToArray();
        double err = TinyCases.RelativeError(hv, fd);
        Assert.True(err <= 1e-6, $"rel. err {err:g3}");
        // And against the dense Hessian built with autograd.
        var dense = DenseCurvature.Hessian(c) * ToVector(v);
        Assert.True(TinyCases.RelativeError(hv, dense.ToArray()) <= 1e-9);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GgnVectorProductsMatchTheDenseGgn(TinyCase c)
    {
        var problem = Problem(c);
        var v = RandomVector(problem.Dimension, 2);
        var gv = new GgnOperator(problem).Multiply(v).data<double>().ToArray();
        var dense = DenseCurvature.Ggn(c) * ToVector(v);
        double err = TinyCases.RelativeError(gv, dense.ToArray());
        Assert.True(err <= 1e-9, $"rel. err {err:g3}");
    }

    [Fact]
    public void LanczosEigenvaluesMatchTheDenseEigensolver()
    {
        var c = TinyCases.Mlp();
        var problem = Problem(c, 12);
        foreach (var (op, dense) in new (ICurvatureOperator, Matrix<double>)[]
                 { (new HessianOperator(problem), DenseCurvature.Hessian(c)), (new GgnOperator(problem), DenseCurvature.Ggn(c)) })
        {
            var exact = dense.Evd(Symmetricity.Symmetric)
                .EigenValues.Select(e => e.Real).OrderByDescending(e => e).ToArray();
            var top = Lanczos.Top(op, 4, new Generator(3), steps: 40);
            for (int i = 0; i < 4; i++)
            {
                Assert.True(Math.Abs(top[i].Value - exact[i]) <= 1e-6 * Math.Abs(exact[0]),
                    $"{op.Name} eigenvalue {i}: Lanczos {top[i].Value}, dense {exact[i]}");
                // The Ritz vector is an eigenvector: ‖Av − λv‖ small relative to λ_max.
                var residual = (op.Multiply(top[i].Vector) - top[i].Value * top[i].Vector).norm().ToDouble();
                Assert.True(residual <= 1e-5 * Math.Abs(exact[0]), $"{op.Name} residual {residual:g3}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void HutchinsonTraceAgreesWithTheSumOfTheGgnDiagonalWithinItsErrorBar(TinyCase c)
    {
        var problem = Problem(c, (int)c.Examples);
        var diagonal = Diagonals.Compute(c.Model, c.Inputs, c.Targets, new DiagonalOptions { Loss = c.Loss, ChunkSize = 5, McSamples = 0 });
        double trace = diagonal.Flatten(p => p.Ggn).Sum();
        var estimate = Hutchinson.Trace(new GgnOperator(problem, diagonal.Flatten(p => p.Ggn)), 120, new Generator(4));
        Assert.True(estimate.StandardError > 0 && estimate.StandardError < 0.2 * trace, $"SE {estimate.StandardError:g3} vs trace {trace:g3}");
        Assert.True(Math.Abs(estimate.Trace - trace) <= 3 * estimate.StandardError,
            $"Hutchinson {estimate.Trace:g6} ± {estimate.StandardError:g3}, diagonal sum {trace:g6}");
    }

    [Fact]
    public void SpectralDensityHasUnitMassAndReachesTheExtremeEigenvalues()
    {
        var c = TinyCases.Mlp();
        var problem = Problem(c, 12);
        var dense = DenseCurvature.Hessian(c);
        var exact = dense.Evd(Symmetricity.Symmetric).EigenValues.Select(e => e.Real).ToArray();
        var nodes = SpectralDensity.Estimate(new HessianOperator(problem), 5, 40, new Generator(5));
        Assert.Equal(1.0, nodes.Sum(n => n.Weight), 1e-10);
        Assert.True(Math.Abs(nodes.Max(n => n.Eigenvalue) - exact.Max()) <= 1e-6 * exact.Max());
        Assert.True(Math.Abs(nodes.Min(n => n.Eigenvalue) - exact.Min()) <= 1e-6 * exact.Max());
        // The density's mean is a (Rademacher) trace estimate over D.
        double mean = nodes.Sum(n => n.Weight * n.Eigenvalue) * problem.Dimension;
        double trace = dense.Trace();
        Assert.True(Math.Abs(mean - trace) <= 0.5 * Math.Abs(trace) + 1e-9, $"SLQ trace {mean:g4} vs {trace:g4}");
    }

    /// <summary>A diagonal operator: its eigenvectors are the coordinate axes.</summary>
    sealed class DiagonalOperator(double[] values) : ICurvatureOperator
    {
        public string Name => "ggn";
        public long Dimension => values.Length;
        public Tensor Multiply(Tensor v) => v * tensor(values, ScalarType.Float64);
        public double[]? Diagonal => values;
    }

    [Fact]
    public void TheBulkFractionBelowAThresholdIsExactPerProbeOnADiagonalOperatorAndItsErrorIsTheSpreadOverProbes()
    {
        // Oracle: with Lanczos run to the number of distinct eigenvalues, a Rademacher probe puts weight exactly 1/D on
        // each axis, so every probe sees exactly the share of eigenvalues below the threshold (here 12 of 30).
        double[] values = [.. Enumerable.Repeat(0.0, 6), .. Enumerable.Repeat(5e-4, 6), .. Enumerable.Range(1, 18).Select(i => 0.1 * i)];
        var nodes = SpectralDensity.Estimate(new DiagonalOperator(values), 4, 25, new Generator(3));
        Assert.Equal(4, nodes.Select(n => n.Probe).Distinct().Count());
        var (fraction, se, probes) = SpectralDensity.FractionBelow(nodes, 1e-3);
        Assert.Equal(4, probes);
        Assert.Equal(12.0 / 30, fraction, 8);
        Assert.Equal(0.0, se!.Value, 8);
        // Probes that disagree: the error is the standard error of their mean.
        DensityNode[] made = [new(0.0, 0.25, 0), new(1.0, 0.25, 0), new(0.0, 0.5, 1), new(2.0, 0.0, 1)];
        var (f2, se2, p2) = SpectralDensity.FractionBelow(made, 1e-3);
        Assert.Equal(2, p2);
        Assert.Equal(0.75, f2, 12);              // probe estimates 0.5 and 1.0
        Assert.Equal(0.25, se2!.Value, 12);      // sd 0.3536 / √2
        Assert.Null(SpectralDensity.FractionBelow([new(0.0, 1.0, 0)], 1e-3).StandardError);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TwoBatchEstimatorWithBatchOneIsExactlyTheUnbiasedPerExampleVariance(TinyCase c)
    {
        // With B_small = 1 the partition visits every example once, so the estimator is deterministic:
        // tr(Σ) = N/(N−1) Σ_i c_i and |G|² = (N|G_N|² − Σ_i m2_i)/(N − 1).
        var problem = Problem(c);
        var d = Diagonals.Compute(c.Model, c.Inputs, c.Targets, new DiagonalOptions { Loss = c.Loss, ChunkSize = 5, McSamples = 1, ExactGgn = false });
        var perExample = GradientNoise.FromDiagonals(d);
        var twoBatch = GradientNoise.TwoBatch(problem, 1, new Generator(6));
        double n = c.Examples;
        Assert.Equal(perExample.TraceSigma * n / (n - 1), twoBatch.TraceSigma, 1e-9 * perExample.TraceSigma);
        double m2 = d.Flatten(p => p.SecondMoment).Sum();
        Assert.Equal((n * perExample.GradientNormSquared - m2) / (n - 1), twoBatch.GradientNormSquared, 1e-9 * m2);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DirectionalNoiseMatchesPerExampleGradientsProjectedOnTheDirection(TinyCase c)
    {
        var problem = Problem(c);
        var directions = new[] { RandomVector(problem.Dimension, 7), RandomVector(problem.Dimension, 8) };
        var noise = GradientNoise.AlongDirections(problem, directions);
        var rows = TinyCases.PerExampleGradientsByLoop(c);
        for (int j = 0; j < directions.Length; j++)
        {
            var v = directions[j].data<double>().ToArray();
            var d = rows.Select(r => r.Zip(v, (a, b) => a * b).Sum()).ToArray();
            double mean = d.Average();
            double variance = d.Select(x => (x - mean) * (x - mean)).Average();
            Assert.Equal(variance, noise[j].NoiseVariance, 1e-9 * variance);
            Assert.Equal(mean * mean, noise[j].MeanProjectionSquared, 1e-9 * (variance + mean * mean));
        }
    }
}
