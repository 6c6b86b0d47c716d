namespace NqmValidate.Nqm;

/// <summary>
/// One `nqm simulate` study: every (optimizer, preconditioner power, batch size) optimised for one target.
/// <see cref="Optimizers"/> holds kinds (sgd, momentum, ema, schedule).
/// </summary>
public sealed record SimulationRequest(
    Spectrum Spectrum,
    double Target,
    IReadOnlyList<OptimizerKind> Optimizers,
    IReadOnlyList<double> PrecondPowers,
    IReadOnlyList<double> BatchSizes,
    SearchMode Mode = SearchMode.Grid,
    int Pieces = 10,
    bool NotebookSgdRegularizer = false,
    bool UseSpectrumPreconditioner = false);

/// <summary>One steps.csv row (docs/formats.md).</summary>
public sealed record SimulationRow(
    OptimizerKind Optimizer, double PrecondPower, double BatchSize, long? Steps, double LearningRate,
    double Momentum, double Decay, double EffectiveLearningRate, double LowerBound, IReadOnlyList<double>? ScheduleRates);

/// <summary>Scaling fit of one curve (optimizer × power).</summary>
public sealed record CurveFit(OptimizerKind Optimizer, double PrecondPower, ScalingFit? Fit, string? Note);

public sealed record SimulationResult(SimulationRequest Request, IReadOnlyList<SimulationRow> Rows, IReadOnlyList<CurveFit> Fits);

public static class Simulation
{
    /// <summary>The spectrum source (`--spectrum`) that names the paper's power law (<see cref="Spectrum.PaperPowerLaw"/>).</summary>
    public const string PaperSpectrum = "paper";

    /// <summary>
    /// Whether a study uses the notebook's 1e-8 in the SGD stationary denominator
    /// (<see cref="SimulationRequest.NotebookSgdRegularizer"/>) when not told: yes for the paper's spectrum — the paper's
    /// model as the paper's code computes it, so its published numbers (docs/design/nqm.md §4) come out exactly — and no for any other
    /// source (a measured or CSV spectrum gets the exact model).
    /// </summary>
    public static bool NotebookCompatByDefault(string spectrumSource) => spectrumSource == PaperSpectrum;

    /// <summary>One line saying which SGD model a study used (printed in the `nqm simulate` header).</summary>
    public static string ModelDescription(bool notebookSgdRegularizer) => notebookSgdRegularizer
        ? "model: notebook-compat (SGD s* = n/(1 − (1−x)² + 1e-8), the notebook's regulariser, as the paper's code computes it; --exact-model for the exact model)"
        : "model: exact (SGD s* = n/(1 − (1−x)²); --notebook-compat for the notebook's 1e-8)";

    /// <summary>Runs every point (in parallel across points; each search is sequential and deterministic) and fits each curve.</summary>
    public static SimulationResult Run(SimulationRequest request, int? maxParallelism = null, Action<int, int>? progress = null)
    {
        var points = (from kind in request.Optimizers
                      from p in request.PrecondPowers
                      from b in request.BatchSizes
                      select (kind, p, b)).ToArray();
        var rows = new SimulationRow[points.Length];
        int done = 0;
        Parallel.For(0, points.Length, new ParallelOptions { MaxDegreeOfParallelism = maxParallelism ?? Environment.ProcessorCount }, i =>
        {
            var (kind, p, b) = points[i];
            var pre = request.UseSpectrumPreconditioner ? Preconditioner.FromSpectrum : Preconditioner.FromPower(p);
            var r = HyperparameterSearch.Optimize(request.Spectrum, kind, b, request.Target, new SearchOptions
            {
                Mode = request.Mode, Preconditioner = pre, Pieces = request.Pieces, NotebookSgdRegularizer = request.NotebookSgdRegularizer,
            });
            rows[i] = new SimulationRow(kind, p, b, r.Steps, r.LearningRate, r.Momentum, r.Decay, r.EffectiveLearningRate,
                Nqm.LowerBound(request.Spectrum, b, request.Target), r.ScheduleRates);
            progress?.Invoke(Interlocked.Increment(ref done), points.Length);
        });
        var fits = new List<CurveFit>();
        foreach (var g in rows.GroupBy(r => (r.Optimizer, r.PrecondPower)))
        {
            var reached = g.Where(r => r.Steps is > 0).ToArray();
            if (reached.Length < 3) { fits.Add(new CurveFit(g.Key.Optimizer, g.Key.PrecondPower, null, $"only {reached.Length} batch sizes reached the target")); continue; }
            fits.Add(new CurveFit(g.Key.Optimizer, g.Key.PrecondPower,
                ScalingCurve.Fit(reached.Select(r => r.BatchSize).ToArray(), reached.Select(r => (double)r.Steps!.Value).ToArray()), null));
        }
        return new SimulationResult(request, rows, fits);
    }

    /// <summary>Parses "sgd,momentum,ema,schedule".</summary>
    public static IReadOnlyList<OptimizerKind> ParseOptimizers(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(t => t.ToLowerInvariant() switch
        {
            "sgd" => OptimizerKind.Sgd,
            "momentum" => OptimizerKind.Momentum,
            "ema" => OptimizerKind.Ema,
            "schedule" => OptimizerKind.Schedule,
            _ => throw new NqmArgumentException($"unknown optimizer '{t}': valid are sgd, momentum, ema, schedule"),
        }).ToArray();

    public static string Name(OptimizerKind kind) => kind.ToString().ToLowerInvariant();

    /// <summary>
    /// Parses batch sizes: a comma list of values ("4,16,64", "2^2,2^4") or ranges "A..B:xF" (geometric, factor F)
    /// or "A..B:+S" (arithmetic), where A, B may be written 2^k. Example: "2^2..2^20:x4".
    /// </summary>
    public static IReadOnlyList<double> ParseBatchSizes(string text)
    {
        var result = new List<double>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dots = part.IndexOf("..", StringComparison.Ordinal);
            if (dots < 0) { result.Add(Number(part)); continue; }
            int colon = part.IndexOf(':', dots);
            if (colon < 0) throw new NqmArgumentException($"batch-size range '{part}': expected A..B:xF or A..B:+S");
            double a = Number(part[..dots]), b = Number(part[(dots + 2)..colon]);
            string step = part[(colon + 1)..];
            if (step.Length < 2 || (step[0] != 'x' && step[0] != '+')) throw new NqmArgumentException($"batch-size range '{part}': step must be xF or +S");
            double f = Number(step[1..]);
            if (step[0] == 'x' && !(f > 1)) throw new NqmArgumentException($"batch-size range '{part}': factor must be > 1");
            if (step[0] == '+' && !(f > 0)) throw new NqmArgumentException($"batch-size range '{part}': step must be > 0");
            for (double v = a; v <= b * (1 + 1e-12); v = step[0] == 'x' ? v * f : v + f)
            {
                result.Add(v);
                // A step too small to move v (or a range of millions) would never end.
                if (result.Count > 10_000) throw new NqmArgumentException($"batch-size range '{part}': more than 10000 batch sizes");
            }
        }
        if (result.Count == 0 || result.Any(v => !(v > 0))) throw new NqmArgumentException($"batch sizes '{text}': need at least one value, all > 0");
        if (result.Distinct().Count() != result.Count) throw new NqmArgumentException($"batch sizes '{text}': a batch size is repeated");
        return result;

        static double Number(string t)
        {
            t = t.Trim();
            int caret = t.IndexOf('^');
            if (caret > 0) return Math.Pow(Number(t[..caret]), Number(t[(caret + 1)..]));
            if (!double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v))
                throw new NqmArgumentException($"'{t}' is not a number");
            return v;
        }
    }
}
