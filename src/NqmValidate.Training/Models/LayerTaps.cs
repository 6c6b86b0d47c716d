using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Models;

/// <summary>
/// A Linear or Conv2d layer of a model, seen from outside: its parameters by name and, while its <see cref="LayerTaps"/>
/// captures, the input it received and the output it produced on the last forward pass. Whatever needs per-layer
/// statistics builds on these: a weight's per-example gradient is gy xᵀ (Linear) or gy · patches(x) (Conv2d), so the
/// curvature stage's per-example gradients and K-FAC's Kronecker factors (E[x xᵀ], E[gy gyᵀ]) both start here.
/// </summary>
public sealed class LayerTap
{
    public required string Layer { get; init; }
    public required string Kind { get; init; }
    public required nn.Module Module { get; init; }
    public required string WeightName { get; init; }
    public string? BiasName { get; init; }
    /// <summary>How many times the layer ran in the last captured forward pass (1 for a static, non-shared layer).</summary>
    public int Calls { get; internal set; }
    /// <summary>The layer's input in the last captured forward pass (an alias in the caller's dispose scope).</summary>
    public Tensor? Input { get; internal set; }
    /// <summary>The layer's output in the last captured forward pass, part of the autograd graph: gradients of the loss with respect to it are the layer's output gradients.</summary>
    public Tensor? Output { get; internal set; }

    public IEnumerable<string> ParameterNames => BiasName is null ? [WeightName] : [WeightName, BiasName];

    public static LayerTap? TryCreate(string name, nn.Module module, IReadOnlyDictionary<string, Parameter> parameters)
    {
        if (module is not (Linear or Conv2d)) return null;
        string prefix = name.Length == 0 ? "" : name + ".";
        bool hasBias = module switch { Linear l => l.bias is not null, Conv2d c => c.bias is not null, _ => false };
        string weight = prefix + "weight";
        string? bias = hasBias ? prefix + "bias" : null;
        if (!parameters.ContainsKey(weight) || (bias is not null && !parameters.ContainsKey(bias))) return null;
        // A subclass that registers more parameters than weight and bias is not a plain layer.
        if (module.named_parameters(false).Count() != (hasBias ? 2 : 1)) return null;
        return new LayerTap
        {
            Layer = name.Length == 0 ? "(model)" : name,
            Kind = module is Linear ? "Linear" : "Conv2d",
            Module = module,
            WeightName = weight,
            BiasName = bias,
        };
    }

    /// <summary>Null when per-example products (and the patches below) apply to this layer as it is configured, else why not.</summary>
    public string? Unsupported()
    {
        if (Module is not Conv2d conv) return null;
        if (conv.groups != 1) return $"grouped convolution (groups = {conv.groups})";
        if (conv.padding_mode != PaddingModes.Zeros) return $"padding mode {conv.padding_mode}";
        if (conv.kernel_size.Length != 2) return "kernel is not 2-D";
        if (ConvPadding(conv) is null) return "asymmetric 'same' padding";
        return null;
    }

    /// <summary>The convolution's (rows, columns) zero padding, or null when it is not symmetric.</summary>
    public static (long, long)? ConvPadding(Conv2d conv)
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
    /// The convolution's input patches (B, Cin·kh·kw, L) in nn.functional.unfold's layout (channel slowest, then kernel
    /// row and column; positions row-major), built from a zero-padded copy by sliding-window views and one strided copy:
    /// about twice as fast as nn.functional.unfold on the CPU.
    /// </summary>
    public static Tensor Patches(Tensor x, Conv2d conv)
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
}

/// <summary>
/// Forward hooks on every Linear and Conv2d layer of a model (the model itself included) that capture each layer's
/// input and output while a <see cref="Capture"/> scope is open; outside one the hooks do nothing.
/// </summary>
public sealed class LayerTaps : IDisposable
{
    readonly List<LayerTap> _taps = [];
    readonly List<IDisposable> _hooks = [];
    bool _capturing;

    public LayerTaps(nn.Module<Tensor, Tensor> model)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var modules = new List<(string Name, nn.Module Module)> { ("", model) };
        modules.AddRange(model.named_modules().Where(m => m.name.Length > 0));
        foreach (var (name, module) in modules)
        {
            var tap = LayerTap.TryCreate(name, module, parameters);
            if (tap is null) continue;
            _taps.Add(tap);
            var hook = ((nn.Module<Tensor, Tensor>)module).register_forward_hook((_, input, output) =>
            {
                if (_capturing)
                {
                    tap.Calls++;
                    tap.Input = input.alias();
                    tap.Output = output.alias();
                }
                return output;
            });
            _hooks.Add(new Release(hook.remove));
        }
    }

    /// <summary>The tapped layers, in module order.</summary>
    public IReadOnlyList<LayerTap> Taps => _taps;

    /// <summary>Forgets the last capture and captures the forward passes run until the returned scope is disposed.</summary>
    public IDisposable Capture()
    {
        foreach (var tap in _taps) { tap.Calls = 0; tap.Input = null; tap.Output = null; }
        _capturing = true;
        return new Release(() => _capturing = false);
    }

    public void Dispose()
    {
        foreach (var hook in _hooks) hook.Dispose();
        _hooks.Clear();
    }

    sealed class Release(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
