using MathNet.Numerics.LinearAlgebra;
using NqmValidate.Curvature;
using NqmValidate.Curvature.Operators;
using NqmValidate.Curvature.Spectral;
using NqmValidate.Training.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>
/// The curvature a preconditioned optimizer sees: P^½GP^½ and the noise along its eigenvectors against dense
/// matrices and per-example loops; Adam's own P against a hand-written Adam.
/// </summary>
public class PreconditionedCurvatureTests
{
    static Tensor PositiveP(long dim, ulong seed) => randn(dim, dtype: ScalarType.Float64, generator: new Generator(seed)).exp();

    [Fact]
    public void ThePreconditionedGgnIsPHalfGPHalfAndItsEigenpairsNoiseAndTracesMatchDenseAndPerExampleOracles()
    {
        var c = TinyCases.Mlp();
        var problem = new CurvatureProblem(c.Model, c.Inputs, c.Targets, c.Loss, 5);
        var p = PositiveP(problem.Dimension, 21);
        var pv = p.data<double>().ToArray();
        var diagonals = Diagonals.Compute(c.Model, c.Inputs, c.Targets, new DiagonalOptions { Loss = c.Loss, ChunkSize = 5, McSamples = 0 });
        using var op = new PreconditionedOperator(new GgnOperator(problem, diagonals.Flatten(x => x.Ggn)), p, PreconditionedTraces.GgnOperatorName);

        // Dense oracle: diag(√P) G diag(√P).
        var sqrt = Matrix<double>.Build.DiagonalOfDiagonalArray(pv.Select(Math.Sqrt).ToArray());
        var dense = sqrt * DenseCurvature.Ggn(c) * sqrt;
        var v = randn(problem.Dimension, dtype: ScalarType.Float64, generator: new Generator(22));
        var product = op.Multiply(v).data<double>().ToArray();
        Assert.True(TinyCases.RelativeError(product, (dense * Vector<double>.Build.Dense(v.data<double>().ToArray())).ToArray()) <= 1e-9);
        Assert.True(TinyCases.RelativeError(op.Diagonal!, dense.Diagonal().ToArray()) <= 1e-9);

        var exact = dense.Evd(Symmetricity.Symmetric).EigenValues.Select(e => e.Real).OrderByDescending(e => e).ToArray();
        var top = Lanczos.Top(op, 3, new Generator(23), steps: 40);
        for (int i = 0; i < 3; i++)
            Assert.True(Math.Abs(top[i].Value - exact[i]) <= 1e-6 * exact[0], $"eigenvalue {i}: Lanczos {top[i].Value}, dense {exact[i]}");

        // The z-space gradient of example n is P^½∇ℓ_n, so its noise along u is Var_n(∇ℓ_n·P^½u).
        var rows = TinyCases.PerExampleGradientsByLoop(c);
        var directions = top.Select(t => op.ToParameterSpace(t.Vector)).ToList();
        var noise = GradientNoise.AlongDirections(problem, directions);
        for (int j = 0; j < top.Count; j++)
        {
            var u = top[j].Vector.data<double>().ToArray();
            var d = rows.Select(r => r.Select((g, i) => g * Math.Sqrt(pv[i]) * u[i]).Sum()).ToArray();
            double mean = d.Average(), variance = d.Select(x => (x - mean) * (x - mean)).Average();
            Assert.Equal(variance, noise[j].NoiseVariance, 1e-9 * variance);
        }

        // tr(PΣ), tr(PG) and gᵀPg from the per-example loop and the dense matrix.
        var traces = PreconditionedTraces.From(new MeasuredPreconditioner("test", p), diagonals);
        int dim = pv.Length;
        var meanGradient = Enumerable.Range(0, dim).Select(i => rows.Average(r => r[i])).ToArray();
        double traceNoise = Enumerable.Range(0, dim).Sum(i => pv[i] * rows.Average(r => (r[i] - meanGradient[i]) * (r[i] - meanGradient[i])));
        Assert.Equal(traceNoise, traces.TraceNoise, 1e-9 * traceNoise);
        Assert.Equal(dense.Trace(), traces.TraceGgn!.Value, 1e-9 * dense.Trace());
        double gPg = Enumerable.Range(0, dim).Sum(i => pv[i] * meanGradient[i] * meanGradient[i]);
        Assert.Equal(gPg, traces.GradientNormSquared, 1e-9 * gPg);
        Assert.Equal(traceNoise / gPg, traces.BSimple, 1e-8 * traceNoise / gPg);
        Assert.Equal(pv.Min(), traces.MinP);
        Assert.Equal(pv.Max(), traces.MaxP);
    }

    [Fact]
    public void APreconditionerThatIsNotPositiveEverywhereIsRefused()
    {
        var c = TinyCases.Mlp();
        var problem = new CurvatureProblem(c.Model, c.Inputs, c.Targets, c.Loss, 5);
        var p = PositiveP(problem.Dimension, 24);
        p[3] = tensor(0.0, ScalarType.Float64);
        Assert.Throws<ArgumentException>(() => new PreconditionedOperator(new GgnOperator(problem), p, "x"));
        Assert.Throws<ArgumentException>(() => new PreconditionedOperator(new GgnOperator(problem), PositiveP(problem.Dimension - 1, 25), "x"));
    }

    [Fact]
    public void AdamsPreconditionerIsOneOverTheRootOfItsBiasCorrectedSecondMomentAsAHandWrittenAdamComputesIt()
    {
        var c = TinyCases.Mlp(examples: 12);
        const double lr = 0.01, beta1 = 0.8, beta2 = 0.95, eps = 1e-3; // β2 far from 1 so that the bias correction matters
        var spec = OptimizerFamilies.Resolve(new OptimizerSpec("adam", lr, ("beta1", beta1), ("beta2", beta2), ("epsilon", eps)), 100);
        var model = c.Model;
        var parameters = model.parameters().Select(x => (Tensor)x).ToList();
        // The oracle trains a copy of the same weights with Adam written out by hand.
        var copy = parameters.Select(x => x.detach().clone()).ToList();
        var m = copy.Select(x => zeros_like(x)).ToList();
        var s = copy.Select(x => zeros_like(x)).ToList();
        using var rule = OptimizerFamilies.Create(spec, model);
        Assert.Null(rule.DiagonalPreconditioner()); // no state before the first step

        Tensor Loss(nn.Module<Tensor, Tensor> net, long step) =>
            nn.functional.cross_entropy(net.call(c.Inputs.narrow(0, step % 3 * 4, 4)), c.Targets.narrow(0, step % 3 * 4, 4));
        for (int t = 1; t <= 7; t++)
        {
            // Hand-written Adam at the current copy: gradient of the same mini-batch loss at the copy's weights.
            using (no_grad()) foreach (var (live, saved) in parameters.Zip(copy)) live.copy_(saved);
            var grads = torch.autograd.grad([Loss(model, t)], parameters).Select(g => g.detach().clone()).ToList();
            for (int i = 0; i < copy.Count; i++)
            {
                m[i] = beta1 * m[i] + (1 - beta1) * grads[i];
                s[i] = beta2 * s[i] + (1 - beta2) * grads[i].square();
                var mHat = m[i] / (1 - Math.Pow(beta1, t));
                var denominator = (s[i] / (1 - Math.Pow(beta2, t))).sqrt() + eps;
                copy[i] = copy[i] - lr * mHat / denominator;
            }
            // The rule steps from the same weights (restored above).
            rule.Step(() => Loss(model, t), lr);
            for (int i = 0; i < copy.Count; i++)
                Assert.True(allclose(parameters[i].detach(), copy[i], rtol: 1e-9, atol: 1e-12), $"step {t}: parameter {i} differs from the hand-written Adam");
        }
        var own = rule.DiagonalPreconditioner()!;
        Assert.Equal(parameters.Count, own.Count);
        for (int i = 0; i < parameters.Count; i++)
        {
            var expected = 1.0 / ((s[i] / (1 - Math.Pow(beta2, 7))).sqrt() + eps);
            Assert.True(allclose(own[i], expected.to_type(ScalarType.Float64), rtol: 1e-9, atol: 0), $"parameter {i}: P differs");
        }
        // Rules without a preconditioner say so.
        using var sgd = OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec("sgd", lr), 100), model);
        sgd.Step(() => Loss(model, 1), lr);
        Assert.Null(sgd.DiagonalPreconditioner());
    }
}

/// <summary>A replayed Adam trial is measured under its own preconditioner at every checkpoint after its first step.</summary>
public class AdamCheckpointTests
{
    [Fact]
    public void AnAdamCheckpointIsAlsoMeasuredUnderTheTrialsOwnPreconditionerAndItsTracesAreThoseOfThatP()
    {
        string root = Path.Combine(Path.GetTempPath(), "nqm-adam-p-" + Guid.NewGuid().ToString("N"));
        var config = new NqmValidate.Training.Trials.TrialConfig
        {
            Model = new NqmValidate.Training.Models.ModelSpec("mlp", HiddenWidths: [16]), Optimizer = new OptimizerSpec("adam", 0.003),
            BatchSize = 32, MaxSteps = 400, Seed = 3, EvalExamples = 256, LogEvery = 0, Threads = 1,
        };
        var request = new CurvatureRunRequest
        {
            Trial = config, Checkpoints = [new Checkpoint(0), new Checkpoint(40)], OutDir = root, Plots = false, ParametersBin = true,
            Settings = new CurvatureSettings
            {
                Examples = 256, ChunkSize = 64, TopK = 2, LanczosSteps = 6, HutchinsonProbes = 2, SlqProbes = 1, SlqSteps = 5, SmallBatch = 8,
                Operators = ["ggn"],
            },
        };
        var results = CurvatureRun.Execute(request);
        // At initialisation Adam has no state: nothing preconditioned.
        Assert.Null(results[0].Report.Preconditioned);
        Assert.DoesNotContain(results[0].Report.Eigen, e => e.Operator == PreconditionedTraces.GgnOperatorName);
        var after = results[1].Report;
        var traces = Assert.IsType<PreconditionedTraces>(after.Preconditioned);
        Assert.Equal(2, after.Eigen.Count(e => e.Operator == PreconditionedTraces.GgnOperatorName && e.NoiseVariance > 0));
        Assert.True(after.Density.ContainsKey(PreconditionedTraces.GgnOperatorName));
        Assert.True(after.Hutchinson.ContainsKey(PreconditionedTraces.GgnOperatorName));

        // Oracle: a separate replay of the same trial to step 40 gives P; with parameters.bin's per-parameter noise
        // variance and GGN diagonal, tr(PΣ) and tr(PG) must be the reported ones.
        double[] p;
        using (var data = NqmValidate.Training.Data.FashionMnist.Load())
        using (var replay = new NqmValidate.Training.Trials.TrialRunner.TrialReplay(config, new NqmValidate.Training.Workloads.FashionMnistWorkload(data)))
        {
            replay.TrainTo(40);
            var parts = replay.DiagonalPreconditioner()!;
            p = parts.SelectMany(t => t.flatten().data<double>().ToArray()).ToArray();
        }
        var (_, arrays) = NqmValidate.Curvature.Output.CurvatureFiles.ReadParameters(Path.Combine(root, "warmup-40", "parameters.bin"));
        double traceNoise = arrays["c"].Select((c, i) => c * p[i]).Sum();
        double traceGgn = arrays["h_ggn"].Select((h, i) => h * p[i]).Sum();
        Assert.Equal(traceNoise, traces.TraceNoise, 1e-9 * traceNoise);
        Assert.Equal(traceGgn, traces.TraceGgn!.Value, 1e-9 * traceGgn);
        // Adam's P spreads over orders of magnitude (it is why Adam is not SGD): the measured one is not flat.
        Assert.True(traces.MaxP > 10 * traces.MinP, $"P in [{traces.MinP:g3}, {traces.MaxP:g3}]");
        using var summary = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "warmup-40", "summary.json")));
        Assert.Equal(traces.BSimple, summary.RootElement.GetProperty("preconditioned").GetProperty("b_simple").GetDouble(), 1e-12 * traces.BSimple);
        Directory.Delete(root, true);
    }
}
