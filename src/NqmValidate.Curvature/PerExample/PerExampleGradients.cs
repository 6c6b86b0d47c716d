using NqmValidate.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Curvature.PerExample;

/// <summary>How the per-example statistics of one layer's parameters were computed.</summary>
public enum LayerPath
{
    /// <summary>From the layer's hooked input and output gradient in one batched pass (Linear, Conv2d).</summary>
    Fast,
    /// <summary>One backward pass per example: exact for any layer, slow.</summary>
    Loop,
}

/// <summary>Which layers may use the fast path.</summary>
public enum PathPolicy
{
    /// <summary>Linear and Conv2d layers whose hooks fire once per forward take the fast path; the rest loop.</summary>
    Auto,
    /// <summary>Every layer loops over examples (the reference, and the benchmark's baseline).</summary>
    ForceLoop,
}

/// <summary>The path one layer took, with the reason when it is not the fast path.</summary>
public sealed record LayerPathReport(string Layer, string Kind, LayerPath Path, long Parameters, string Reason);

/// <summary>One parameter tensor of the model as the per-example engine sees it.</summary>
public sealed record ParameterSlot(string Name, string Layer, long[] Shape, LayerPath Path)
{
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Seeds for the backward pass of one chunk: each seed is a (B, C) matrix of output-gradients, one row
/// per example, backpropagated separately. The engine sums over examples and over the group's seeds the
/// squared per-example parameter gradients and, when <see cref="KeepSum"/>, the per-example gradients.
/// </summary>
public sealed record SeedGroup(string Key, IReadOnlyList<Tensor> Seeds, bool KeepSum);

/// <summary>
/// Sums over examples of squared per-example gradients (and of the gradients), for every parameter.
/// <para>
/// Fast path (Linear, Conv2d): forward hooks keep each layer's input x and output o; one
/// <c>autograd.grad</c> of the output z with respect to every hooked o, with the seed as grad_outputs,
/// gives each example's output gradient gy. The per-example weight gradient is gy_n x_nᵀ, so
/// Σ_n (gy_n x_nᵀ)² = (gy²)ᵀ(x²) for Linear; for Conv2d the same after unfolding x into patches
/// (per-example product gy_n X_nᵀ, then squared and summed). Bias gradients are gy summed over positions.
/// </para>
/// <para>
/// Loop path: any other parameterised layer (or a Linear/Conv2d whose hook does not fire exactly once)
/// gets one forward and backward per example. The model is put in eval mode while this runs, so that
/// examples do not interact (dropout off, batch norm on running statistics); per-example gradients are
/// only meaningful then.
/// </para>
/// </summary>
public sealed class PerExampleGradients : IDisposable
{
    readonly nn.Module<Tensor, Tensor> _model;
    readonly LayerTaps? _layerTaps;
    readonly List<LayerTap> _taps = [];
    readonly HashSet<LayerTap> _fast = [];
    readonly List<(ParameterSlot Slot, Parameter Tensor)> _loopParameters = [];
    readonly Dictionary<string, Parameter> _parameters;
    readonly List<ParameterSlot> _slots = [];
    readonly Dictionary<(string Group, string Name), RunningSum> _sumSq = [];
    readonly Dictionary<(string Group, string Name), RunningSum> _sum = [];
    readonly List<LayerPathReport> _reports = [];
    readonly bool _wasTraining;
    bool _decided;
    int _chunks;
    readonly PathPolicy _policy;

    public PerExampleGradients(nn.Module<Tensor, Tensor> model, PathPolicy policy = PathPolicy.Auto)
    {
        _model = model;
        _policy = policy;
        _wasTraining = model.training;
        model.eval();
        _parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        if (_parameters.Count == 0) throw new CurvatureInputException("the model has no parameters.");

        // The layer taps (Training's, shared with update rules that need layer statistics) capture each Linear and
        // Conv2d layer's input and output; with ForceLoop every parameter goes through the per-example loop instead.
        if (policy != PathPolicy.ForceLoop)
        {
            _layerTaps = new LayerTaps(model);
            _taps.AddRange(_layerTaps.Taps);
        }
    }

    /// <summary>Every parameter with its layer and path (valid after the first chunk).</summary>
    public IReadOnlyList<ParameterSlot> Parameters => _slots;

    /// <summary>Which path each layer took (valid after the first chunk).</summary>
    public IReadOnlyList<LayerPathReport> Layers => _reports;

    /// <summary>
    /// Runs one chunk: a forward pass of <paramref name="inputs"/>, then <paramref name="seeds"/> is called
    /// with the detached output z (B, C) and returns the seed groups to backpropagate.
    /// </summary>
    public void AccumulateChunk(Tensor inputs, Func<Tensor, IReadOnlyList<SeedGroup>> seeds)
    {
        using var scope = NewDisposeScope();
        Tensor z;
        using (_layerTaps?.Capture()) z = _model.call(inputs);
        if (z.dim() != 2)
            throw new CurvatureInputException($"the model output must have shape (batch, outputs); got ({string.Join(", ", z.shape)}).");
        if (!_decided) Decide();
        else if (_taps.Any(t => _fast.Contains(t) && t.Calls != 1))
            throw new InvalidOperationException("a hooked layer fired a different number of times than in the first chunk; the model's forward is not static.");

        var groups = seeds(z.detach());
        var fast = _taps.Where(_fast.Contains).ToList();
        if (fast.Count > 0) AccumulateFast(z, fast, groups, lastUseOfGraph: _loopParameters.Count == 0);
        if (_loopParameters.Count > 0) AccumulateLoop(inputs, groups);
        if (++_chunks % RunningSum.FlushEvery == 0)
        {
            foreach (var sum in _sumSq.Values) sum.Flush();
            foreach (var sum in _sum.Values) sum.Flush();
        }
    }

    /// <summary>
    /// Output gradients of the per-example layers (Conv2d, Linear on (B, T, in)) are kept across seeds up to this many
    /// bytes, so that each sub-batch's patches serve several seeds; beyond it they are used and dropped.
    /// </summary>
    const long PendingBytes = 256L << 20;

    void AccumulateFast(Tensor z, List<LayerTap> fast, IReadOnlyList<SeedGroup> groups, bool lastUseOfGraph)
    {
        var prepared = fast.Select(PreparedLayer.Of).ToList();
        var outputs = fast.Select(t => t.Output!).ToList();
        int lastGroup = groups.Count - 1;
        while (lastGroup >= 0 && groups[lastGroup].Seeds.Count == 0) lastGroup--;
        var pending = new List<(int Tap, SeedGroup Group, Tensor Gy)>();
        long pendingBytes = 0;
        for (int g = 0; g < groups.Count; g++)
        {
            var group = groups[g];
            // Linear layers on (B, in) factorise: Σ_seeds Σ_n (gy_n x_nᵀ)² = (Σ_seeds gy²)ᵀ(x²), so the squared
            // output gradients of all the group's seeds are summed first and multiplied once (C seeds, one product).
            var squaredSums = new Tensor?[fast.Count];
            var sums = new Tensor?[fast.Count];
            for (int s = 0; s < group.Seeds.Count; s++)
            {
                using (var inner = NewDisposeScope())
                {
                    // The graph is kept for the next seed, and freed during the last backward pass when nothing follows.
                    bool retain = !(lastUseOfGraph && g == lastGroup && s == group.Seeds.Count - 1);
                    var gys = torch.autograd.grad([z], outputs, [group.Seeds[s]], retain_graph: retain);
                    for (int i = 0; i < fast.Count; i++)
                    {
                        var gy = gys[i];
                        if (!prepared[i].Factorises)
                        {
                            pending.Add((i, group, gy.MoveToOuterDisposeScope()));
                            pendingBytes += gy.numel() * gy.element_size();
                            continue;
                        }
                        if (squaredSums[i] is null) squaredSums[i] = gy.square().MoveToOuterDisposeScope();
                        else squaredSums[i]!.addcmul_(gy, gy, 1);
                        if (group.KeepSum)
                        {
                            // The gradient with respect to the output z itself may be the seed tensor: copy it
                            // before adding into it.
                            if (sums[i] is null) sums[i] = (group.Seeds.Count == 1 ? gy : gy.clone()).MoveToOuterDisposeScope();
                            else sums[i]!.add_(gy);
                        }
                    }
                }
                if (pendingBytes > PendingBytes) { AccumulatePending(fast, prepared, pending); pendingBytes = 0; }
            }
            for (int i = 0; i < fast.Count; i++)
            {
                if (squaredSums[i] is null) continue;
                prepared[i].AccumulateFactorised(squaredSums[i]!, sums[i],
                    name => Running(_sumSq, group.Key, name), name => Running(_sum, group.Key, name));
            }
        }
        AccumulatePending(fast, prepared, pending);
    }

    /// <summary>The per-example layers' statistics for the kept output gradients, layer by layer; then drops them.</summary>
    void AccumulatePending(List<LayerTap> fast, List<PreparedLayer> prepared, List<(int Tap, SeedGroup Group, Tensor Gy)> pending)
    {
        foreach (var layer in pending.GroupBy(p => p.Tap))
        {
            var tap = fast[layer.Key];
            prepared[layer.Key].AccumulatePerExample(layer.Select(p => (
                p.Gy,
                Running(_sumSq, p.Group.Key, tap.WeightName),
                p.Group.KeepSum ? Running(_sum, p.Group.Key, tap.WeightName) : null,
                tap.BiasName is null ? null : Running(_sumSq, p.Group.Key, tap.BiasName),
                tap.BiasName is not null && p.Group.KeepSum ? Running(_sum, p.Group.Key, tap.BiasName) : null)).ToList());
        }
        foreach (var p in pending) p.Gy.Dispose();
        pending.Clear();
    }

    void AccumulateLoop(Tensor inputs, IReadOnlyList<SeedGroup> groups)
    {
        var tensors = _loopParameters.Select(p => (Tensor)p.Tensor).ToList();
        long batch = inputs.shape[0];
        for (long n = 0; n < batch; n++)
        {
            using var scope = NewDisposeScope();
            var zn = _model.call(inputs.narrow(0, n, 1));
            foreach (var group in groups)
            {
                foreach (var seed in group.Seeds)
                {
                    var grads = torch.autograd.grad([zn], tensors, [seed.narrow(0, n, 1)], retain_graph: true);
                    for (int i = 0; i < grads.Count; i++)
                    {
                        string name = _loopParameters[i].Slot.Name;
                        Running(_sumSq, group.Key, name).AddExact(grads[i].square());
                        if (group.KeepSum) Running(_sum, group.Key, name).AddExact(grads[i]);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Σ over examples and over the group's seeds of the squared per-example gradient, times <paramref name="scale"/>
    /// (applied while copying out), float64, flattened.
    /// </summary>
    public double[] SumOfSquares(string group, string parameter, double scale = 1.0) => Read(_sumSq, group, parameter, scale);

    /// <summary>Σ over examples of the per-example gradient (groups with KeepSum), times <paramref name="scale"/>, float64, flattened.</summary>
    public double[] Sum(string group, string parameter, double scale = 1.0) => Read(_sum, group, parameter, scale);

    double[] Read(Dictionary<(string, string), RunningSum> store, string group, string parameter, double scale)
    {
        if (!store.TryGetValue((group, parameter), out var sum))
        {
            var slot = _slots.FirstOrDefault(s => s.Name == parameter)
                ?? throw new ArgumentException($"unknown parameter '{parameter}'", nameof(parameter));
            return new double[slot.Count];
        }
        return sum.Read(scale);
    }

    static RunningSum Running(Dictionary<(string, string), RunningSum> store, string group, string name)
    {
        var key = (group, name);
        if (!store.TryGetValue(key, out var sum)) store[key] = sum = new RunningSum();
        return sum;
    }

    void Decide()
    {
        _decided = true;
        var owned = new HashSet<string>();
        foreach (var tap in _taps)
        {
            string? problem = tap.Calls != 1 ? $"forward hook fired {tap.Calls} times (needs exactly 1)" : tap.Unsupported();
            bool isFast = problem is null;
            if (isFast) _fast.Add(tap);
            var path = isFast ? LayerPath.Fast : LayerPath.Loop;
            foreach (var name in tap.ParameterNames) owned.Add(name);
            _reports.Add(new LayerPathReport(tap.Layer, tap.Kind, path, tap.ParameterNames.Sum(n => _parameters[n].numel()), problem ?? ""));
            foreach (var name in tap.ParameterNames)
            {
                var slot = new ParameterSlot(name, tap.Layer, _parameters[name].shape, path);
                _slots.Add(slot);
                if (!isFast) _loopParameters.Add((slot, _parameters[name]));
            }
        }
        // Everything not owned by a fast-capable layer loops, grouped by the module that owns it.
        var rest = _parameters.Where(p => !owned.Contains(p.Key)).ToList();
        foreach (var layerGroup in rest.GroupBy(p => LayerOf(p.Key)))
        {
            string reason = _policy == PathPolicy.ForceLoop ? "loop forced" : "no fast rule for this layer type";
            _reports.Add(new LayerPathReport(layerGroup.Key, KindOf(layerGroup.Key), LayerPath.Loop, layerGroup.Sum(p => p.Value.numel()), reason));
            foreach (var (name, parameter) in layerGroup)
            {
                var slot = new ParameterSlot(name, layerGroup.Key, parameter.shape, LayerPath.Loop);
                _slots.Add(slot);
                _loopParameters.Add((slot, parameter));
            }
        }
        // Keep the model's own parameter order so flattened vectors line up with model.parameters().
        var order = _parameters.Keys.Select((k, i) => (k, i)).ToDictionary(t => t.k, t => t.i);
        _slots.Sort((a, b) => order[a.Name].CompareTo(order[b.Name]));
    }

    static string LayerOf(string parameterName)
    {
        int dot = parameterName.LastIndexOf('.');
        return dot < 0 ? "(model)" : parameterName[..dot];
    }

    string KindOf(string layer)
    {
        if (layer == "(model)") return _model.GetType().Name;
        var module = _model.named_modules().FirstOrDefault(m => m.name == layer).module;
        return module?.GetType().Name ?? "?";
    }

    public void Dispose()
    {
        _layerTaps?.Dispose();
        foreach (var t in _sumSq.Values) t.Dispose();
        foreach (var t in _sum.Values) t.Dispose();
        _sumSq.Clear();
        _sum.Clear();
        if (_wasTraining) _model.train();
    }
}
