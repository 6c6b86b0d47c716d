using NqmValidate.Training.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// K-FAC's update rule (the choices are in <see cref="KfacFamily"/>): one forward pass with the layer taps capturing,
/// one backward pass for the parameters' gradients and the layers' output gradients together, then under no_grad the
/// factors' running averages, every T steps their eigendecompositions, the preconditioned directions, and heavy ball
/// on them. Every Scalar passed to LibTorch is a field of the rule or a <c>using</c> local (ParameterUpdateRule's
/// remarks, docs/design/torchsharp.md §2).
/// </summary>
public sealed class KfacRule : IUpdateRule
{
    readonly LayerTaps _taps;
    readonly IReadOnlyList<Parameter> _parameters;
    readonly Dictionary<string, int> _index;
    readonly int _inverseEvery;
    readonly bool _momentum;
    readonly Scalar _mu, _one, _decay, _oneMinusDecay, _damping, _zero;
    readonly Tensor?[] _velocity;
    List<Layer>? _layers;
    long _steps;

    /// <summary>One tapped layer preconditioned by K-FAC, with its factors and their last eigendecomposition.</summary>
    sealed class Layer(LayerTap tap, int weight, int? bias)
    {
        public LayerTap Tap { get; } = tap;
        public int Weight { get; } = weight;
        public int? Bias { get; } = bias;
        public Tensor? A, S, QA, QS, InverseEigenvalues;

        public void Dispose()
        {
            foreach (var t in new[] { A, S, QA, QS, InverseEigenvalues }) t?.Dispose();
        }
    }

    public KfacRule(nn.Module<Tensor, Tensor> model, double momentum, double damping, double factorDecay, int inverseEvery)
    {
        if (!(momentum >= 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "must be in [0, 1)");
        if (!(damping > 0) || !double.IsFinite(damping)) throw new ArgumentOutOfRangeException(nameof(damping), damping, "must be positive");
        if (!(factorDecay >= 0 && factorDecay < 1)) throw new ArgumentOutOfRangeException(nameof(factorDecay), factorDecay, "must be in [0, 1)");
        if (inverseEvery < 1) throw new ArgumentOutOfRangeException(nameof(inverseEvery), inverseEvery, "must be at least 1");
        var named = model.named_parameters().ToList();
        _parameters = named.Select(p => p.parameter).ToList();
        _index = named.Select((p, i) => (p.name, i)).ToDictionary(p => p.name, p => p.i);
        _taps = new LayerTaps(model);
        _inverseEvery = inverseEvery;
        _momentum = momentum > 0;
        (_mu, _one, _decay, _oneMinusDecay, _damping, _zero) =
            (momentum.ToScalar(), 1.0.ToScalar(), factorDecay.ToScalar(), (1.0 - factorDecay).ToScalar(), damping.ToScalar(), 0.0.ToScalar());
        _velocity = new Tensor?[_parameters.Count];
    }

    /// <summary>The layers K-FAC preconditions (known after the first step), in module order.</summary>
    public IReadOnlyList<string> Layers => _layers?.Select(l => l.Tap.Layer).ToList() ?? [];

    /// <summary>
    /// Copies of each preconditioned layer's factors now: A over the input (with the bias's 1 last when the layer has a
    /// bias) and S over the output gradient, new tensors the caller owns; empty before the first step.
    /// </summary>
    public IReadOnlyList<(string Layer, Tensor A, Tensor S)> Factors()
    {
        using var noGrad = no_grad();
        return _layers?.Select(l => (l.Tap.Layer, l.A!.clone().DetachFromDisposeScope(), l.S!.clone().DetachFromDisposeScope())).ToList() ?? [];
    }

    public Tensor Step(Func<Tensor> loss, double learningRate)
    {
        Tensor value;
        using (_taps.Capture()) value = loss();
        _layers ??= Decide();
        using (var scope = NewDisposeScope())
        {
            // One backward pass: the gradients with respect to the layers' outputs (their output gradients) and to every parameter.
            var inputs = _layers.Select(l => l.Tap.Output!).Concat(_parameters.Select(p => (Tensor)p)).ToList();
            var grads = torch.autograd.grad([value], inputs);
            using (no_grad())
                Update(grads.Take(_layers.Count).ToList(), grads.Skip(_layers.Count).ToList(), learningRate);
        }
        // The Scalars held in fields stay reachable through this object until every native call has returned.
        GC.KeepAlive(this);
        return value;
    }

    /// <summary>
    /// The layers taken at the first step: Linear and Conv2d layers that ran exactly once in the forward pass, whose
    /// per-example products apply (<see cref="LayerTap.Unsupported"/>) and whose output is differentiated; the other
    /// parameters get heavy ball on their plain gradient.
    /// </summary>
    List<Layer> Decide() => _taps.Taps
        .Where(t => t.Calls == 1 && t.Unsupported() is null && t.Output is { requires_grad: true } && _index.ContainsKey(t.WeightName))
        .Select(t => new Layer(t, _index[t.WeightName], t.BiasName is null ? null : _index[t.BiasName]))
        .ToList();

    void Update(IReadOnlyList<Tensor> outputGradients, IReadOnlyList<Tensor> gradients, double learningRate)
    {
        long step = ++_steps;
        bool refresh = (step - 1) % _inverseEvery == 0;
        var directions = gradients.ToArray();
        for (int i = 0; i < _layers!.Count; i++)
        {
            var layer = _layers[i];
            if (layer.Tap.Calls != 1)
                throw new InvalidOperationException($"K-FAC: layer {layer.Tap.Layer} ran {layer.Tap.Calls} times in this forward pass (once at the first step); the model's forward is not static.");
            var (aBatch, sBatch) = BatchFactors(layer.Tap, outputGradients[i]);
            Average(ref layer.A, aBatch);
            Average(ref layer.S, sBatch);
            if (refresh) Refresh(layer);
            Precondition(layer, directions);
        }
        using var minusLearningRate = (0.0 - learningRate).ToScalar();
        for (int j = 0; j < _parameters.Count; j++)
        {
            var d = directions[j];
            if (_momentum)
            {
                var v = _velocity[j];
                if (v is null) v = _velocity[j] = d.clone().DetachFromDisposeScope();
                else v.mul_(_mu).add_(d, _one);
                d = v;
            }
            _parameters[j].add_(d, minusLearningRate);
        }
    }

    /// <summary>
    /// This batch's factors: A = mean of a aᵀ over examples (and positions), a with a 1 appended for the bias; S = Σ over
    /// positions, mean over examples, of g gᵀ with g = B·(output gradient of the mean loss), the per-example gradient.
    /// </summary>
    (Tensor A, Tensor S) BatchFactors(LayerTap tap, Tensor outputGradient)
    {
        var x = tap.Input!.detach();
        long batch = x.shape[0];
        Tensor a, g;
        if (tap.Module is Conv2d conv)
        {
            a = LayerTap.Patches(x, conv).transpose(1, 2); // (B, positions, Cin·kh·kw)
            a = a.reshape(-1, a.shape[^1]);
            g = outputGradient.permute(0, 2, 3, 1);        // (B, Hout, Wout, Cout)
            g = g.reshape(-1, g.shape[^1]);
        }
        else
        {
            a = x.reshape(-1, x.shape[^1]);
            g = outputGradient.reshape(-1, outputGradient.shape[^1]);
        }
        if (tap.BiasName is not null) a = cat([a, ones(a.shape[0], 1, dtype: a.dtype, device: a.device)], 1);
        using var samples = ((double)a.shape[0]).ToScalar();
        using var batchSize = ((double)batch).ToScalar();
        // Σ_rows (B·gy)(B·gy)ᵀ / B = B · Σ_rows gy gyᵀ.
        return (a.t().matmul(a).div_(samples), g.t().matmul(g).mul_(batchSize));
    }

    void Average(ref Tensor? running, Tensor batch)
    {
        if (running is null) { running = batch.detach().clone().DetachFromDisposeScope(); return; }
        running.mul_(_decay).add_(batch, _oneMinusDecay);
    }

    /// <summary>Eigendecompositions of A and S, and 1/(λ_S,i λ_A,j + λ) for the (output, input) grid of the layer's gradient.</summary>
    void Refresh(Layer layer)
    {
        var (eigenA, qA) = linalg.eigh(layer.A!);
        var (eigenS, qS) = linalg.eigh(layer.S!);
        // Both factors are positive semidefinite; rounding can make their smallest eigenvalues slightly negative.
        eigenA.clamp_min_(_zero);
        eigenS.clamp_min_(_zero);
        var inverse = eigenS.unsqueeze(1).mul(eigenA.unsqueeze(0)).add_(_damping, _one).reciprocal_();
        Replace(ref layer.QA, qA);
        Replace(ref layer.QS, qS);
        Replace(ref layer.InverseEigenvalues, inverse);
    }

    static void Replace(ref Tensor? field, Tensor value)
    {
        field?.Dispose();
        field = value.DetachFromDisposeScope();
    }

    /// <summary>
    /// d = Q_S [(Q_Sᵀ G Q_A) ⊙ 1/(λ_S λ_Aᵀ + λ)] Q_Aᵀ for the layer's gradient G = [∂W | ∂b] (outputs × inputs, the bias
    /// as the last column): (A ⊗ S + λI)⁻¹ vec(G) in the factors' eigenbasis. Writes the weight's and bias's parts into
    /// <paramref name="directions"/>.
    /// </summary>
    void Precondition(Layer layer, Tensor[] directions)
    {
        var weight = directions[layer.Weight];
        var g = weight.reshape(weight.shape[0], -1);
        if (layer.Bias is int b) g = cat([g, directions[b].unsqueeze(1)], 1);
        var rotated = layer.QS!.t().matmul(g).matmul(layer.QA!).mul_(layer.InverseEigenvalues!);
        var d = layer.QS!.matmul(rotated).matmul(layer.QA!.t());
        long columns = weight.numel() / weight.shape[0];
        directions[layer.Weight] = d.narrow(1, 0, columns).reshape(weight.shape);
        if (layer.Bias is int bias) directions[bias] = d.select(1, columns).contiguous();
    }

    public void Dispose()
    {
        _taps.Dispose();
        foreach (var l in _layers ?? []) l.Dispose();
        foreach (var v in _velocity) v?.Dispose();
        foreach (var s in new[] { _mu, _one, _decay, _oneMinusDecay, _damping, _zero }) s.Dispose();
    }
}
