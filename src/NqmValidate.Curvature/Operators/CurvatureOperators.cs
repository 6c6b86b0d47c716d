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
    /// <summary>
    /// A·v for several vectors at once, each result exactly what <see cref="Multiply"/> returns for it. Operators built
    /// on a model share each chunk's forward pass (and the first backward pass) among the vectors, which is where
    /// independent Lanczos runs (SLQ probes) and Hutchinson probes save time.
    /// </summary>
    IReadOnlyList<Tensor> MultiplyMany(IReadOnlyList<Tensor> vs) => vs.Select(Multiply).ToList();
    /// <summary>The exact diagonal when known, else null.</summary>
    double[]? Diagonal { get; }
}

/// <summary>
/// Hessian of the mean loss: Hv = ∇(∇L · v), a double backward per chunk. Several vectors share a chunk's forward pass
/// and its gradient graph (one backward with create_graph), then take one double backward each.
/// </summary>
public sealed class HessianOperator(CurvatureProblem problem) : ICurvatureOperator
{
    public string Name => "hessian";
    public long Dimension { get; } = problem.Dimension;
    public double[]? Diagonal => null;

    public Tensor Multiply(Tensor v) => MultiplyMany([v])[0];

    public IReadOnlyList<Tensor> MultiplyMany(IReadOnlyList<Tensor> vs) => ChunkSum.Over(problem, vs, (z, targets, parameters) =>
    {
        // The count as a Scalar held to the end of the call (an implicit long → Scalar temporary can be freed by a
        // concurrent GC mid-call: docs/design/torchsharp.md §2).
        using var examples = problem.Examples.ToScalar();
        var loss = OutputLoss.PerExample(problem.Loss, z, targets).sum().div(examples);
        // retain_graph must be explicit: create_graph alone does not keep the graph (docs/design/torchsharp.md §2).
        var grads = torch.autograd.grad([loss], parameters, create_graph: true, retain_graph: true);
        return (v, last) =>
        {
            var dot = grads.Zip(v, (g, s) => (g * s).sum()).Aggregate((a, b) => a + b);
            return torch.autograd.grad([dot], parameters, retain_graph: !last);
        };
    });
}

/// <summary>
/// Generalised Gauss-Newton of the mean loss: Gv = (1/N) Σ_n J_nᵀ H_n J_n v. J v comes from the
/// double-backward trick (differentiate Jᵀw with respect to a dummy w), H_n is the loss Hessian in z.
/// Several vectors share a chunk's forward pass and the graph of Jᵀw, then take J v and Jᵀ(H J v) each.
/// </summary>
public sealed class GgnOperator(CurvatureProblem problem, double[]? diagonal = null) : ICurvatureOperator
{
    public string Name => "ggn";
    public long Dimension { get; } = problem.Dimension;
    public double[]? Diagonal => diagonal;

    public Tensor Multiply(Tensor v) => MultiplyMany([v])[0];

    public IReadOnlyList<Tensor> MultiplyMany(IReadOnlyList<Tensor> vs) => ChunkSum.Over(problem, vs, (z, _, parameters) =>
    {
        var w = zeros_like(z, requires_grad: true);
        var jtw = torch.autograd.grad([z], parameters, [w], create_graph: true, retain_graph: true);
        return (v, last) =>
        {
            var jv = torch.autograd.grad(jtw, [w], v, retain_graph: true)[0];
            using var examples = problem.Examples.ToScalar(); // held to the end of the call (torchsharp.md §2)
            var hjv = OutputLoss.HessianTimes(problem.Loss, z, jv).div(examples);
            return torch.autograd.grad([z], parameters, [hjv], retain_graph: !last);
        };
    });
}

/// <summary>The chunk loop both operators share: Σ over chunks of a per-chunk product, one dispose scope per chunk.</summary>
static class ChunkSum
{
    /// <param name="problem">Model, data and chunking.</param>
    /// <param name="vs">The flat float64 vectors multiplied.</param>
    /// <param name="prepare">
    /// (outputs z of the chunk, its targets, parameters) → the chunk's product for one vector (split per parameter), told
    /// whether it is the chunk's last so that it can let the graph go. Whatever prepare builds is shared by the vectors.
    /// </param>
    /// <remarks>
    /// Each vector's per-chunk product runs the same operations as it would alone, and each vector's sum over chunks is
    /// added in the same order, so a product computed among others is bit for bit the one computed alone.
    /// </remarks>
    public static IReadOnlyList<Tensor> Over(CurvatureProblem problem, IReadOnlyList<Tensor> vs,
        Func<Tensor, Tensor, IList<Tensor>, Func<List<Tensor>, bool, IList<Tensor>>> prepare)
    {
        if (vs.Count == 0) return [];
        var parameters = problem.Parameters();
        // Each v is split (and cast to the parameters' dtype) once, not per chunk; the per-parameter products are summed
        // in float64 in place, and flattened once at the end.
        var split = vs.Select(v => problem.Split(v).Select(t => t.DetachFromDisposeScope()).ToList()).ToList();
        var sums = vs.Select(_ => parameters.Select(p => zeros(p.shape, dtype: ScalarType.Float64).DetachFromDisposeScope()).ToList()).ToList();
        try
        {
            foreach (var (start, length) in problem.Chunks())
            {
                using var scope = NewDisposeScope();
                var z = problem.Model.call(problem.Inputs.narrow(0, start, length));
                var product = prepare(z, problem.Targets.narrow(0, start, length), parameters);
                for (int k = 0; k < split.Count; k++)
                {
                    using var inner = NewDisposeScope();
                    var parts = product(split[k], k == split.Count - 1);
                    for (int i = 0; i < parameters.Count; i++) sums[k][i].add_(parts[i].detach());
                }
            }
            return sums.Select(CurvatureProblem.Flatten).ToList();
        }
        finally
        {
            foreach (var t in split.SelectMany(s => s)) t.Dispose();
            foreach (var t in sums.SelectMany(s => s)) t.Dispose();
        }
    }
}
