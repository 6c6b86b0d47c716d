using NqmValidate.Nqm;

namespace NqmValidate.Validation;

/// <summary>The NQM optimum at one batch size: steps-to-target and the hyperparameters that achieve it.</summary>
public sealed record NqmOptimum(double Steps, double LearningRate, double? Momentum, double EffectiveLearningRate);

/// <summary>The one place the validation stage calls the NQM engine.</summary>
internal static class NqmAdapter
{
    /// <summary>
    /// NQM-optimal steps for one mapped optimizer: "sgd" (p = 0), "momentum" (heavy ball, p = 0),
    /// "precond-p0.5" (heavy ball with P = h^-0.5: Adam has momentum β1, so the NQM gets momentum too) and
    /// "precond-measured" (heavy ball with Adam's measured P = 1/(√v + ε) per bin, v = g² + c/B: the second
    /// moment of a size-B mini-batch gradient, so it depends on B).
    /// </summary>
    public static NqmOptimum? Optimize(IReadOnlyList<NqmBin> bins, string nqmOptimizer, double batchSize, double target, bool grid, double adamEpsilon)
    {
        bool measuredP = nqmOptimizer == "precond-measured";
        var spectrum = new Spectrum(bins.Select(b => new SpectrumRow(b.H, b.C, b.S0, b.Count,
            measuredP ? 1 / (Math.Sqrt(b.GradMeanSq + b.C / batchSize) + adamEpsilon) : null)));
        var (kind, preconditioner) = nqmOptimizer switch
        {
            "sgd" => (OptimizerKind.Sgd, Preconditioner.None),
            "momentum" => (OptimizerKind.Momentum, Preconditioner.None),
            "precond-p0.5" => (OptimizerKind.Momentum, Preconditioner.FromPower(0.5)),
            "precond-measured" => (OptimizerKind.Momentum, Preconditioner.FromSpectrum),
            _ => throw new ArgumentException($"unknown NQM optimizer mapping '{nqmOptimizer}'", nameof(nqmOptimizer)),
        };
        // The notebook's absolute learning-rate grids suit h_max = 1. A measured spectrum has its own scale,
        // so the grid spans the same 100 log-spaced values relative to the stability edge 2 / max(P·h).
        double edge = 2 / spectrum.Rows.Where(r => r.H > 0 && r.Count > 0).Max(r => preconditioner.For(r) * r.H);
        var rates = kind == OptimizerKind.Sgd
            ? NumpyCompat.Logspace(-5.5, 0, 100).Select(v => v * edge).ToArray()
            : NumpyCompat.Logspace(-8, Math.Log10(2), 100).Select(v => v * edge).ToArray();
        var result = HyperparameterSearch.Optimize(spectrum, kind, batchSize, target, new SearchOptions
        {
            Mode = grid ? SearchMode.Grid : SearchMode.Continuous,
            Preconditioner = preconditioner,
            LearningRates = rates,
            MaxSteps = 100_000_000,
        });
        if (result.Steps is not long steps) return null;
        return new NqmOptimum(steps, result.LearningRate, kind == OptimizerKind.Momentum ? result.Momentum : null, result.EffectiveLearningRate);
    }

    /// <summary>S(B) fit; null with fewer than 3 points (two points always fit exactly and say nothing).</summary>
    public static ScalingFitResult? FitScaling(ScalingPoints curve)
    {
        if (curve.Count < 3) return null;
        var fit = ScalingCurve.Fit(curve.BatchSizes, curve.Steps);
        return new ScalingFitResult(fit.StepsMin, fit.BatchNoise, fit.RSquaredLog, fit.Points);
    }
}
