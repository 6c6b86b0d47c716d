using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Stacks;

/// <summary>
/// The parameters of up to <see cref="Capacity"/> MLPs of one architecture (Flatten → (Linear → ReLU)* → Linear), stacked
/// along a leading member dimension: layer l's weight as a [K, in, out] tensor (each member's Linear weight transposed)
/// and its bias as [K, 1, out]. The forward pass of the first n members is one batched matrix product per layer
/// (<c>bmm</c>) over their [n, B, in] inputs, so n small trials cost one set of kernel launches instead of n.
/// </summary>
/// <remarks>
/// Members occupy slots 0..n−1 (a prefix, so the active part is a <c>narrow</c> view and autograd writes only those
/// rows of the gradients). A member's numbers depend only on its own rows: the CPU <c>bmm</c> multiplies each slot with
/// its own GEMM, and every other operation is element-wise or reduces within a slot, so a trial's curve is the same
/// whatever else shares the stack and in which slot (pinned by TrialStackTests). It is not bit for bit the curve of
/// the same trial trained alone: <c>Linear</c> folds the bias into its GEMM (<c>addmm</c>) where the stack adds it after
/// <c>bmm</c>, and the loss is reduced per slot; float32 rounding then differs from the first update on.
/// </remarks>
public sealed class MlpStack : IDisposable
{
    readonly Tensor[] _weights, _biases;

    public int Capacity { get; }

    /// <summary>The stacked tensors (weights and biases, layer by layer), leaves whose gradients backward fills.</summary>
    public IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>Why <paramref name="model"/> cannot be stacked (null when it can): only Flatten, Linear and ReLU layers in sequence.</summary>
    public static string? Unsupported(nn.Module model)
    {
        var children = model.named_children().Select(c => c.module).ToList();
        if (children.Count == 0 || children[0] is not Flatten) return "the stack trains MLPs (Flatten → Linear/ReLU → Linear) only";
        for (int i = 1; i < children.Count; i++)
        {
            bool linear = (i % 2) == 1;
            if (linear ? children[i] is not Linear { bias: not null } : children[i] is not ReLU)
                return "the stack trains MLPs (Flatten → Linear/ReLU → Linear, with biases) only";
        }
        return children[^1] is Linear ? null : "the stack trains MLPs ending in a Linear layer only";
    }

    static List<Linear> Layers(nn.Module model) =>
        Unsupported(model) is { } reason ? throw new NotSupportedException(reason)
            : model.named_children().Select(c => c.module).OfType<Linear>().ToList();

    /// <param name="template">A model of the architecture (its weights are not used).</param>
    /// <param name="capacity">Members at most.</param>
    public MlpStack(nn.Module template, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        var layers = Layers(template);
        var device = layers[0].weight!.device;
        _weights = layers.Select(l => zeros(new long[] { capacity, l.in_features, l.out_features }, device: device).requires_grad_(true)).ToArray();
        _biases = layers.Select(l => zeros(new long[] { capacity, 1, l.out_features }, device: device).requires_grad_(true)).ToArray();
        Parameters = _weights.Zip(_biases).SelectMany(p => new[] { p.First, p.Second }).ToList();
    }

    /// <summary>Copies <paramref name="model"/>'s weights into <paramref name="slot"/>.</summary>
    public void Load(int slot, nn.Module model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var layers = Layers(model);
        for (int l = 0; l < layers.Count; l++)
        {
            _weights[l][slot].copy_(layers[l].weight!.t());
            _biases[l][slot][0].copy_(layers[l].bias!);
        }
    }

    /// <summary>Copies <paramref name="slot"/>'s weights into <paramref name="model"/> (for evaluating that member).</summary>
    public void Store(int slot, nn.Module model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var layers = Layers(model);
        for (int l = 0; l < layers.Count; l++)
        {
            layers[l].weight!.copy_(_weights[l][slot].t());
            layers[l].bias!.copy_(_biases[l][slot][0]);
        }
    }

    /// <summary>Moves the member in slot <paramref name="from"/> to slot <paramref name="to"/> (keeping the active slots a prefix).</summary>
    public void Move(int from, int to)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var p in Parameters) p[to].copy_(p[from]);
    }

    /// <summary>
    /// Drops the gradients, so that backward hands each parameter its gradient tensor as computed instead of adding it
    /// into a zeroed one: one pass less over K × the model's parameters, which matters once they leave the cache.
    /// </summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            using var grad = p.grad;
            if (grad is not null) p.grad = null;
        }
    }

    /// <summary>The logits [n, B, classes] of the first <paramref name="members"/> slots for their inputs [n, B, ...].</summary>
    public Tensor Forward(Tensor inputs, int members)
    {
        var h = inputs.reshape(members, inputs.shape[1], -1);
        for (int l = 0; l < _weights.Length; l++)
        {
            h = bmm(h, _weights[l].narrow(0, 0, members)).add_(_biases[l].narrow(0, 0, members));
            if (l < _weights.Length - 1) h = nn.functional.relu(h);
        }
        return h;
    }

    public void Dispose()
    {
        foreach (var p in Parameters) p.Dispose();
    }
}
