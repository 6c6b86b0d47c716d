using System.Diagnostics;
using NqmValidate.Curvature.PerExample;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>Settings of <see cref="Diagonals.Compute"/>.</summary>
public sealed record DiagonalOptions
{
    public LossKind Loss { get; init; } = LossKind.CrossEntropy;
    /// <summary>Examples per forward pass (memory vs speed).</summary>
    public int ChunkSize { get; init; } = 512;
    /// <summary>Compute the exact GGN diagonal (C backward passes per chunk, C = outputs).</summary>
    public bool ExactGgn { get; init; } = true;
    /// <summary>Sampled labels per example for the Monte-Carlo Fisher diagonal; 0 skips it.</summary>
    public int McSamples { get; init; } = 1;
    public PathPolicy Paths { get; init; } = PathPolicy.Auto;
    /// <summary>Seed of the label sampler (the MC Fisher is reproducible given it).</summary>
    public ulong Seed { get; init; } = 1;

    public void Validate()
    {
        if (ChunkSize < 1) throw new CurvatureInputException($"chunk size must be ≥ 1; got {ChunkSize}.");
        if (McSamples < 0) throw new CurvatureInputException($"MC samples must be ≥ 0; got {McSamples}.");
        if (!ExactGgn && McSamples == 0) throw new CurvatureInputException("nothing to estimate h from: enable the exact GGN or set MC samples ≥ 1.");
    }
}

/// <summary>
/// Per-parameter quantities of one parameter tensor over N examples (flattened, float64):
/// <list type="bullet">
/// <item><c>Ggn</c>: exact GGN diagonal, (1/N) Σ_n Σ_k (J_nᵀ S_n e_k)², S_n S_nᵀ the loss Hessian in z.</item>
/// <item><c>McFisher</c>: (1/(N M)) Σ_n Σ_m (∇ℓ(z_n, ŷ_nm))², ŷ sampled from the model.</item>
/// <item><c>MeanGradient</c>: g = (1/N) Σ_n ∇ℓ_n with the true targets.</item>
/// <item><c>SecondMoment</c>: the empirical Fisher diagonal (1/N) Σ_n (∇ℓ_n)².</item>
/// <item><c>NoiseVariance</c>: c = SecondMoment − g², the per-example gradient variance (docs/design/validation-protocol.md §2).</item>
/// </list>
/// </summary>
public sealed record ParameterDiagonal(
    string Name, string Layer, long[] Shape, LayerPath Path,
    double[]? Ggn, double[]? McFisher, double[] MeanGradient, double[] SecondMoment)
{
    public double[] NoiseVariance { get; } = Variance(SecondMoment, MeanGradient);

    static double[] Variance(double[] secondMoment, double[] mean)
    {
        if (secondMoment.Length != mean.Length) throw new ArgumentException("second moment and mean differ in length");
        var c = GC.AllocateUninitializedArray<double>(mean.Length);
        for (int i = 0; i < c.Length; i++) c[i] = Math.Max(secondMoment[i] - mean[i] * mean[i], 0.0);
        return c;
    }

    /// <summary>The curvature h the NQM uses: the exact GGN diagonal when present, else the MC Fisher.</summary>
    public double[] Curvature => Ggn ?? McFisher!;
}

/// <summary>All per-parameter diagonals of a model at one checkpoint, in model.parameters() order.</summary>
public sealed record CurvatureDiagonals(
    long Examples, double Loss, IReadOnlyList<ParameterDiagonal> Parameters, IReadOnlyList<LayerPathReport> Layers,
    int McSamples, double Seconds)
{
    public long Dimension => Parameters.Sum(p => (long)p.MeanGradient.Length);

    /// <summary>Concatenates one per-parameter array over all parameters (model order).</summary>
    public double[] Flatten(Func<ParameterDiagonal, double[]?> select) =>
        Parameters.SelectMany(p => select(p) ?? throw new InvalidOperationException($"quantity not computed for {p.Name}")).ToArray();
}

/// <summary>Computes the diagonals of <see cref="ParameterDiagonal"/> with one forward per chunk and one backward per seed.</summary>
public static class Diagonals
{
    public static CurvatureDiagonals Compute(nn.Module<Tensor, Tensor> model, Tensor inputs, Tensor targets, DiagonalOptions options)
    {
        options.Validate();
        long n = inputs.shape[0];
        if (n < 1) throw new CurvatureInputException("no examples given.");
        if (targets.shape[0] != n) throw new CurvatureInputException($"inputs have {n} examples but targets {targets.shape[0]}.");
        var watch = Stopwatch.StartNew();
        var sampler = new Generator(options.Seed);
        using var lossSum = zeros(1, dtype: ScalarType.Float64);
        using var engine = new PerExampleGradients(model, options.Paths);
        for (long start = 0; start < n; start += options.ChunkSize)
        {
            long length = Math.Min(options.ChunkSize, n - start);
            var y = targets.narrow(0, start, length);
            engine.AccumulateChunk(inputs.narrow(0, start, length), z =>
            {
                lossSum.add_(OutputLoss.PerExample(options.Loss, z, y).sum());
                var groups = new List<SeedGroup> { new("truth", [OutputLoss.Gradient(options.Loss, z, y)], KeepSum: true) };
                if (options.ExactGgn)
                    groups.Add(new("ggn", Enumerable.Range(0, (int)z.shape[1]).Select(k => OutputLoss.HessianSqrtColumn(options.Loss, z, k)).ToList(), false));
                if (options.McSamples > 0)
                    groups.Add(new("mc", Enumerable.Range(0, options.McSamples).Select(_ => OutputLoss.SampledGradient(options.Loss, z, sampler)).ToList(), false));
                return groups;
            });
        }
        double inv = 1.0 / n;
        var parameters = engine.Parameters.Select(p => new ParameterDiagonal(
            p.Name, p.Layer, p.Shape, p.Path,
            options.ExactGgn ? engine.SumOfSquares("ggn", p.Name, inv) : null,
            options.McSamples > 0 ? engine.SumOfSquares("mc", p.Name, inv / options.McSamples) : null,
            engine.Sum("truth", p.Name, inv),
            engine.SumOfSquares("truth", p.Name, inv))).ToList();
        return new CurvatureDiagonals(n, lossSum.ToDouble() * inv, parameters, engine.Layers.ToList(), options.McSamples, watch.Elapsed.TotalSeconds);
    }
}
