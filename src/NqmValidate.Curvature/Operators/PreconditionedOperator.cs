using static TorchSharp.torch;

namespace NqmValidate.Curvature.Operators;

/// <summary>
/// P^½ A P^½ for a positive diagonal P: the curvature an update θ ← θ − η P⊙d sees. In the coordinates z = P^-½ θ that
/// update is plain (momentum) gradient descent, the loss's curvature there is P^½ A P^½ and its gradient noise
/// P^½ Σ P^½, so a preconditioned optimizer's NQM is the plain one on this operator's spectrum.
/// </summary>
public sealed class PreconditionedOperator : ICurvatureOperator, IDisposable
{
    readonly ICurvatureOperator _inner;
    readonly Tensor _sqrtP;

    /// <param name="inner">A (flat float64 vectors, same dimension).</param>
    /// <param name="preconditioner">P, flat float64, every entry finite and positive; the operator keeps its own square root.</param>
    /// <param name="name">The name in files (e.g. ggn-preconditioned).</param>
    public PreconditionedOperator(ICurvatureOperator inner, Tensor preconditioner, string name)
    {
        if (preconditioner.dim() != 1 || preconditioner.shape[0] != inner.Dimension)
            throw new ArgumentException($"preconditioner of shape ({string.Join(", ", preconditioner.shape)}) for an operator of dimension {inner.Dimension}", nameof(preconditioner));
        if (!preconditioner.isfinite().all().item<bool>() || preconditioner.min().item<double>() <= 0)
            throw new ArgumentException("the preconditioner must be finite and positive everywhere", nameof(preconditioner));
        _inner = inner;
        _sqrtP = preconditioner.to_type(ScalarType.Float64).sqrt().DetachFromDisposeScope();
        Name = name;
        if (inner.Diagonal is { } d)
        {
            var p = preconditioner.to_type(ScalarType.Float64).data<double>().ToArray();
            Diagonal = d.Select((x, i) => x * p[i]).ToArray();
        }
    }

    public string Name { get; }
    public long Dimension => _inner.Dimension;
    public double[]? Diagonal { get; }

    public Tensor Multiply(Tensor v)
    {
        using var scope = NewDisposeScope();
        return (_sqrtP * _inner.Multiply(_sqrtP * v)).MoveToOuterDisposeScope();
    }

    public IReadOnlyList<Tensor> MultiplyMany(IReadOnlyList<Tensor> vs)
    {
        using var scope = NewDisposeScope();
        return _inner.MultiplyMany(vs.Select(v => _sqrtP * v).ToList()).Select(av => (_sqrtP * av).MoveToOuterDisposeScope()).ToList();
    }

    /// <summary>A direction u of z-space as a direction of parameter space, P^½ u: the gradient noise along u is (P^½u)ᵀΣ(P^½u).</summary>
    public Tensor ToParameterSpace(Tensor u) => _sqrtP * u;

    public void Dispose() => _sqrtP.Dispose();
}
