using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// SGD, heavy-ball momentum (v ← μv + g, θ ← θ − ηv; v starts at the first gradient) or Nesterov's look-ahead
/// (θ ← θ − η(g + μv)), with the operations of TorchSharp 0.107's <c>optim.SGD</c> (zero dampening and weight decay)
/// and its Scalars held alive (<see cref="ParameterUpdateRule"/>).
/// </summary>
public sealed class SgdRule : ParameterUpdateRule
{
    readonly double _momentum;
    readonly bool _nesterov;
    readonly Scalar? _mu, _oneMinusDampening;
    readonly Tensor?[] _velocity;

    public SgdRule(IEnumerable<Parameter> parameters, double momentum = 0, bool nesterov = false) : base(parameters)
    {
        if (nesterov && !(momentum > 0)) throw new ArgumentException("Nesterov momentum needs a positive momentum.", nameof(momentum));
        _momentum = momentum;
        _nesterov = nesterov;
        _velocity = new Tensor?[Parameters.Count];
        if (momentum != 0)
        {
            _mu = momentum.ToScalar();
            _oneMinusDampening = (1.0 - 0.0).ToScalar();
        }
    }

    protected override void Update(double learningRate)
    {
        using var minusLearningRate = (0.0 - learningRate).ToScalar();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var grad = Parameters[i].grad;
            if (grad is null) continue;
            if (_momentum != 0)
            {
                var v = _velocity[i];
                if (v is null) v = _velocity[i] = grad.clone().detach().DetachFromDisposeScope();
                else v.mul_(_mu!).add_(grad, _oneMinusDampening!);
                grad = _nesterov ? grad.add(v, _mu!) : v;
            }
            Parameters[i].add_(grad, minusLearningRate);
        }
    }

    public override void Dispose()
    {
        foreach (var v in _velocity) v?.Dispose();
        _mu?.Dispose();
        _oneMinusDampening?.Dispose();
    }
}
