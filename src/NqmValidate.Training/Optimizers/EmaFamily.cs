using NqmValidate.Training.Sweeps;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// SGD with an exponential moving average of its iterates (Polyak averaging with decay γ), the paper's EMA:
/// θ ← θ − η g, θ̄ ← γ θ̄ + (1 − γ) θ with θ̄ = θ at the start, and the trial is evaluated at θ̄. The NQM
/// models it with its EMA optimizer. Only parameters are averaged; buffers (batch-norm statistics) stay live.
/// </summary>
public sealed class EmaFamily : IOptimizerFamily
{
    public string Name => "ema";
    public string Description => "θ ← θ − η g, θ̄ ← γ θ̄ + (1 − γ) θ, evaluated at θ̄";
    public IReadOnlyList<Hyperparameter> Hyperparameters => [Hyperparameter.Decay("ema_decay", 0.99, "decay γ of the average of iterates")];
    public IReadOnlyList<SearchDimension> SearchDimensions => [new("one_minus_ema_decay", "ema_decay", OneMinus: true)];
    public double ScalingExponent => 1.0;
    public IReadOnlyList<string> NqmCounterparts(OptimizerSearch entry) => ["ema"];

    public IUpdateRule Create(OptimizerSpec resolved, nn.Module model) => new Rule(model, resolved["ema_decay"]!.Value);

    sealed class Rule : IUpdateRule
    {
        readonly SgdRule _sgd;
        readonly IReadOnlyList<Tensor> _parameters, _average, _live;
        // Held for the rule's life: a temporary Scalar can be freed during the native call (docs/design/torchsharp.md §2).
        readonly Scalar _decay, _oneMinusDecay;

        public Rule(nn.Module model, double decay)
        {
            (_decay, _oneMinusDecay) = (decay.ToScalar(), (1 - decay).ToScalar());
            _parameters = model.parameters().Select(p => (Tensor)p).ToList();
            _sgd = new SgdRule(model.parameters());
            using var noGrad = no_grad();
            _average = _parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToList();
            _live = _parameters.Select(p => empty_like(p).DetachFromDisposeScope()).ToList();
        }

        public Tensor Step(Func<Tensor> loss, double learningRate)
        {
            var value = _sgd.Step(loss, learningRate);
            using var noGrad = no_grad();
            for (int i = 0; i < _parameters.Count; i++)
                _average[i].mul_(_decay).add_(_parameters[i], _oneMinusDecay);
            GC.KeepAlive(this);
            return value;
        }

        public IDisposable? UseEvaluationWeights()
        {
            using (no_grad())
                for (int i = 0; i < _parameters.Count; i++)
                {
                    _live[i].copy_(_parameters[i]);
                    _parameters[i].copy_(_average[i]);
                }
            return new Restore(this);
        }

        sealed class Restore(Rule rule) : IDisposable
        {
            public void Dispose()
            {
                using var noGrad = no_grad();
                for (int i = 0; i < rule._parameters.Count; i++) rule._parameters[i].copy_(rule._live[i]);
            }
        }

        public void Dispose()
        {
            _sgd.Dispose();
            _decay.Dispose();
            _oneMinusDecay.Dispose();
            foreach (var t in _average.Concat(_live)) t.Dispose();
        }
    }
}
