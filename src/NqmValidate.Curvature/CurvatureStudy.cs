using System.Diagnostics;
using NqmValidate.Curvature.Operators;
using NqmValidate.Curvature.PerExample;
using NqmValidate.Curvature.Spectral;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>
/// Everything one curvature measurement computes. The defaults are protocol v2's (#10 item 5): 16,384 examples (a GGN of
/// rank up to 147k for the MLP's 269k parameters; 2,048 examples left it at 18k) and an SLQ density of 20 probes × 80
/// steps, enough to state the bulk below |λ| = 1e-3 with a standard error. docs/curvature.md states what they cost.
/// </summary>
public sealed record CurvatureSettings
{
    public int Examples { get; init; } = 16384;
    public int ChunkSize { get; init; } = 512;
    public bool ExactGgn { get; init; } = true;
    public int McSamples { get; init; } = 1;
    public PathPolicy Paths { get; init; } = PathPolicy.Auto;
    /// <summary>Top eigenpairs per operator (0 skips Lanczos).</summary>
    public int TopK { get; init; } = 10;
    /// <summary>Lanczos steps for the top eigenpairs (null: max(3·TopK, 30)).</summary>
    public int? LanczosSteps { get; init; }
    /// <summary>Rademacher probes per operator for Hutchinson's trace (0 skips it).</summary>
    public int HutchinsonProbes { get; init; } = 30;
    /// <summary>Probes and Lanczos steps per probe of the SLQ density (0 probes skips it).</summary>
    public int SlqProbes { get; init; } = 20;
    public int SlqSteps { get; init; } = 80;
    /// <summary>Small batch of McCandlish's two-batch estimator (the big batch is all the examples).</summary>
    public int SmallBatch { get; init; } = 32;
    public int BinsPerDecade { get; init; } = 4;
    /// <summary>Operators for eigenvalues, Hutchinson and SLQ: "hessian" and/or "ggn".</summary>
    public IReadOnlyList<string> Operators { get; init; } = ["hessian", "ggn"];
    /// <summary>Noise variance vᵀΣv and (gᵀv)² along each top eigenvector.</summary>
    public bool EigenNoise { get; init; } = true;
    /// <summary>Seed of every random draw of the measurement (MC labels, probes, Lanczos starts, batch partition).</summary>
    public ulong Seed { get; init; } = 1;

    public void Validate()
    {
        void Require(bool ok, string message) { if (!ok) throw new CurvatureInputException(message); }
        Require(Examples >= 2, $"examples must be ≥ 2; got {Examples}.");
        Require(ChunkSize >= 1, $"chunk size must be ≥ 1; got {ChunkSize}.");
        Require(TopK >= 0 && HutchinsonProbes >= 0 && SlqProbes >= 0, "top-k and probe counts must be ≥ 0.");
        Require(HutchinsonProbes != 1, "Hutchinson needs ≥ 2 probes for its error bar (or 0 to skip).");
        Require(SlqSteps >= 2, $"SLQ steps must be ≥ 2; got {SlqSteps}.");
        Require(BinsPerDecade >= 1, $"bins per decade must be ≥ 1; got {BinsPerDecade}.");
        Require(SmallBatch >= 1 && SmallBatch * 2 <= Examples, $"small batch must be in [1, examples/2]; got {SmallBatch} with {Examples} examples.");
        foreach (var op in Operators)
            Require(op is "hessian" or "ggn", $"unknown operator '{op}'; valid: hessian, ggn.");
        new DiagonalOptions { ChunkSize = ChunkSize, ExactGgn = ExactGgn, McSamples = McSamples }.Validate();
    }
}

/// <summary>One row of eigen.csv.</summary>
public sealed record EigenRow(string Operator, int Index, double Eigenvalue, double Residual, double? NoiseVariance, double? MeanGradProjectionSq);

/// <summary>Traces of the diagonal quantities (sums over parameters).</summary>
public sealed record DiagonalTraces(double? Ggn, double? McFisher, double EmpiricalFisher, double NoiseVariance, double GradientNormSquared, double MaxH);

/// <summary>
/// A diagonal preconditioner to measure the curvature under: the one an optimizer's state applies at the checkpoint
/// (Adam's 1/(√v̂ + ε)). <paramref name="Diagonal"/>: P as a flat float64 vector in parameter order, positive.
/// </summary>
public sealed record MeasuredPreconditioner(string Source, Tensor Diagonal);

/// <summary>
/// The diagonal quantities seen through P (summary.json `preconditioned`): tr(PΣ), tr(PG) from the exact GGN diagonal,
/// gᵀPg and the preconditioned simple noise scale tr(PΣ)/gᵀPg (McCandlish's B_simple for a preconditioned optimizer),
/// and the spread of P. <paramref name="Operator"/> names P^½GP^½'s rows in eigen.csv and density.csv.
/// </summary>
public sealed record PreconditionedTraces(string Source, string Operator, double TraceNoise, double? TraceGgn, double GradientNormSquared,
    double BSimple, double MinP, double MedianP, double MaxP)
{
    /// <summary>The operator name of the preconditioned GGN in eigen.csv, density.csv and summary.json.</summary>
    public const string GgnOperatorName = "ggn-preconditioned";

    public static PreconditionedTraces From(MeasuredPreconditioner preconditioner, CurvatureDiagonals d)
    {
        var p = preconditioner.Diagonal.to_type(ScalarType.Float64).data<double>().ToArray();
        var noise = d.Flatten(x => x.NoiseVariance);
        var g = d.Flatten(x => x.MeanGradient);
        double? ggn = d.Parameters.All(x => x.Ggn is not null) ? d.Flatten(x => x.Ggn).Select((h, i) => h * p[i]).Sum() : null;
        double traceNoise = noise.Select((c, i) => c * p[i]).Sum();
        double norm = g.Select((x, i) => x * x * p[i]).Sum();
        var sorted = (double[])p.Clone();
        Array.Sort(sorted);
        return new PreconditionedTraces(preconditioner.Source, GgnOperatorName, traceNoise, ggn, norm, traceNoise / norm,
            sorted[0], sorted[sorted.Length / 2], sorted[^1]);
    }
}

/// <summary>The result of one curvature measurement at one checkpoint.</summary>
public sealed record CurvatureReport(
    string Checkpoint, long Examples, long Parameters, double Loss, string HSource,
    CurvatureDiagonals Diagonals, IReadOnlyList<SpectrumBin> Bins, long ZeroCurvatureParameters,
    DiagonalTraces Traces, IReadOnlyDictionary<string, TraceEstimate> Hutchinson,
    IReadOnlyList<EigenRow> Eigen, IReadOnlyDictionary<string, IReadOnlyList<DensityNode>> Density,
    IReadOnlyList<NoiseScaleEstimate> NoiseScale, PowerLawFit NoiseVsCurvature,
    IReadOnlyDictionary<string, double> Seconds, CurvatureSettings Settings, double GradientPassSeconds = double.NaN)
{
    /// <summary>Below this |λ| the SLQ density's mass is reported as the unresolved bulk (summary.json bulk_below).</summary>
    public const double BulkThreshold = 1e-3;

    /// <summary>The whole measurement's cost in units of one gradient pass over the same examples (NaN if not timed).</summary>
    public double CostInGradientPasses => Seconds.Values.Sum() / GradientPassSeconds;

    /// <summary>The measurement under the optimizer's own preconditioner, when one was given (its spectrum's rows are in Eigen and Density).</summary>
    public PreconditionedTraces? Preconditioned { get; init; }
}

/// <summary>Runs every estimator of this project on one model at one checkpoint.</summary>
public static class CurvatureStudy
{
    /// <summary>
    /// Measures <paramref name="model"/> on the examples given; <paramref name="topVectors"/>, when given, is called with
    /// each operator's Ritz vectors (unit norm, flattened) in the order measured: copy what you keep. With a
    /// <paramref name="preconditioner"/> the GGN is also measured as P^½GP^½ (Hutchinson, Lanczos with the noise along
    /// P^½u, SLQ; operator <see cref="PreconditionedTraces.GgnOperatorName"/>) and the diagonal quantities weighted by P are reported.
    /// </summary>
    public static CurvatureReport Measure(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, LossKind loss,
        string checkpoint, CurvatureSettings settings, Action<string>? log = null,
        Action<string, IReadOnlyList<Tensor>>? topVectors = null, MeasuredPreconditioner? preconditioner = null)
    {
        settings.Validate();
        if (inputs.shape[0] < settings.Examples)
            throw new CurvatureInputException($"{settings.Examples} examples requested but only {inputs.shape[0]} given.");
        var x = inputs.narrow(0, 0, settings.Examples);
        var y = targets.narrow(0, 0, settings.Examples);
        bool wasTraining = model.training;
        model.eval();
        try
        {
            // The unit every stage's cost is stated in: one gradient pass (forward and backward) over the same examples,
            // the fastest of two before the stages and two after them; not counted in the stages' seconds.
            double gradientPass = GradientPassSeconds(new CurvatureProblem(model, x, y, loss, settings.ChunkSize));
            var measurement = new Measurement(checkpoint, settings, log ?? (_ => { }), topVectors);
            var diagonals = measurement.Timed("diagonals", () => Diagonals.Compute(model, x, y, new DiagonalOptions
            {
                Loss = loss, ChunkSize = settings.ChunkSize, ExactGgn = settings.ExactGgn, McSamples = settings.McSamples,
                Paths = settings.Paths, Seed = settings.Seed,
            }));
            var problem = new CurvatureProblem(model, x, y, loss, settings.ChunkSize);
            GgnOperator NewGgn() => new(problem, settings.ExactGgn ? diagonals.Flatten(p => p.Ggn) : null);
            var operators = settings.Operators.Distinct()
                .Select(name => name == "hessian" ? (ICurvatureOperator)new HessianOperator(problem) : NewGgn()).ToList();
            foreach (var op in operators) measurement.Operator(problem, op);
            PreconditionedTraces? preconditioned = null;
            if (preconditioner is not null)
            {
                using var op = new PreconditionedOperator(operators.OfType<GgnOperator>().FirstOrDefault() ?? NewGgn(),
                    preconditioner.Diagonal, PreconditionedTraces.GgnOperatorName);
                measurement.Operator(problem, op, op.ToParameterSpace);
                preconditioned = PreconditionedTraces.From(preconditioner, diagonals);
            }
            var noiseScale = new List<NoiseScaleEstimate>
            {
                GradientNoise.FromDiagonals(diagonals),
                measurement.Timed("two_batch", () => GradientNoise.TwoBatch(problem, settings.SmallBatch, measurement.NextGenerator())),
            };
            // Timed again after the stages, and the faster kept: on a shared machine a burst of load during the first two
            // passes would otherwise shrink every ratio of the checkpoint (seen: 0.77 s against 0.019 s for the same pass).
            gradientPass = Math.Min(gradientPass, GradientPassSeconds(problem));
            return new CurvatureReport(checkpoint, settings.Examples, diagonals.Dimension, diagonals.Loss,
                settings.ExactGgn ? "ggn_exact" : "mc_fisher", diagonals,
                SpectrumBinning.Bin(diagonals, settings.BinsPerDecade), SpectrumBinning.ZeroCurvatureCount(diagonals), Traces(diagonals, settings),
                measurement.Hutchinson, measurement.Eigen, measurement.Density, noiseScale, SpectrumBinning.FitNoiseToCurvature(diagonals),
                measurement.Seconds, settings, gradientPass)
            {
                Preconditioned = preconditioned,
            };
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>The basis-independent traces of the diagonal pass.</summary>
    static DiagonalTraces Traces(CurvatureDiagonals diagonals, CurvatureSettings settings) => new(
        settings.ExactGgn ? diagonals.Parameters.Sum(p => p.Ggn!.Sum()) : null,
        settings.McSamples > 0 ? diagonals.Parameters.Sum(p => p.McFisher!.Sum()) : null,
        diagonals.Parameters.Sum(p => p.SecondMoment.Sum()),
        diagonals.Parameters.Sum(p => p.NoiseVariance.Sum()),
        diagonals.Parameters.Sum(p => p.MeanGradient.Sum(g => g * g)),
        diagonals.Parameters.Max(p => p.Curvature.Max()));

    /// <summary>
    /// What one checkpoint's measurement accumulates: each stage's seconds, and per operator its Hutchinson trace, top
    /// eigenpairs (with the gradient noise along them) and SLQ density. Every estimator draws from its own generator,
    /// numbered in the order the stages run (seed × 1000 + 1, + 2, …), so a measurement repeats exactly.
    /// </summary>
    sealed class Measurement(string checkpoint, CurvatureSettings settings, Action<string> log, Action<string, IReadOnlyList<Tensor>>? topVectors)
    {
        ulong _stream = settings.Seed * 1000;
        public Dictionary<string, double> Seconds { get; } = [];
        public Dictionary<string, TraceEstimate> Hutchinson { get; } = [];
        public List<EigenRow> Eigen { get; } = [];
        public Dictionary<string, IReadOnlyList<DensityNode>> Density { get; } = [];

        public Generator NextGenerator() => new(++_stream);

        public T Timed<T>(string name, Func<T> f)
        {
            log($"{checkpoint}: {name} ...");
            var watch = Stopwatch.StartNew();
            var result = f();
            Seconds[name] = watch.Elapsed.TotalSeconds;
            return result;
        }

        /// <summary>
        /// Hutchinson, the top eigenpairs with the gradient noise along them, and the SLQ density of one operator;
        /// <paramref name="toParameters"/> maps an eigenvector to the parameter-space direction the noise is measured along.
        /// </summary>
        public void Operator(CurvatureProblem problem, ICurvatureOperator op, Func<Tensor, Tensor>? toParameters = null)
        {
            if (settings.HutchinsonProbes > 0)
                Hutchinson[op.Name] = Timed($"hutchinson_{op.Name}", () => Spectral.Hutchinson.Trace(op, settings.HutchinsonProbes, NextGenerator()));
            if (settings.TopK > 0)
            {
                var pairs = Timed($"lanczos_{op.Name}", () => Lanczos.Top(op, settings.TopK, NextGenerator(), settings.LanczosSteps));
                topVectors?.Invoke(op.Name, pairs.Select(p => p.Vector).ToList());
                var noise = settings.EigenNoise
                    ? Timed($"eigen_noise_{op.Name}", () => GradientNoise.AlongDirections(problem, pairs.Select(p => toParameters is null ? p.Vector : toParameters(p.Vector)).ToList()))
                    : null;
                Eigen.AddRange(pairs.Select((p, i) => new EigenRow(op.Name, i + 1, p.Value, p.Residual, noise?[i].NoiseVariance, noise?[i].MeanProjectionSquared)));
            }
            if (settings.SlqProbes > 0)
                Density[op.Name] = Timed($"slq_{op.Name}", () => SpectralDensity.Estimate(op, settings.SlqProbes, settings.SlqSteps, NextGenerator()));
        }
    }

    /// <summary>Seconds of one gradient pass of the mean loss over the problem's examples, chunk by chunk (the faster of two).</summary>
    static double GradientPassSeconds(CurvatureProblem problem)
    {
        double best = double.PositiveInfinity;
        var parameters = problem.Parameters();
        for (int pass = 0; pass < 2; pass++)
        {
            var watch = Stopwatch.StartNew();
            foreach (var (start, length) in problem.Chunks())
            {
                using var scope = NewDisposeScope();
                var output = problem.Model.call(problem.Inputs.narrow(0, start, length));
                using var examples = problem.Examples.ToScalar(); // held to the end of the call (torchsharp.md §2)
                var chunkLoss = OutputLoss.PerExample(problem.Loss, output, problem.Targets.narrow(0, start, length)).sum().div(examples);
                var grads = autograd.grad([chunkLoss], parameters);
            }
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return best;
    }
}
