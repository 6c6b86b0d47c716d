using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// Adam: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², θ ← θ − η/(1−β1ᵗ) · m/(√v/√(1−β2ᵗ) + ε), with the operations
/// of TorchSharp 0.107's <c>optim.Adam</c> (no weight decay, no AMSGrad) and its Scalars held alive
/// (<see cref="ParameterUpdateRule"/>).
/// </summary>
public sealed class AdamRule : ParameterUpdateRule
{
    readonly double _beta1, _beta2;
    readonly Scalar _b1, _oneMinusB1, _b2, _oneMinusB2, _epsilon, _one;
    readonly Tensor[] _m, _v;
    readonly long[] _t;

    public AdamRule(IEnumerable<Parameter> parameters, double beta1, double beta2, double epsilon) : base(parameters)
    {
        (_beta1, _beta2) = (beta1, beta2);
        (_b1, _oneMinusB1, _b2, _oneMinusB2, _epsilon) =
            (beta1.ToScalar(), (1.0 - beta1).ToScalar(), beta2.ToScalar(), (1.0 - beta2).ToScalar(), epsilon.ToScalar());
        // TorchSharp's add_(Scalar) adds with an int alpha of 1.
        _one = 1.ToScalar();
        _m = Parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        _v = Parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        _t = new long[Parameters.Count];
    }

    protected override void Update(double learningRate)
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            var grad = Parameters[i].grad;
            if (grad is null) continue;
            long t = ++_t[i];
            double biasCorrection1 = 1.0 - Math.Pow(_beta1, t), biasCorrection2 = 1.0 - Math.Pow(_beta2, t);
            _m[i].mul_(_b1).add_(grad, _oneMinusB1);
            _v[i].mul_(_b2).addcmul_(grad, grad.conj(), _oneMinusB2);
            using var sqrtBiasCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            using var minusStepSize = (0.0 - learningRate / biasCorrection1).ToScalar();
            var denominator = _v[i].sqrt().div(sqrtBiasCorrection2).add_(_epsilon, _one);
            Parameters[i].addcdiv_(_m[i], denominator, minusStepSize);
        }
    }

    /// <summary>
    /// P = 1/(√(v/(1−β2ᵗ)) + ε) per coordinate: the denominator <see cref="Update"/> divides the first moment by, in
    /// float64, one tensor per parameter in the model's order; null before the first step (there is no v yet).
    /// </summary>
    public override IReadOnlyList<Tensor>? DiagonalPreconditioner()
    {
        if (_t.Any(t => t == 0)) return null;
        using var noGrad = no_grad();
        return _v.Select((v, i) =>
        {
            using var scope = NewDisposeScope();
            // Scalars held in locals until the calls return (no temporaries from double: ParameterUpdateRule's remarks).
            using var biasCorrection2 = (1.0 - Math.Pow(_beta2, _t[i])).ToScalar();
            return v.to_type(ScalarType.Float64).div(biasCorrection2).sqrt_().add_(_epsilon, _one).reciprocal_().DetachFromDisposeScope();
        }).ToList();
    }

    public override void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
        foreach (var s in new[] { _b1, _oneMinusB1, _b2, _oneMinusB2, _epsilon, _one }) s.Dispose();
    }
}
