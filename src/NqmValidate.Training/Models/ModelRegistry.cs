using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Models;

/// <summary>Model name → factory with its defaults. Unknown names and options fail with the valid names.</summary>
public static class ModelRegistry
{
    sealed record Entry(string Description, Func<ModelSpec, ModelSpec> Resolve, Func<ModelSpec, nn.Module<Tensor, Tensor>> Build);

    static readonly int[] DefaultHidden = [256, 256];

    static readonly Dictionary<string, Entry> Entries = new()
    {
        ["mlp"] = new("MLP 784-256-256-10, ReLU (--hidden-widths)",
            s => s with { HiddenWidths = s.HiddenWidths ?? DefaultHidden },
            s => Networks.Mlp(s.HiddenWidths!)),
        ["cnn"] = Cnn("Shallue's simple CNN: conv5×5 32, pool, conv5×5 64, pool, fc 1024, fc 10", 1.0),
        ["cnn-narrow"] = Cnn("simple CNN at half width (16/32/512)", 0.5),
        ["cnn-wide"] = Cnn("simple CNN at double width (64/128/2048)", 2.0),
        ["resnet"] = ResNet("ResNet-8 style for 28×28 (stem, 3 stages 16/32/64, batch norm; --blocks-per-stage, --width-multiplier)", true),
        ["resnet-nonorm"] = ResNet("the same ResNet without normalisation layers (no batch statistics; Fixup-style zero-init residual branches)", false),
    };

    static Entry Cnn(string description, double width) => new(description,
        s => s with { WidthMultiplier = s.WidthMultiplier ?? 1.0 },
        s => Networks.SimpleCnn(width * s.WidthMultiplier!.Value));

    static Entry ResNet(string description, bool batchNorm) => new(description,
        s => s with { WidthMultiplier = s.WidthMultiplier ?? 1.0, BlocksPerStage = s.BlocksPerStage ?? 1 },
        s => Networks.ResNet(s.WidthMultiplier!.Value, s.BlocksPerStage!.Value, batchNorm));

    /// <summary>The registered model names.</summary>
    public static IReadOnlyCollection<string> Names => Entries.Keys;

    /// <summary>One line per model: name and description.</summary>
    public static IEnumerable<(string Name, string Description)> Describe() => Entries.Select(e => (e.Key, e.Value.Description));

    /// <summary>Checks the spec and fills in the family's defaults.</summary>
    public static ModelSpec Resolve(ModelSpec spec)
    {
        if (!Entries.TryGetValue(spec.Name, out var entry))
            throw new ModelSpecException($"Unknown model '{spec.Name}'. Valid: {string.Join(", ", Entries.Keys)}.");
        bool mlp = spec.Name == "mlp", resnet = spec.Name.StartsWith("resnet", StringComparison.Ordinal);
        if (spec.HiddenWidths is not null && !mlp)
            throw new ModelSpecException($"hidden_widths applies to the mlp only, not to '{spec.Name}'.");
        if (spec.HiddenWidths is { } h && (h.Length == 0 || h.Any(w => w < 1)))
            throw new ModelSpecException($"hidden_widths must be one or more positive widths, got [{string.Join(",", h)}].");
        if (spec.WidthMultiplier is not null && mlp)
            throw new ModelSpecException("width_multiplier applies to the cnn and resnet models; give the mlp hidden_widths instead.");
        if (spec.WidthMultiplier is { } w && !(w > 0 && w <= 16))
            throw new ModelSpecException($"width_multiplier must be in (0, 16], got {w}.");
        if (spec.BlocksPerStage is not null && !resnet)
            throw new ModelSpecException($"blocks_per_stage applies to the resnet models only, not to '{spec.Name}'.");
        if (spec.BlocksPerStage is { } b && b < 1)
            throw new ModelSpecException($"blocks_per_stage must be at least 1, got {b}.");
        return entry.Resolve(spec);
    }

    /// <summary>
    /// Builds the model with its initial weights drawn from its own <see cref="Generator"/> seeded with
    /// <paramref name="seed"/> (PyTorch's default initialisation distributions; see <see cref="Networks.Initialize"/>),
    /// so the same seed gives the same weights whatever else uses torch's global random state meanwhile.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Create(ModelSpec spec, long seed, Device? device = null)
    {
        var resolved = Resolve(spec);
        var model = Entries[resolved.Name].Build(resolved);
        using (var generator = new Generator((ulong)seed))
            Networks.Initialize(model, generator);
        if (device is not null && device.type != DeviceType.CPU) model.to(device);
        return model;
    }

    /// <summary>
    /// The convolutions whose output channel count is not a multiple of 16, as "name: channels" (none for the MLP and
    /// the registered widths). LibTorch 2.10's CPU convolution was seen to return NaN from finite inputs at 4, 12 and
    /// 24 channels on AVX-512 machines (docs/design/torchsharp.md §2), which a trial reads as divergence.
    /// </summary>
    public static IReadOnlyList<string> ChannelCountsOffTheGrid(ModelSpec spec)
    {
        using var model = Create(spec, seed: 0);
        return model.named_modules().Where(m => m.module is TorchSharp.Modules.Conv2d).Select(m => (m.name, Channels: ((TorchSharp.Modules.Conv2d)m.module).weight!.shape[0]))
            .Where(c => c.Channels % 16 != 0).Select(c => $"{c.name}: {c.Channels}").ToList();
    }

    /// <summary>Number of trainable scalars.</summary>
    public static long ParameterCount(nn.Module<Tensor, Tensor> model) => model.parameters().Sum(p => p.numel());
}
