using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Factorization;
using NqmValidate.Curvature.Operators;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature.Spectral;

/// <summary>An approximate eigenpair: Ritz value, unit Ritz vector (flat float64) and residual bound |β_m y_m|.</summary>
public sealed record EigenPair(double Value, Tensor Vector, double Residual);

/// <summary>The tridiagonal matrix of an m-step Lanczos run (α on the diagonal, β off it) and its orthonormal basis.</summary>
/// <remarks><c>Remainder</c> is ‖w‖ after the last step: the residual norm of Ritz pair j is Remainder·|y_{m,j}|.</remarks>
public sealed record LanczosRun(double[] Alpha, double[] Beta, Tensor Basis, double Remainder)
{
    public int Steps => Alpha.Length;

    /// <summary>Eigen-decomposition of the tridiagonal matrix (Math.NET), eigenvalues ascending.</summary>
    public (double[] Values, Matrix<double> Vectors) Ritz()
    {
        int m = Steps;
        var t = Matrix<double>.Build.Dense(m, m);
        for (int i = 0; i < m; i++)
        {
            t[i, i] = Alpha[i];
            if (i + 1 < m) { t[i, i + 1] = Beta[i]; t[i + 1, i] = Beta[i]; }
        }
        var evd = t.Evd(Symmetricity.Symmetric);
        var values = evd.EigenValues.Select(c => c.Real).ToArray();
        var order = Enumerable.Range(0, m).OrderBy(i => values[i]).ToArray();
        var vectors = Matrix<double>.Build.Dense(m, m, (i, j) => evd.EigenVectors[i, order[j]]);
        return (order.Select(i => values[i]).ToArray(), vectors);
    }
}

/// <summary>
/// Lanczos iteration with full reorthogonalisation (every new vector is orthogonalised twice against the
/// whole basis), which keeps Ritz values free of the spurious copies plain Lanczos produces in floating point.
/// </summary>
public static class Lanczos
{
    /// <summary>Runs up to <paramref name="steps"/> steps from <paramref name="start"/>; stops early on an invariant subspace.</summary>
    public static LanczosRun Run(ICurvatureOperator op, Tensor start, int steps) => RunMany(op, [start], steps)[0];

    /// <summary>
    /// Independent Lanczos runs, one per start, advanced in lockstep so that each step multiplies all the runs' vectors
    /// in one <see cref="ICurvatureOperator.MultiplyMany"/> (one forward pass per chunk for all of them). Each run is
    /// exactly the one <see cref="Run"/> gives for its start; a run that reaches an invariant subspace stops alone.
    /// </summary>
    public static IReadOnlyList<LanczosRun> RunMany(ICurvatureOperator op, IReadOnlyList<Tensor> starts, int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), "Must be at least 1.");
        steps = (int)Math.Min(steps, op.Dimension);
        var runs = starts.Select(start => new Recurrence(op.Dimension, steps, start)).ToList();
        for (int j = 0; j < steps; j++)
        {
            using var scope = NewDisposeScope();
            var active = runs.Where(r => !r.Done).ToList();
            if (active.Count == 0) break;
            var products = op.MultiplyMany(active.Select(r => r.Basis[j]).ToList());
            for (int i = 0; i < active.Count; i++) active[i].Step(j, products[i], last: j == steps - 1);
        }
        return runs.Select(r => r.ToRun()).ToList();
    }

    /// <summary>One run's state: its basis, α, β and the remainder ‖w‖ of its last step.</summary>
    sealed class Recurrence
    {
        readonly List<double> _alpha = [];
        readonly List<double> _beta = [];
        double _remainder;

        public Recurrence(long dimension, int steps, Tensor start)
        {
            // One preallocated float64 basis (steps × D × 8 bytes: 130 MB for the MLP at 60 steps, 0.8 GB for the
            // simple CNN at 30), filled row by row, so reorthogonalisation never copies it.
            Basis = zeros(steps, dimension, dtype: ScalarType.Float64);
            // No no_grad() here: the operator's products need autograd. The basis never requires grad.
            Basis[0].copy_(start.to(ScalarType.Float64) / start.norm());
        }

        public Tensor Basis { get; }
        public bool Done { get; private set; }

        /// <summary>Step j given w = A q_j: α_j, full reorthogonalisation (twice), β_j and q_{j+1}.</summary>
        public void Step(int j, Tensor w, bool last)
        {
            var q = Basis[j];
            double a = w.dot(q).ToDouble();
            _alpha.Add(a);
            var known = Basis.narrow(0, 0, j + 1);
            for (int pass = 0; pass < 2; pass++)
                w.sub_(known.t().mv(known.mv(w)));
            _remainder = w.norm().ToDouble();
            if (last || _remainder <= 1e-10 * Math.Max(Math.Abs(a), 1e-300)) { Done = true; return; }
            _beta.Add(_remainder);
            using var remainder = _remainder.ToScalar(); // held to the end of the call (torchsharp.md §2)
            Basis[j + 1].copy_(w.div(remainder));
        }

        public LanczosRun ToRun() => new(_alpha.ToArray(), _beta.ToArray(), Basis.narrow(0, 0, _alpha.Count), _remainder);
    }

    /// <summary>
    /// The <paramref name="count"/> largest (algebraic) eigenpairs from a Lanczos run of
    /// <paramref name="steps"/> steps (default max(3·count, 30)) from a Gaussian start.
    /// </summary>
    public static IReadOnlyList<EigenPair> Top(ICurvatureOperator op, int count, Generator generator, int? steps = null)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), "Must be at least 1.");
        var start = randn(op.Dimension, dtype: ScalarType.Float64, generator: generator);
        var run = Run(op, start, steps ?? Math.Max(3 * count, 30));
        var (values, vectors) = run.Ritz();
        int m = run.Steps;
        var pairs = new List<EigenPair>();
        for (int j = m - 1; j >= Math.Max(0, m - count); j--)
        {
            var y = tensor(vectors.Column(j).ToArray(), dtype: ScalarType.Float64);
            var v = run.Basis.t().mv(y);
            pairs.Add(new EigenPair(values[j], v / v.norm(), Math.Abs(run.Remainder * vectors[m - 1, j])));
        }
        return pairs;
    }
}

/// <summary>Hutchinson's trace estimate with Rademacher probes and its standard error.</summary>
public sealed record TraceEstimate(double Trace, double StandardError, int Probes);

public static class Hutchinson
{
    /// <summary>
    /// tr(A) ≈ mean_p zₚᵀ A zₚ, zₚ with independent ±1 entries; standard error = sample sd / √P. The probes are drawn
    /// in order and multiplied several at a time (<see cref="ICurvatureOperator.MultiplyMany"/>), which changes no value.
    /// </summary>
    public static TraceEstimate Trace(ICurvatureOperator op, int probes, Generator generator)
    {
        if (probes < 2) throw new ArgumentOutOfRangeException(nameof(probes), "Must be at least 2 (the error bar needs two).");
        var samples = new double[probes];
        // A probe in flight holds itself, its product and its float64 sums: about three D-vectors.
        foreach (var (first, count) in ProbeBatches.Of(probes, 3 * op.Dimension * sizeof(double)))
        {
            using var scope = NewDisposeScope();
            var z = Enumerable.Range(0, count).Select(_ => Rademacher(op.Dimension, generator)).ToList();
            var az = op.MultiplyMany(z);
            for (int i = 0; i < count; i++) samples[first + i] = z[i].dot(az[i]).ToDouble();
        }
        double mean = samples.Average();
        double variance = samples.Sum(s => (s - mean) * (s - mean)) / (probes - 1);
        return new TraceEstimate(mean, Math.Sqrt(variance / probes), probes);
    }

    public static Tensor Rademacher(long dimension, Generator generator) =>
        randint(0, 2, [dimension], dtype: ScalarType.Float64, generator: generator) * 2 - 1;
}

/// <summary>One node of a spectral density: an eigenvalue estimate and its weight (weights sum to 1).</summary>
/// <summary>A node of the SLQ density: a Ritz value and its weight (weights of all probes sum to 1), and which probe gave it.</summary>
public sealed record DensityNode(double Eigenvalue, double Weight, int Probe = 0);

/// <summary>
/// Stochastic Lanczos quadrature: for each Rademacher probe v (normalised), an m-step Lanczos run gives nodes
/// θ_j (Ritz values) and weights (first component of the j-th eigenvector of T)²; averaging over probes
/// estimates the spectral density (1/D) Σ_i δ(λ − λ_i).
/// </summary>
public static class SpectralDensity
{
    public static IReadOnlyList<DensityNode> Estimate(ICurvatureOperator op, int probes, int steps, Generator generator)
    {
        if (probes < 1) throw new ArgumentOutOfRangeException(nameof(probes), "Must be at least 1.");
        var nodes = new List<DensityNode>();
        // The probes' Lanczos runs go in lockstep, as many at a time as their bases (steps × D float64 each) allow; the
        // probes are drawn in order, so every probe's vector, and so its nodes, are those of one run at a time.
        long steps1 = Math.Min(steps, op.Dimension);
        foreach (var (first, count) in ProbeBatches.Of(probes, (steps1 + 3) * op.Dimension * sizeof(double)))
        {
            using var scope = NewDisposeScope();
            var starts = Enumerable.Range(0, count).Select(_ => Hutchinson.Rademacher(op.Dimension, generator)).ToList();
            var runs = Lanczos.RunMany(op, starts, steps);
            for (int i = 0; i < count; i++)
            {
                var (values, vectors) = runs[i].Ritz();
                for (int j = 0; j < values.Length; j++)
                    nodes.Add(new DensityNode(values[j], vectors[0, j] * vectors[0, j] / probes, first + i));
            }
        }
        return nodes;
    }

    /// <summary>
    /// The fraction of the spectrum with |λ| below <paramref name="threshold"/> (the bulk the top eigenpairs do not
    /// resolve): each probe's own estimate, then their mean and its standard error over probes (null with one probe).
    /// </summary>
    public static (double Fraction, double? StandardError, int Probes) FractionBelow(IReadOnlyList<DensityNode> nodes, double threshold)
    {
        var perProbe = nodes.GroupBy(n => n.Probe).Select(g => g.Where(n => Math.Abs(n.Eigenvalue) < threshold).Sum(n => n.Weight)).ToList();
        int probes = perProbe.Count;
        if (probes == 0) return (double.NaN, null, 0);
        // Each node's weight carries a 1/probes factor: a probe's own estimate is probes × its share.
        var estimates = perProbe.Select(m => m * probes).ToList();
        double mean = estimates.Average();
        double? se = probes < 2 ? null : Math.Sqrt(estimates.Sum(e => (e - mean) * (e - mean)) / (probes - 1) / probes);
        return (mean, se, probes);
    }
    /// <summary>
    /// What the Lanczos nodes can say about the mass with |λ| &lt; <paramref name="threshold"/>, whatever the probes: each
    /// probe's quadrature brackets its own measure's mass there by the Chebyshev–Markov–Stieltjes inequalities
    /// (Σ_{j&lt;k} w_j ≤ F(θ_k − 0) and F(θ_k) ≤ Σ_{j≤k} w_j for the Gauss nodes θ_1 &lt; … &lt; θ_m): at least the weight of
    /// the nodes inside the interval but its outermost one on each side, at most the weight inside plus the nearest node
    /// outside on each side. Returns the mean over probes of both ends. <see cref="FractionBelow"/> counts the nodes
    /// inside, which says 0 when a continuous bulk around 0 is carried by nodes at ±2e-3 (the Hessian's at 16,384
    /// examples); the bracket then says "somewhere in [0, 0.97]": unresolved at this threshold, not absent.
    /// </summary>
    public static (double Low, double High) FractionBelowBracket(IReadOnlyList<DensityNode> nodes, double threshold)
    {
        var probes = nodes.GroupBy(n => n.Probe).ToList();
        if (probes.Count == 0) return (double.NaN, double.NaN);
        double low = 0, high = 0;
        foreach (var probe in probes)
        {
            var sorted = probe.OrderBy(n => n.Eigenvalue).ToArray();
            double total = sorted.Sum(n => n.Weight);
            var w = sorted.Select(n => n.Weight / total).ToArray(); // the probe's own quadrature: weights sum to 1
            int first = Array.FindIndex(sorted, n => n.Eigenvalue > -threshold);   // first node inside or above
            int last = Array.FindLastIndex(sorted, n => n.Eigenvalue < threshold);  // last node inside or below
            // High: nodes from the last one at or below −t to the first one at or above t.
            int from = first < 0 ? sorted.Length : first, to = last;
            int lo = Math.Max(from - 1, 0), hi = Math.Min(to + 1, sorted.Length - 1);
            high += Sum(w, lo, hi);
            // Low: nodes strictly inside, without the first and the last of them.
            low += from <= to ? Sum(w, from + 1, to - 1) : 0;
        }
        return (low / probes.Count, high / probes.Count);
    }

    static double Sum(double[] w, int from, int to)
    {
        double s = 0;
        for (int i = from; i <= to; i++) s += w[i];
        return s;
    }
}

/// <summary>
/// How many probes go through the operator together: all of them, unless their working memory would pass
/// <see cref="MemoryBytes"/>; then equal batches under it (at least one probe each).
/// </summary>
public static class ProbeBatches
{
    /// <summary>Working memory of the probes in flight (1 GiB: 6 SLQ probes of 80 steps for the 269k-parameter MLP).</summary>
    public const long MemoryBytes = 1L << 30;

    /// <summary>(first probe, count) of each batch, in order.</summary>
    public static IEnumerable<(int First, int Count)> Of(int probes, long bytesPerProbe)
    {
        int most = (int)Math.Clamp(MemoryBytes / Math.Max(bytesPerProbe, 1), 1, Math.Max(probes, 1));
        int batches = (probes + most - 1) / most;
        for (int b = 0, first = 0; b < batches; b++)
        {
            int count = (probes - first) / (batches - b);
            yield return (first, count);
            first += count;
        }
    }
}
