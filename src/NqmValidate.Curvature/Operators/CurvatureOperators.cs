using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature.Operators;

/// <summary>
/// A symmetric curvature matrix seen only through products with vectors (and its diagonal when that
/// is cheap). Lanczos, Hutchinson and SLQ depend on nothing else.
/// </summary>
public interface ICurvatureOperator
{
    /// <summary>"hessian" or "ggn": the name used in files.</summary>
    string Name { get; }
    long Dimension { get; }
    /// <summary>A·v for a flat float64 vector v; returns a new flat float64 vector.</summary>
    Tensor Multiply(Tensor v);
    /// <summary>The exact diagonal when known, else null.</summary>
    double[]? Diagonal { get; }
}

/// <summary>Hessian of the mean loss: Hv = ∇(∇L · v), a double backward per chunk.</summary>
public sealed class HessianOperator(CurvatureProblem problem) : ICurvatureOperator
{
    public string Name => "hessian";
    public long Dimension { get; } = problem.Dimension;
    public double[]? Diagonal => null;

    public Tensor Multiply(Tensor v) => ChunkSum.Over(problem, v, (z, targets, vs, parameters) =>
    {
        var loss = OutputLoss.PerExample(problem.Loss, z, targets).sum() / problem.Examples;
        // retain_graph must be explicit: create_graph alone does not keep the graph (docs/design/torchsharp.md §2).
        var grads = torch.autograd.grad([loss], parameters, create_graph: true, retain_graph: true);
        var dot = grads.Zip(vs, (g, s) => (g * s).sum()).Aggregate((a, b) => a + b);
        return torch.autograd.grad([dot], parameters);
    });
}

/// <summary>
/// Generalised Gauss-Newton of the mean loss: Gv = (1/N) Σ_n J_nᵀ H_n J_n v. J v comes from the
/// double-backward trick (differentiate Jᵀw with respect to a dummy w), H_n is the loss Hessian in z.
/// </summary>
public sealed class GgnOperator(CurvatureProblem problem, double[]? diagonal = null) : ICurvatureOperator
{
    public string Name => "ggn";
    public long Dimension { get; } = problem.Dimension;
    public double[]? Diagonal => diagonal;

    public Tensor Multiply(Tensor v) => ChunkSum.Over(problem, v, (z, _, vs, parameters) =>
    {
        var w = zeros_like(z, requires_grad: true);
        var jtw = torch.autograd.grad([z], parameters, [w], create_graph: true, retain_graph: true);
        var jv = torch.autograd.grad(jtw, [w], vs, retain_graph: true)[0];
        var hjv = OutputLoss.HessianTimes(problem.Loss, z, jv) / problem.Examples;
        return torch.autograd.grad([z], parameters, [hjv]);
    });
}

/// <summary>The chunk loop both operators share: Σ over chunks of a per-chunk product, one dispose scope per chunk.</summary>
static class ChunkSum
{
    /// <param name="problem">Model, data and chunking.</param>
    /// <param name="v">The flat float64 vector multiplied.</param>
    /// <param name="product">(outputs z of the chunk, its targets, v split per parameter, parameters) → per-parameter product.</param>
    public static Tensor Over(CurvatureProblem problem, Tensor v,
        Func<Tensor, Tensor, List<Tensor>, IList<Tensor>, IList<Tensor>> product)
    {
        var parameters = problem.Parameters();
        // v is split (and cast to the parameters' dtype) once, not per chunk; the per-parameter products are summed
        // in float64 in place, and flattened once at the end.
        var vs = problem.Split(v).Select(t => t.DetachFromDisposeScope()).ToList();
        var sums = parameters.Select(p => zeros(p.shape, dtype: ScalarType.Float64).DetachFromDisposeScope()).ToList();
        try
        {
            foreach (var (start, length) in problem.Chunks())
            {
                using var scope = NewDisposeScope();
                var z = problem.Model.call(problem.Inputs.narrow(0, start, length));
                var parts = product(z, problem.Targets.narrow(0, start, length), vs, parameters);
                for (int i = 0; i < sums.Count; i++) sums[i].add_(parts[i].detach());
            }
            return CurvatureProblem.Flatten(sums);
        }
        finally
        {
            foreach (var t in vs) t.Dispose();
            foreach (var t in sums) t.Dispose();
        }
    }
}
