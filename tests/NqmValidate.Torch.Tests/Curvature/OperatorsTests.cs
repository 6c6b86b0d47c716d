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

    [Theory]
    [MemberData(nameof(Cases))]
    public void SeveralVectorsMultipliedTogetherGiveEachVectorsOwnProductBitForBit(TinyCase c)
    {
        // Oracles: the same operator on one vector at a time (bit for bit: the batch shares a chunk's forward pass and
        // first backward pass, nothing a vector's own arithmetic depends on), and the dense matrices.
        var problem = Problem(c);
        var vs = Enumerable.Range(0, 3).Select(i => RandomVector(problem.Dimension, 20 + (ulong)i)).ToList();
        var p = rand(problem.Dimension, dtype: ScalarType.Float64, generator: new Generator(9)) + 0.1;
        using var preconditioned = new PreconditionedOperator(new GgnOperator(problem), p, "ggn-preconditioned");
        var pHalf = Matrix<double>.Build.Diagonal(p.sqrt().data<double>().ToArray());
        foreach (var (op, dense) in new (ICurvatureOperator, Matrix<double>)[]
                 {
                     (new HessianOperator(problem), DenseCurvature.Hessian(c)), (new GgnOperator(problem), DenseCurvature.Ggn(c)),
                     (preconditioned, pHalf * DenseCurvature.Ggn(c) * pHalf),
                 })
        {
            var together = op.MultiplyMany(vs);
            Assert.Equal(vs.Count, together.Count);
            for (int k = 0; k < vs.Count; k++)
            {
                var alone = op.Multiply(vs[k]).data<double>().ToArray();
                Assert.Equal(alone, together[k].data<double>().ToArray());
                double err = TinyCases.RelativeError(alone, (dense * ToVector(vs[k])).ToArray());
                Assert.True(err <= 1e-9, $"{op.Name} vector {k}: rel. err {err:g3} against the dense matrix");
            }
        }
        Assert.Empty(new GgnOperator(problem).MultiplyMany([]));
    }

    [Fact]
    public void LanczosRunsInLockstepAreTheRunsOneAtATimeIncludingOneThatStopsEarly()
    {
        var c = TinyCases.Mlp();
        var problem = Problem(c, 5);
        var starts = Enumerable.Range(0, 3).Select(i => RandomVector(problem.Dimension, 30 + (ulong)i)).ToList();
        // On a diagonal operator with four distinct eigenvalues a run reaches an invariant subspace after four steps; the
        // second start lives on the axes of two of them, so its run stops after two steps while the others go on.
        var mask = tensor(Enumerable.Range(0, (int)problem.Dimension).Select(i => i % 4 < 2 ? 1.0 : 0.0).ToArray(), ScalarType.Float64);
        var diagonal = new DiagonalOperator([.. Enumerable.Range(0, (int)problem.Dimension).Select(i => (double)(i % 4))]);
        foreach (var (op, steps) in new (ICurvatureOperator, int)[] { (new GgnOperator(problem), 12), (diagonal, 10) })
        {
            if (op == diagonal) starts[1] = starts[1] * mask;
            var together = Lanczos.RunMany(op, starts, steps);
            for (int k = 0; k < starts.Count; k++)
            {
                var alone = Lanczos.Run(op, starts[k], steps);
                Assert.Equal(alone.Alpha, together[k].Alpha);
                Assert.Equal(alone.Beta, together[k].Beta);
                Assert.Equal(alone.Remainder, together[k].Remainder);
                Assert.Equal(alone.Basis.data<double>().ToArray(), together[k].Basis.data<double>().ToArray());
            }
            if (op == diagonal) Assert.Equal([4, 2, 4], together.Select(r => r.Steps));
        }
    }

    [Fact]
    public void SlqAndHutchinsonDrawTheirProbesInOrderSoBatchingThemChangesNoValue()
    {
        // Oracle: the estimators written out one probe at a time from the same generator stream.
        var c = TinyCases.Mlp();
        var op = new GgnOperator(Problem(c, 5));
        var gen = new Generator(41);
        var expected = new List<DensityNode>();
        for (int p = 0; p < 5; p++)
        {
            var (values, vectors) = Lanczos.Run(op, Hutchinson.Rademacher(op.Dimension, gen), 9).Ritz();
            expected.AddRange(values.Select((v, j) => new DensityNode(v, vectors[0, j] * vectors[0, j] / 5, p)));
        }
        Assert.Equal(expected, SpectralDensity.Estimate(op, 5, 9, new Generator(41)));

        gen = new Generator(42);
        var samples = Enumerable.Range(0, 7).Select(_ =>
        {
            var z = Hutchinson.Rademacher(op.Dimension, gen);
            return z.dot(op.Multiply(z)).ToDouble();
        }).ToArray();
        var estimate = Hutchinson.Trace(op, 7, new Generator(42));
        Assert.Equal(samples.Average(), estimate.Trace);
    }

    [Fact]
    public void ProbeBatchesCoverEveryProbeOnceInEqualBatchesUnderTheMemoryBudget()
    {
        Assert.Equal([(0, 20)], ProbeBatches.Of(20, 1000));
        // 172 MB per probe (80 steps of the MLP's 269k float64): 6 fit in 1 GiB, so 20 probes go as 5 + 5 + 5 + 5.
        Assert.Equal([(0, 5), (5, 5), (10, 5), (15, 5)], ProbeBatches.Of(20, 83L * 269_322 * 8));
        Assert.Equal([(0, 1), (1, 1)], ProbeBatches.Of(2, 2 * ProbeBatches.MemoryBytes));
        Assert.Equal([(0, 3), (3, 4)], ProbeBatches.Of(7, ProbeBatches.MemoryBytes / 5));
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

    [Fact]
    public void TheQuadratureBracketOfTheBulkHoldsTheTrueFractionWhateverTheStepsAndIsTightOnceConverged()
    {
        // Oracle: on a diagonal operator a Rademacher probe's measure is exactly the uniform one over the eigenvalues, so
        // every probe's bracket must hold the true share below the threshold, however few the Lanczos steps.
        double[] values = [.. Enumerable.Range(0, 41).Select(i => -1 + i / 20.0)];
        var op = new DiagonalOperator(values);
        foreach (int steps in new[] { 3, 5, 8 })
            foreach (double threshold in new[] { 0.01, 0.12, 0.33, 0.7 })
            {
                var nodes = SpectralDensity.Estimate(op, 3, steps, new Generator(50));
                double truth = values.Count(v => Math.Abs(v) < threshold) / 41.0;
                foreach (var probe in nodes.GroupBy(n => n.Probe))
                {
                    var (low, high) = SpectralDensity.FractionBelowBracket([.. probe], threshold);
                    Assert.True(low <= truth + 1e-12 && truth <= high + 1e-12, $"{steps} steps, t = {threshold}: {truth:F3} not in [{low:F3}, {high:F3}]");
                }
                var (meanLow, meanHigh) = SpectralDensity.FractionBelowBracket(nodes, threshold);
                Assert.True(meanLow <= truth + 1e-12 && truth <= meanHigh + 1e-12);
            }
        // Lanczos run to the number of eigenvalues: every node is an eigenvalue of weight 1/41, the bracket is the count
        // inside without the two outermost (low) or with the two neighbours outside (high).
        var (l, h) = SpectralDensity.FractionBelowBracket(SpectralDensity.Estimate(op, 2, 41, new Generator(51)), 0.12);
        Assert.Equal(3 / 41.0, l, 8);
        Assert.Equal(7 / 41.0, h, 8);
        // Nodes that straddle 0 but sit outside the threshold: the count says 0, the bracket says unresolved.
        DensityNode[] straddle = [new(-1.0, 0.1, 0), new(-0.002, 0.4, 0), new(0.002, 0.4, 0), new(1.0, 0.1, 0)];
        Assert.Equal(0.0, SpectralDensity.FractionBelow(straddle, 1e-3).Fraction);
        Assert.Equal((0.0, 0.8), SpectralDensity.FractionBelowBracket(straddle, 1e-3));
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
