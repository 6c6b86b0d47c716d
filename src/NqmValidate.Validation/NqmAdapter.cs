using System.Globalization;
using NqmValidate.Nqm;

namespace NqmValidate.Validation;

/// <summary>
/// The NQM optimum at one batch size: steps-to-target and the hyperparameters that achieve it.
/// <see cref="CurvatureCap"/>: for the edge-of-stability-aware variant, the cap on the top eigenvalues at this optimum.
/// </summary>
public sealed record NqmOptimum(double Steps, double LearningRate, double? Momentum, double EffectiveLearningRate, double? CurvatureCap = null);

/// <summary>The one place the validation stage calls the NQM engine.</summary>
internal static class NqmAdapter
{
    /// <summary>
    /// NQM-optimal steps for one mapped optimizer: "sgd" (p = 0), "momentum" (heavy ball, p = 0), "ema" (SGD with an
    /// exponential moving average of its iterates, p = 0),
    /// "precond-p0.5" (heavy ball with P = h^-0.5: Adam has momentum β1, so the NQM gets momentum too) and
    /// "precond-measured" (heavy ball with Adam's measured P = 1/(√v + ε) per bin, v = g² + c/B: the second
    /// moment of a size-B mini-batch gradient, so it depends on B) and "precond-own" (heavy ball on a spectrum already
    /// measured under the optimizer's own preconditioner, P^½GP^½: the eigen-P variants), "precond-p1" (heavy ball with
    /// the ideal P = 1/h) and "precond-p1-d{λ}" (heavy ball with P = 1/(h + λ): K-FAC with eigenbasis damping λ).
    /// </summary>
    public static NqmOptimum? Optimize(IReadOnlyList<NqmBin> bins, string nqmOptimizer, double batchSize, double target, bool grid, double adamEpsilon)
    {
        bool measuredP = nqmOptimizer == "precond-measured";
        var spectrum = new Spectrum(bins.Select(b => new SpectrumRow(b.H, b.C, b.S0, b.Count,
            measuredP ? 1 / (Math.Sqrt(b.GradMeanSq + b.C / batchSize) + adamEpsilon) : null)));
        var (kind, preconditioner) = Mapping(nqmOptimizer);
        var result = HyperparameterSearch.Optimize(spectrum, kind, batchSize, target, Options(kind, preconditioner, [spectrum], grid));
        if (result.Steps is not long steps) return null;
        return new NqmOptimum(steps, result.LearningRate, kind == OptimizerKind.Momentum ? result.Momentum : null, result.EffectiveLearningRate);
    }

    /// <summary>
    /// NQM-optimal steps through the pieces of a piecewise variant (<see cref="PiecewiseSearch"/>): one set of
    /// hyperparameters, each piece run on its own spectrum from its own s0 to the excess where the next starts. The
    /// learning-rate grid spans the same 100 log-spaced values as <see cref="Optimize"/>, relative to the stability edge of
    /// the sharpest piece (a constant learning rate must be stable on every piece).
    /// </summary>
    public static NqmOptimum? OptimizePiecewise(IReadOnlyList<NqmSegment> pieces, string nqmOptimizer, double batchSize, bool grid)
    {
        var (kind, preconditioner) = Mapping(nqmOptimizer);
        if (preconditioner.UseSpectrumRows) return null; // the measured preconditioner exists only for diagonal spectra
        var segments = pieces.Select(p => new PiecewiseSegment(new Spectrum(p.Bins.Select(b => new SpectrumRow(b.H, b.C, b.S0, b.Count))), p.EndExcess)).ToArray();
        var result = PiecewiseSearch.Optimize(segments, kind, batchSize, Options(kind, preconditioner, segments.Select(s => s.Spectrum), grid));
        if (result.Steps is not long steps) return null;
        return new NqmOptimum(steps, result.LearningRate, kind == OptimizerKind.Momentum ? result.Momentum : null, result.EffectiveLearningRate);
    }

    /// <summary>
    /// The search every NQM optimum here uses. The notebook's absolute learning-rate grids suit h_max = 1; a measured
    /// spectrum has its own scale, so the grid spans the same 100 log-spaced values relative to the stability edge
    /// 2 / max(P·h) of the sharpest of <paramref name="spectra"/> (one spectrum, or every piece of a piecewise run).
    /// </summary>
    static SearchOptions Options(OptimizerKind kind, Preconditioner preconditioner, IEnumerable<Spectrum> spectra, bool grid)
    {
        double edge = 2 / spectra.Max(s => s.Rows.Where(r => r.H > 0 && r.Count > 0).Max(r => preconditioner.For(r) * r.H));
        var rates = kind == OptimizerKind.Sgd
            ? NumpyCompat.Logspace(-5.5, 0, 100).Select(v => v * edge).ToArray()
            : NumpyCompat.Logspace(-8, Math.Log10(2), 100).Select(v => v * edge).ToArray();
        return new SearchOptions
        {
            Mode = grid ? SearchMode.Grid : SearchMode.Continuous,
            Preconditioner = preconditioner,
            LearningRates = rates,
            MaxSteps = 100_000_000,
        };
    }

    /// <summary>precond-p1-d{λ}: heavy ball with P = 1/(h + λ) (K-FAC with eigenbasis damping λ).</summary>
    const string DampedPrefix = "precond-p1-d";

    static (OptimizerKind, Preconditioner) Mapping(string nqmOptimizer) => nqmOptimizer switch
    {
        "sgd" => (OptimizerKind.Sgd, Preconditioner.None),
        "momentum" => (OptimizerKind.Momentum, Preconditioner.None),
        "ema" => (OptimizerKind.Ema, Preconditioner.None),
        "precond-p0.5" => (OptimizerKind.Momentum, Preconditioner.FromPower(0.5)),
        "precond-measured" => (OptimizerKind.Momentum, Preconditioner.FromSpectrum),
        // The spectrum was measured under the optimizer's own P (P^½GP^½, variant eigen-P): heavy ball on it as it is.
        "precond-own" => (OptimizerKind.Momentum, Preconditioner.None),
        // K-FAC: heavy ball after an ideal (power 1) preconditioner, undamped or damped by λ in the spectrum's units.
        "precond-p1" => (OptimizerKind.Momentum, Preconditioner.FromPower(1)),
        _ when nqmOptimizer.StartsWith(DampedPrefix, StringComparison.Ordinal)
               && double.TryParse(nqmOptimizer.AsSpan(DampedPrefix.Length), NumberStyles.Float, CultureInfo.InvariantCulture, out double damping)
               && damping > 0 && double.IsFinite(damping)
            => (OptimizerKind.Momentum, Preconditioner.Damped(1, damping)),
        _ => throw new ArgumentException($"unknown NQM optimizer mapping '{nqmOptimizer}'", nameof(nqmOptimizer)),
    };

    /// <summary>A capped direction keeps its share of the initial loss (½·h·s0), so the cap changes its speed, not the start.</summary>
    static NqmBin[] CapTop(IReadOnlyList<NqmBin> bins, double capH) =>
        bins.Select(b => b.Top && b.H > capH ? b with { H = capH, S0 = b.S0 * b.H / capH } : b).ToArray();

    /// <summary>
    /// Steps-to-target of heavy ball at given hyperparameters (α, β) on a fitted variant (not an optimum): what the NQM
    /// says a trial of the sweep at those hyperparameters would take. A piecewise variant runs its pieces in turn, each to
    /// its end excess; an edge-of-stability-aware one caps its top directions at its margin × the stability edge
    /// (2+2β)/α of this α, as <see cref="OptimizeEosAware"/> does at its optimum. Null when the iteration is unstable or
    /// does not reach the target within <paramref name="maxSteps"/>.
    /// </summary>
    public static long? HeavyBallStepsAt(NqmVariant variant, double targetExcess, double batchSize, double alpha, double beta, long maxSteps = 100_000_000)
    {
        var optimizer = new Momentum(alpha, beta, Preconditioner.None);
        static Spectrum SpectrumOf(IEnumerable<NqmBin> bins) => new(bins.Select(b => new SpectrumRow(b.H, b.C, b.S0, b.Count)));
        if (variant.Segments is { } pieces)
        {
            long total = 0;
            foreach (var piece in pieces)
            {
                if (total >= maxSteps) return null;
                if (Nqm.Nqm.StepsToTarget(SpectrumOf(piece.Bins), optimizer, batchSize, piece.EndExcess, maxSteps - total) is not long k) return null;
                total += k;
            }
            return total;
        }
        var bins = variant.EosMargin > 0 ? CapTop(variant.Bins, variant.EosMargin * (2 + 2 * beta) / alpha) : variant.Bins;
        return Nqm.Nqm.StepsToTarget(SpectrumOf(bins), optimizer, batchSize, targetExcess, maxSteps);
    }

    /// <summary>Iterations of the self-consistent edge-of-stability search (each a full hyperparameter search).</summary>
    public const int EosIterations = 8;

    /// <summary>
    /// Edge-of-stability-aware optimum: the top eigen-directions (<see cref="NqmBin.Top"/>) are capped so that their
    /// preconditioned curvature P·h is at most <paramref name="margin"/> × the stability edge of the learning rate the
    /// NQM runs at (2/α SGD, (2+2β)/α heavy ball). The cap depends on that learning rate and the learning rate on the
    /// cap, so the optimum is found as a fixed point: start from the uncapped optimum, cap at its edge, re-optimise,
    /// repeat until the learning rate moves by less than 2% (at most <see cref="EosIterations"/> times; the last is kept).
    /// Each step can raise α by at most 1/margin, since the capped directions then limit stability at α/margin.
    /// </summary>
    public static NqmOptimum? OptimizeEosAware(IReadOnlyList<NqmBin> bins, string nqmOptimizer, double batchSize, double target, bool grid, double adamEpsilon, double margin)
    {
        var (kind, preconditioner) = Mapping(nqmOptimizer);
        if (preconditioner.UseSpectrumRows) return null; // the measured preconditioner exists only for diagonal spectra, which have no top directions
        if (preconditioner is { Power: 1, Damping: 0 }) return null; // P·h ≡ 1: capping h cannot cap P·h
        var current = Optimize(bins, nqmOptimizer, batchSize, target, grid, adamEpsilon);
        if (current is null) return null;
        for (int it = 0; it < EosIterations; it++)
        {
            // EMA averages SGD's iterates: its iterates are SGD's, so is its edge.
            double edge = kind is OptimizerKind.Sgd or OptimizerKind.Ema ? 2 / current.LearningRate : (2 + 2 * (current.Momentum ?? 0)) / current.LearningRate;
            double capPh = margin * edge; // cap on P·h = h^(1−p)
            double capH = preconditioner.CurvatureAt(capPh);
            // A capped direction keeps its share of the initial loss (½·h·s0), so the cap changes its speed, not the start.
            var capped = CapTop(bins, capH);
            var next = Optimize(capped, nqmOptimizer, batchSize, target, grid, adamEpsilon);
            if (next is null) return current with { CurvatureCap = capH };
            bool done = Math.Abs(Math.Log(next.LearningRate / current.LearningRate)) < 0.02;
            current = next with { CurvatureCap = capH };
            if (done) break;
        }
        return current;
    }
}
