using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Curvature.PerExample;

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

    /// <summary>
    /// Per-chunk work shared by every seed: the squared input (Linear on (B, in)); for the layers that need
    /// per-example products (Conv2d, Linear on (B, T, in)) only the detached input, taken apart per sub-batch later.
    /// </summary>
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
        return new Prepared(this, x, null, (Conv2d)Module);
    }

    /// <summary>
    /// The convolution's input patches (B, Cin·kh·kw, L) in nn.functional.unfold's layout (channel slowest, then kernel
    /// row and column; positions row-major), built from a zero-padded copy by sliding-window views and one strided copy:
    /// about twice as fast as nn.functional.unfold on the CPU.
    /// </summary>
    static Tensor Patches(Tensor x, Conv2d conv)
    {
        var (ph, pw) = ConvPadding(conv)!.Value;
        long kh = conv.kernel_size[0], kw = conv.kernel_size[1];
        long dh = conv.dilation[0], dw = conv.dilation[^1], sh = conv.stride[0], sw = conv.stride[^1];
        var padded = ph == 0 && pw == 0 ? x : nn.functional.pad(x, [pw, pw, ph, ph]);
        long spanH = dh * (kh - 1) + 1, spanW = dw * (kw - 1) + 1;
        // (B, Cin, Hout, Wout, spanH, spanW): every output position's receptive field, as a view.
        var windows = padded.unfold(2, spanH, sh).unfold(3, spanW, sw);
        if (dh > 1) windows = windows.slice(4, 0, spanH, dh);
        if (dw > 1) windows = windows.slice(5, 0, spanW, dw);
        long batch = x.shape[0], cin = x.shape[1], positions = windows.shape[2] * windows.shape[3];
        return windows.permute(0, 1, 4, 5, 2, 3).reshape(batch, cin * kh * kw, positions);
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
                var inputs = conv is null ? x.narrow(0, start, length) : Patches(x.narrow(0, start, length), conv).transpose(1, 2);
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
}
