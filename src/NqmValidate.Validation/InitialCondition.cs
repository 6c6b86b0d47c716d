using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// What the fit of one loss curve gave: the loss floor with its uncertainty (a profile-likelihood interval,
/// Δχ² ≤ 1 with the noise variance estimated from the best fit's residuals) and the exponent a of the
/// initial condition's shape s0 ∝ h^−a for the directions whose s0 is not measured.
/// </summary>
public sealed record CurveFitResult(
    double Floor,
    double FloorLow,
    double FloorHigh,
    bool FloorFitted,
    double BulkExponent,
    double RmsLogResidual,
    int Points,
    int CappedDirections,
    string CurvePath,
    string Optimizer,
    int BatchSize,
    double LearningRate,
    string? AtSearchEdge = null);

/// <summary>
/// The NQM's initial condition and loss floor from data that is never a scored point (issue #10 item 3):
/// measured s0 along the top eigen-directions, s0 ∝ h^−a for the rest, and (floor, a) fitted to ONE loss
/// curve, the largest batch size's best SGD trial, whose steps-to-target is then excluded from scoring.
/// </summary>
public static class InitialCondition
{
    /// <summary>The exponents a searched (s0 ∝ h^−a): −1 (s0 grows with h) … 3 (s0 concentrated in the flattest directions).</summary>
    public static readonly double[] Exponents = Enumerable.Range(0, 81).Select(i => -1 + 0.05 * i).ToArray();

    /// <summary>
    /// s0 per bin: measured (gᵀv)²/h² where a bin has it (top eigen-directions at initialisation), A·h^−a elsewhere,
    /// with A such that the NQM's initial loss ½ Σ count·h·s0 equals <paramref name="initialExcess"/>. If the measured
    /// directions alone hold more than the initial excess they are scaled down to it and the rest starts at 0.
    /// </summary>
    public static IReadOnlyList<NqmBin> WithMeasuredStart(IReadOnlyList<NqmBin> bins, double initialExcess, double exponent)
    {
        double topLoss = bins.Where(b => b.MeasuredS0 is not null).Sum(b => 0.5 * b.Count * b.H * b.MeasuredS0!.Value);
        double rest = initialExcess - topLoss;
        if (rest <= 0)
        {
            double scale = topLoss > 0 ? initialExcess / topLoss : 0;
            return bins.Select(b => b with { S0 = b.MeasuredS0 is double s ? s * scale : 0 }).ToArray();
        }
        double weight = bins.Where(b => b.MeasuredS0 is null).Sum(b => b.Count * Math.Pow(b.H, 1 - exponent));
        if (!(weight > 0)) throw new ArgumentException("spectrum has no positive curvature outside the measured directions", nameof(bins));
        double a = 2 * rest / weight;
        return bins.Select(b => b with { S0 = b.MeasuredS0 ?? a * Math.Pow(b.H, -exponent) }).ToArray();
    }

    /// <summary>
    /// Least-squares weights for evaluations at <paramref name="steps"/> (increasing, ≥ 1): each point stands for the
    /// stretch of log-step half-way to its neighbours, normalised to a mean of 1. A trial evaluates unevenly (a geometric
    /// grid, then dense around its crossing; the fit curve's extension evenly in steps), and unweighted least squares
    /// would let whichever stretch was evaluated most decide the floor; with these weights the fit approximates the
    /// integral of the squared log-residual over log-step, whatever the evaluation schedule.
    /// </summary>
    public static double[] LogStepWeights(IReadOnlyList<double> steps)
    {
        int n = steps.Count;
        if (n <= 2) return Enumerable.Repeat(1.0, n).ToArray();
        var ln = steps.Select(s => Math.Log(s)).ToArray();
        var w = new double[n];
        for (int j = 0; j < n; j++)
            w[j] = j == 0 ? ln[1] - ln[0] : j == n - 1 ? ln[n - 1] - ln[n - 2] : (ln[j + 1] - ln[j - 1]) / 2;
        double mean = w.Average();
        if (!(mean > 0) || w.Any(x => !(x >= 0))) throw new ArgumentException("steps must be increasing and ≥ 1", nameof(steps));
        return w.Select(x => x / mean).ToArray();
    }

    /// <summary>
    /// Fits (floor, a) — or only a when <paramref name="fixedFloor"/> is given — to a training-loss curve of SGD at
    /// its learning rate α and batch size B, modelled by the NQM's closed form on <paramref name="bins"/>:
    /// L(k) = floor + ½ Σ count·h·s_k with s0 from <see cref="WithMeasuredStart"/> (L(0) − floor as the initial excess)
    /// or isotropic (a = 0, measured s0 ignored). Least squares on ln L over the curve's evaluations after step 0,
    /// each weighted by the stretch of log-step it stands for (<see cref="LogStepWeights"/>; with
    /// <paramref name="logStepWeights"/> false every evaluation alike, the fit before those weights, kept for the
    /// sensitivity table's floor policy curve-unweighted).
    /// Directions with α·h ≥ 2 (unstable at the trial's own learning rate: the checkpoint's sharpness is not what
    /// this trial lived with) are capped at <paramref name="capMargin"/> × 2/α, the edge of stability.
    /// </summary>
    public static CurveFitResult FitCurve(IReadOnlyList<NqmBin> bins, LossCurve curve, double? fixedFloor, bool isotropic, double capMargin, bool logStepWeights = true)
    {
        double alpha = curve.LearningRate, batch = curve.BatchSize;
        double cap = capMargin * 2 / alpha;
        int capped = bins.Where(b => alpha * b.H >= 2).Sum(b => (int)Math.Round(Math.Min(b.Count, int.MaxValue / 2)));
        var bs = bins.Select(b => alpha * b.H >= 2 ? b with { H = cap } : b)
            .Select(b => isotropic ? b with { MeasuredS0 = null } : b).ToArray();
        double l0 = curve.Points[0].Loss;
        var pts = curve.Points.Skip(1).Where(p => p.Loss > 0 && double.IsFinite(p.Loss)).ToArray();
        int n = pts.Length, m = bs.Length;
        var lnLoss = pts.Select(p => Math.Log(p.Loss)).ToArray();
        for (int j = 1; j < n; j++)
            if (!(pts[j].Step > pts[j - 1].Step))
                throw new RunFileException($"{curve.Path}: evaluations out of step order (step {pts[j].Step:G} after {pts[j - 1].Step:G}); the floor fit weights each by the stretch of steps it stands for.");
        var weight = logStepWeights ? LogStepWeights(pts.Select(p => p.Step).ToArray()) : Enumerable.Repeat(1.0, n).ToArray();

        // Per bin and evaluation: r = (1−x)^(2k) and the noise part ½ count·h·s*(1 − r); both independent of (floor, a).
        var r = new double[m, n];
        var noise = new double[n];
        var topPart = new double[n];
        double topLoss0 = 0;
        for (int i = 0; i < m; i++)
        {
            var b = bs[i];
            double x = alpha * b.H, q = (1 - x) * (1 - x);
            double sStar = q < 1 ? alpha * alpha * b.C / batch / (1 - q) : double.PositiveInfinity;
            for (int j = 0; j < n; j++)
            {
                r[i, j] = Math.Pow(q, pts[j].Step);
                noise[j] += 0.5 * b.Count * b.H * sStar * (1 - r[i, j]);
                if (b.MeasuredS0 is double s0) topPart[j] += 0.5 * b.Count * b.H * s0 * r[i, j];
            }
            if (b.MeasuredS0 is double s) topLoss0 += 0.5 * b.Count * b.H * s;
        }

        double minLoss = pts.Min(p => p.Loss);
        var floors = fixedFloor is double ff ? [ff] : Enumerable.Range(0, 400).Select(i => minLoss * 0.999 * i / 400).ToArray();
        var exponents = isotropic ? [0.0] : Exponents;
        var profile = new double[floors.Length];
        var profileA = new double[floors.Length];
        Array.Fill(profile, double.PositiveInfinity);
        var g = new double[n];
        foreach (double a in exponents)
        {
            double w = 0;
            Array.Clear(g);
            for (int i = 0; i < m; i++)
            {
                if (bs[i].MeasuredS0 is not null) continue;
                double c = 0.5 * bs[i].Count * Math.Pow(bs[i].H, 1 - a);
                w += c;
                for (int j = 0; j < n; j++) g[j] += c * r[i, j];
            }
            for (int f = 0; f < floors.Length; f++)
            {
                double amp = (l0 - floors[f] - topLoss0) / w; // A·½: bulk loss at step 0 = amp·w
                if (!(amp >= 0) || !(w > 0)) continue;
                double sse = 0;
                for (int j = 0; j < n && sse < profile[f]; j++)
                {
                    double model = floors[f] + noise[j] + topPart[j] + amp * g[j];
                    double d = model > 0 && double.IsFinite(model) ? Math.Log(model) - lnLoss[j] : 1e3;
                    sse += weight[j] * d * d;
                }
                if (sse < profile[f]) { profile[f] = sse; profileA[f] = a; }
            }
        }
        int best = Array.IndexOf(profile, profile.Min());
        if (!double.IsFinite(profile[best]))
            throw new RunFileException($"{curve.Path}: the NQM cannot describe this curve with any floor and initial-condition exponent (the measured top directions alone hold more than the initial excess).");
        double sigma2 = profile[best] / Math.Max(n - 2, 1);
        var inside = Enumerable.Range(0, floors.Length).Where(f => profile[f] <= profile[best] + sigma2).ToArray();
        // A best fit on the edge of its search range is a model that wants to go further: the numbers are bounds, say so.
        var edges = new List<string>();
        if (!isotropic && (profileA[best] <= exponents[0] || profileA[best] >= exponents[^1])) edges.Add($"exponent a = {profileA[best]:G3} at the end of its range [{exponents[0]:G}, {exponents[^1]:G}]");
        if (fixedFloor is null && best == 0) edges.Add("floor at 0, its lower bound");
        if (fixedFloor is null && best == floors.Length - 1) edges.Add("floor at the curve's lowest loss, its upper bound");
        return new CurveFitResult(floors[best], floors[inside.Min()], floors[inside.Max()], fixedFloor is null, profileA[best],
            Math.Sqrt(profile[best] / n), n, capped, curve.Path, curve.Optimizer, curve.BatchSize, alpha, edges.Count > 0 ? string.Join("; ", edges) : null);
    }
}
