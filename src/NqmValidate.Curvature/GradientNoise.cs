using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>
/// McCandlish et al.'s simple gradient noise scale B_simple = tr(Σ)/|G|², with Σ the per-example gradient
/// covariance and G the true gradient, and the two ingredients as estimated.
/// </summary>
public sealed record NoiseScaleEstimate(string Method, double TraceSigma, double GradientNormSquared, double BSimple, int SmallBatch, long BigBatch);

/// <summary>Gradient noise along one direction v: vᵀΣv = Var_n(∇ℓ_n·v) and (gᵀv)² with g = mean_n ∇ℓ_n.</summary>
public sealed record DirectionalNoise(double NoiseVariance, double MeanProjectionSquared);

public static class GradientNoise
{
    /// <summary>From the per-example diagonals: tr(Σ) = Σ_i c_i and |G|² = Σ_i g_i² over the same N examples.</summary>
    public static NoiseScaleEstimate FromDiagonals(CurvatureDiagonals d)
    {
        double trace = d.Parameters.Sum(p => p.NoiseVariance.Sum());
        double norm = d.Parameters.Sum(p => p.MeanGradient.Sum(g => g * g));
        return new NoiseScaleEstimate("per_example_variance", trace, norm, trace / norm, 1, d.Examples);
    }

    /// <summary>
    /// McCandlish's two-batch-size estimator, which uses only mini-batch gradients: with
    /// E|G_B|² = |G|² + tr(Σ)/B measured at B_small (averaged over a random partition of the N examples)
    /// and B_big = N,
    /// |G|² ≈ (B_big|G_big|² − B_small|G_small|²)/(B_big − B_small) and
    /// tr(Σ) ≈ (|G_small|² − |G_big|²)/(1/B_small − 1/B_big).
    /// </summary>
    public static NoiseScaleEstimate TwoBatch(CurvatureProblem problem, int smallBatch, Generator generator)
    {
        long n = problem.Examples;
        if (smallBatch < 1 || smallBatch * 2L > n)
            throw new CurvatureInputException($"the small batch ({smallBatch}) must be between 1 and half the examples ({n}).");
        var parameters = problem.Parameters();
        double big = MeanGradient(problem, parameters, arange(n)).square().sum().ToDouble();
        var order = randperm(n, generator: generator);
        long batches = n / smallBatch;
        double small = 0;
        for (long b = 0; b < batches; b++)
        {
            using var scope = NewDisposeScope();
            small += MeanGradient(problem, parameters, order.narrow(0, b * smallBatch, smallBatch)).square().sum().ToDouble() / batches;
        }
        double bs = smallBatch, bb = n;
        double norm = (bb * big - bs * small) / (bb - bs);
        double trace = (small - big) / (1 / bs - 1 / bb);
        return new NoiseScaleEstimate("two_batch", trace, norm, trace / norm, smallBatch, n);
    }

    /// <summary>Gradient of the mean loss over the examples at <paramref name="index"/>, flat float64.</summary>
    static Tensor MeanGradient(CurvatureProblem problem, List<Tensor> parameters, Tensor index)
    {
        long count = index.shape[0];
        var sum = zeros(problem.Dimension, dtype: ScalarType.Float64);
        for (long s = 0; s < count; s += problem.ChunkSize)
        {
            using var scope = NewDisposeScope();
            var idx = index.narrow(0, s, Math.Min(problem.ChunkSize, count - s));
            var loss = OutputLoss.PerExample(problem.Loss, problem.Model.call(problem.Inputs.index_select(0, idx)), problem.Targets.index_select(0, idx)).sum() / count;
            sum.add_(CurvatureProblem.Flatten(torch.autograd.grad([loss], parameters)));
        }
        return sum;
    }

    /// <summary>
    /// Per-example directional derivatives d_n = ∇ℓ_n·v for every direction, exactly: with u(w) = Σ_n w_n ∇ℓ_n
    /// (one backward with create_graph), ∂(u·v)/∂w = (d_n)_n (a second backward per direction).
    /// Returns vᵀΣv = mean d² − (mean d)² and (gᵀv)² = (mean d)² per direction.
    /// </summary>
    public static IReadOnlyList<DirectionalNoise> AlongDirections(CurvatureProblem problem, IReadOnlyList<Tensor> directions)
    {
        var parameters = problem.Parameters();
        var sums = new double[directions.Count];
        var squares = new double[directions.Count];
        foreach (var (start, length) in problem.Chunks())
        {
            using var scope = NewDisposeScope();
            var losses = OutputLoss.PerExample(problem.Loss, problem.Model.call(problem.Inputs.narrow(0, start, length)), problem.Targets.narrow(0, start, length));
            var w = zeros_like(losses, requires_grad: true);
            var u = torch.autograd.grad([losses], parameters, [w], create_graph: true, retain_graph: true);
            for (int j = 0; j < directions.Count; j++)
            {
                var d = torch.autograd.grad(u, [w], problem.Split(directions[j]), retain_graph: true)[0];
                sums[j] += d.sum().ToDouble();
                squares[j] += d.square().sum().ToDouble();
            }
        }
        double n = problem.Examples;
        return sums.Select((s, j) =>
        {
            double mean = s / n;
            return new DirectionalNoise(Math.Max(squares[j] / n - mean * mean, 0), mean * mean);
        }).ToList();
    }
}
