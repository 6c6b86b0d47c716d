using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Curvature.PerExample;

/// <summary>Per-example gradient statistics of one parameter over one chunk.</summary>
internal readonly record struct ChunkStatistics(Tensor SumOfSquares, Tensor? Sum);

/// <summary>A Linear or Conv2d layer whose input and output are captured by a forward hook.</summary>
internal sealed class Tap
{
    public required string Layer { get; init; }
    public required string Kind { get; init; }
    public required nn.Module Module { get; init; }
    public required string WeightName { get; init; }
    public string? BiasName { get; init; }
    public int Calls { get; set; }
    public Tensor? Input { get; set; }
    public Tensor? Output { get; set; }
    public bool Fast { get; set; }

    public IEnumerable<string> ParameterNames => BiasName is null ? [WeightName] : [WeightName, BiasName];

    public static Tap? TryCreate(string name, nn.Module module, IReadOnlyDictionary<string, Parameter> parameters)
    {
        if (module is not (Linear or Conv2d)) return null;
        string prefix = name.Length == 0 ? "" : name + ".";
        bool hasBias = module switch { Linear l => l.bias is not null, Conv2d c => c.bias is not null, _ => false };
        string weight = prefix + "weight";
        string? bias = hasBias ? prefix + "bias" : null;
        if (!parameters.ContainsKey(weight) || (bias is not null && !parameters.ContainsKey(bias))) return null;
        // A subclass that registers more parameters than weight and bias is not a plain layer.
        if (module.named_parameters(false).Count() != (hasBias ? 2 : 1)) return null;
        return new Tap
        {
            Layer = name.Length == 0 ? "(model)" : name,
            Kind = module is Linear ? "Linear" : "Conv2d",
            Module = module,
            WeightName = weight,
            BiasName = bias,
        };
    }

    /// <summary>Null when the fast rule applies, else why not.</summary>
    public string? Unsupported()
    {
        if (Module is not Conv2d conv) return null;
        if (conv.groups != 1) return $"grouped convolution (groups = {conv.groups})";
        if (conv.padding_mode != PaddingModes.Zeros) return $"padding mode {conv.padding_mode}";
        if (conv.kernel_size.Length != 2) return "kernel is not 2-D";
        if (ConvPadding(conv) is null) return "asymmetric 'same' padding";
        return null;
    }

    static (long, long)? ConvPadding(Conv2d conv)
    {
        if (conv.padding is { Length: 2 } p) return (p[0], p[1]);
        if (conv.padding is { Length: 1 } q) return (q[0], q[0]);
        if (conv.padding_type == Padding.Valid) return (0, 0);
        if (conv.padding_type == Padding.Same)
        {
            long t0 = conv.dilation[0] * (conv.kernel_size[0] - 1), t1 = conv.dilation[1] * (conv.kernel_size[1] - 1);
            if (t0 % 2 != 0 || t1 % 2 != 0) return null;
            return (t0 / 2, t1 / 2);
        }
        return null;
    }

    /// <summary>Per-chunk work shared by every seed: the squared input (Linear) or the unfolded patches (Conv2d).</summary>
    public Prepared Prepare()
    {
        // Detached: the statistics are not differentiated, so no autograd graph is recorded for them.
        var x = Input?.detach() ?? throw new InvalidOperationException($"layer {Layer}: no input captured");
        if (Module is Linear)
        {
            long batch = x.shape[0];
            if (x.dim() == 2) return new Prepared(this, x, x.square(), null);
            // (B, ..., in): each example sums over its positions, so work with per-example products.
            var flat = x.reshape(batch, -1, x.shape[^1]);
            return new Prepared(this, flat, null, null);
        }
        var conv = (Conv2d)Module;
        var pad = ConvPadding(conv)!.Value;
        var patches = nn.functional.unfold(x, (conv.kernel_size[0], conv.kernel_size[1]),
            dilation: (conv.dilation[0], conv.dilation[^1]), padding: pad, stride: (conv.stride[0], conv.stride[^1]));
        return new Prepared(this, patches, null, conv);
    }

    internal sealed class Prepared(Tap tap, Tensor x, Tensor? xSquared, Conv2d? conv)
    {
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

        /// <summary>
        /// Statistics of weight and bias for one seed, from the output gradient gy of this layer, for the layers that
        /// do not factorise (Conv2d, Linear on (B, T, in)): per-example weight gradients, squared and summed.
        /// </summary>
        public IEnumerable<(string Name, ChunkStatistics Stats)> PerExampleGradients(Tensor gy, bool keepSum)
        {
            long batch = gy.shape[0];
            Tensor perExampleWeight, perExampleBias;
            if (conv is null)
            {
                // Linear on (B, T, in): per-example gradient Σ_t gy_{n,t} x_{n,t}ᵀ.
                var g = gy.reshape(batch, -1, gy.shape[^1]);
                perExampleWeight = g.transpose(1, 2).bmm(x);
                perExampleBias = g.sum(1);
            }
            else
            {
                // Conv2d: x holds unfolded patches (B, Cin·kh·kw, L); gy is (B, Cout, L) after flattening.
                var g = gy.reshape(batch, gy.shape[1], -1);
                perExampleWeight = g.bmm(x.transpose(1, 2));
                perExampleBias = g.sum(2);
            }
            long[]? weightShape = conv?.weight.shape;
            var w = perExampleWeight;
            // The sum first: the per-example gradients are then squared in place (they are this call's own temporary,
            // often the largest tensor of the chunk).
            var weightSum = keepSum ? Reshape(w.sum(0L), weightShape) : null;
            yield return (tap.WeightName, new ChunkStatistics(Reshape(w.pow_(2).sum(0L), weightShape), weightSum));
            if (tap.BiasName is not null)
                yield return (tap.BiasName, new ChunkStatistics(perExampleBias.square().sum(0L), keepSum ? perExampleBias.sum(0L) : null));
        }

        static Tensor Reshape(Tensor t, long[]? shape) => shape is null ? t : t.reshape(shape);
    }
}
