using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>The loss attached to the network output (logits / predictions z).</summary>
public enum LossKind
{
    /// <summary>Softmax cross-entropy with integer class targets: ℓ_n = −log softmax(z_n)[y_n].</summary>
    CrossEntropy,
    /// <summary>Squared error with float targets of the output's shape: ℓ_n = ½‖z_n − y_n‖² (so its Hessian in z is I).</summary>
    MeanSquaredError,
}

/// <summary>Thrown for inputs the curvature code cannot use (wrong shapes, unknown names, bad settings).</summary>
public sealed class CurvatureInputException(string message) : Exception(message);

/// <summary>
/// Per-example quantities of the output loss that every estimator needs, all computed from a detached
/// output z of shape (B, C). The training loss is the mean over examples of ℓ_n; everything here is per
/// example, so callers divide sums over examples by N exactly once.
/// </summary>
public static class OutputLoss
{
    /// <summary>Per-example losses ℓ_n, shape (B). Differentiable in z.</summary>
    public static Tensor PerExample(LossKind loss, Tensor z, Tensor targets)
    {
        CheckTargets(loss, z, targets);
        return loss switch
        {
            LossKind.CrossEntropy => -nn.functional.log_softmax(z, 1).gather(1, targets.unsqueeze(1)).squeeze(1),
            _ => 0.5 * (z - targets).square().sum(1),
        };
    }

    /// <summary>∂ℓ_n/∂z_n with the true targets, shape (B, C): softmax(z) − onehot(y), or z − y.</summary>
    public static Tensor Gradient(LossKind loss, Tensor z, Tensor targets)
    {
        CheckTargets(loss, z, targets);
        using var zd = z.detach();
        return loss switch
        {
            LossKind.CrossEntropy => nn.functional.softmax(zd, 1) - nn.functional.one_hot(targets, zd.shape[1]).to(zd.dtype),
            _ => zd - targets,
        };
    }

    /// <summary>
    /// Column k of a square root S of the loss Hessian in z (S Sᵀ = ∂²ℓ_n/∂z_n²), one row per example.
    /// Cross-entropy: H = diag(p) − ppᵀ and S = diag(√p) − p√pᵀ, so column k is √p_k (e_k − p).
    /// Squared error: H = I, column k is e_k.
    /// </summary>
    public static Tensor HessianSqrtColumn(LossKind loss, Tensor z, long k)
    {
        using var zd = z.detach();
        long classes = zd.shape[1];
        using var ek = nn.functional.one_hot(full(zd.shape[0], k, dtype: ScalarType.Int64), classes).to(zd.dtype);
        if (loss == LossKind.MeanSquaredError) return ek.clone();
        using var p = nn.functional.softmax(zd, 1);
        using var sqrtPk = p.narrow(1, k, 1).sqrt();
        return sqrtPk * (ek - p);
    }

    /// <summary>
    /// ∂ℓ_n/∂z_n for a target drawn from the model's own predictive distribution: the Monte-Carlo
    /// Fisher's seed. Cross-entropy: p − onehot(ŷ), ŷ ~ Categorical(p). Squared error: ŷ = z + ε with
    /// ε ~ N(0, I), so the seed is −ε. Either way E[seed seedᵀ] is the loss Hessian in z.
    /// </summary>
    public static Tensor SampledGradient(LossKind loss, Tensor z, Generator generator)
    {
        using var zd = z.detach();
        if (loss == LossKind.MeanSquaredError)
            return -randn(zd.shape, dtype: zd.dtype, generator: generator);
        using var p = nn.functional.softmax(zd, 1);
        using var sampled = multinomial(p, 1, true, generator).squeeze(1);
        return p - nn.functional.one_hot(sampled, zd.shape[1]).to(zd.dtype);
    }

    /// <summary>Loss Hessian in z applied to u per example: p⊙u − p(pᵀu) for cross-entropy, u for squared error.</summary>
    public static Tensor HessianTimes(LossKind loss, Tensor z, Tensor u)
    {
        if (loss == LossKind.MeanSquaredError) return u.detach().clone();
        using var zd = z.detach();
        using var p = nn.functional.softmax(zd, 1);
        using var pu = (p * u).sum(1, keepdim: true);
        return p * u - p * pu;
    }

    static void CheckTargets(LossKind loss, Tensor z, Tensor targets)
    {
        if (z.dim() != 2)
            throw new CurvatureInputException($"the model output must have shape (batch, outputs); got ({string.Join(", ", z.shape)}).");
        if (loss == LossKind.CrossEntropy)
        {
            if (targets.dtype != ScalarType.Int64 || targets.dim() != 1 || targets.shape[0] != z.shape[0])
                throw new CurvatureInputException(
                    $"cross-entropy needs int64 class targets of shape ({z.shape[0]}); got {targets.dtype} ({string.Join(", ", targets.shape)}).");
        }
        else if (!targets.shape.SequenceEqual(z.shape))
        {
            throw new CurvatureInputException(
                $"squared error needs targets of the output's shape ({string.Join(", ", z.shape)}); got ({string.Join(", ", targets.shape)}).");
        }
    }
}
