using NqmValidate.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Curvature.PerExample;

/// <summary>
/// One tapped layer's captured input, prepared once per chunk for the per-example statistics of every seed
/// (<see cref="PerExampleGradients"/>): Linear layers on (B, in) factorise, the others go through per-example products.
/// </summary>
internal sealed class PreparedLayer(LayerTap tap, Tensor x, Tensor? xSquared, Conv2d? conv)
{
    /// <summary>
    /// Per-chunk work shared by every seed: the squared input (Linear on (B, in)); for the layers that need
    /// per-example products (Conv2d, Linear on (B, T, in)) only the detached input, taken apart per sub-batch later.
    /// </summary>
    public static PreparedLayer Of(LayerTap tap)
    {
        // Detached: the statistics are not differentiated, so no autograd graph is recorded for them.
        var x = tap.Input?.detach() ?? throw new InvalidOperationException($"layer {tap.Layer}: no input captured");
        if (tap.Module is Linear)
        {
            long batch = x.shape[0];
            if (x.dim() == 2) return new PreparedLayer(tap, x, x.square(), null);
            // (B, ..., in): each example sums over its positions, so work with per-example products.
            var flat = x.reshape(batch, -1, x.shape[^1]);
            return new PreparedLayer(tap, flat, null, null);
        }
        return new PreparedLayer(tap, x, null, (Conv2d)tap.Module);
    }

    /// <summary>A Linear layer on (B, in): statistics follow from Σ_seeds gy² and Σ_seeds gy alone.</summary>
    public bool Factorises => conv is null && xSquared is not null;

    /// <summary>
    /// For <see cref="Factorises"/> layers, one seed group: from S = Σ_seeds gy² (B, out) and G = Σ_seeds gy, adds
    /// the weight's Σ_n Σ_seeds (gy x_nᵀ)² = Sᵀ(x²) and Σ_n gy x_nᵀ = Gᵀx straight into the running sums
    /// (addmm_, no weight-sized temporaries), and the bias's sums of S and G over examples.
    /// </summary>
    public void AccumulateFactorised(Tensor squaredSum, Tensor? sum, Func<string, RunningSum> sumOfSquares, Func<string, RunningSum> sums)
    {
        sumOfSquares(tap.WeightName).AddProduct(squaredSum.t(), xSquared!);
        if (sum is not null) sums(tap.WeightName).AddProduct(sum.t(), x);
        if (tap.BiasName is null) return;
        sumOfSquares(tap.BiasName).Add(squaredSum.sum(0L));
        if (sum is not null) sums(tap.BiasName).Add(sum.sum(0L));
    }

    /// <summary>Bytes of per-example temporaries a sub-batch may take (patches, per-example weight gradients).</summary>
    const long SubBatchBytes = 8L << 20;

    /// <summary>
    /// For the layers that do not factorise (Conv2d, Linear on (B, T, in)): adds, for each seed (its output gradient
    /// gy of this layer), Σ_n W_n² and, when asked, Σ_n W_n of the per-example weight gradients W_n, and the same for
    /// the bias. Examples go through in sub-batches whose temporaries stay small (no page faults of fresh memory, and
    /// they stay in cache); the patches of a sub-batch are built once and serve every seed.
    /// </summary>
    public void AccumulatePerExample(IReadOnlyList<(Tensor Gy, RunningSum SumOfSquares, RunningSum? Sum,
        RunningSum? BiasSumOfSquares, RunningSum? BiasSum)> seeds)
    {
        if (seeds.Count == 0) return;
        long batch = x.shape[0];
        // Per example: gy as (rows, positions); rows × columns is the weight gradient's matrix shape.
        var gys = seeds.Select(s => conv is null ? s.Gy.reshape(batch, -1, s.Gy.shape[^1]).transpose(1, 2) : s.Gy.reshape(batch, s.Gy.shape[1], -1)).ToList();
        long rows = gys[0].shape[1], positions = gys[0].shape[2];
        long columns = conv is null ? x.shape[^1] : x.shape[1] * conv.kernel_size[0] * conv.kernel_size[1];
        long bytesPerExample = Math.Max(columns * positions, rows * columns) * x.element_size();
        long sub = Math.Clamp(SubBatchBytes / Math.Max(bytesPerExample, 1), 1, batch);
        var sq = seeds.Select(_ => zeros(rows, columns, dtype: x.dtype)).ToList();
        var sum = seeds.Select(s => s.Sum is null ? null : zeros(rows, columns, dtype: x.dtype)).ToList();
        for (long start = 0; start < batch; start += sub)
        {
            using var scope = NewDisposeScope();
            long length = Math.Min(sub, batch - start);
            // (b, positions, columns): the input rows each output position sees.
            var inputs = conv is null ? x.narrow(0, start, length) : LayerTap.Patches(x.narrow(0, start, length), conv).transpose(1, 2);
            for (int s = 0; s < seeds.Count; s++)
            {
                var w = gys[s].narrow(0, start, length).bmm(inputs);
                // The sum first: the per-example gradients are then squared in place (this loop's own temporary).
                sum[s]?.add_(w.sum(0L));
                sq[s].add_(w.pow_(2).sum(0L));
            }
        }
        long[]? weightShape = conv?.weight.shape;
        for (int s = 0; s < seeds.Count; s++)
        {
            seeds[s].SumOfSquares.Add(Reshape(sq[s], weightShape));
            if (sum[s] is not null) seeds[s].Sum!.Add(Reshape(sum[s]!, weightShape));
            if (seeds[s].BiasSumOfSquares is null) continue;
            var perExampleBias = gys[s].sum(2); // (B, rows)
            seeds[s].BiasSumOfSquares!.Add(perExampleBias.square().sum(0L));
            seeds[s].BiasSum?.Add(perExampleBias.sum(0L));
        }
    }

    static Tensor Reshape(Tensor t, long[]? shape) => shape is null ? t : t.reshape(shape);
}
