namespace NqmValidate.Nqm;

/// <summary>
/// One piece of a trajectory: the spectrum measured where the piece starts (its s0 is the state there) and the
/// expected loss at which the piece ends and the next begins (the last piece ends at the target).
/// </summary>
public sealed record PiecewiseSegment(Spectrum Spectrum, double EndLoss);

/// <summary>
/// The best constant hyperparameters for a trajectory cut into pieces, the total steps-to-target (null if no cell
/// reaches the end of every piece within the cap) and each piece's share.
/// </summary>
public sealed record PiecewiseResult(OptimizerKind Kind, double BatchSize, long? Steps, double LearningRate, double Momentum, double Decay,
    IReadOnlyList<long> SegmentSteps)
{
    public double EffectiveLearningRate => Kind == OptimizerKind.Momentum ? LearningRate / (1 - Momentum) : LearningRate;
}

/// <summary>
/// Steps-to-target of an NQM whose spectrum changes along the way (docs/design/validation-protocol.md, piecewise
/// variant): piece k runs the NQM on its own spectrum from its own s0 until E L &lt; its end loss, then piece k + 1
/// starts from its s0. One set of hyperparameters for the whole run, as a constant-learning-rate trial has, so a
/// learning rate must be stable on every piece's spectrum. What carries across a cut is the loss level only: the
/// pieces' eigenbases differ, so the per-direction second moments of one piece have no counterpart in the next, and
/// each piece's s0 is set from the network's own state at its start by the caller.
/// </summary>
public static class PiecewiseSearch
{
    /// <summary>Halvings of the off-grid refinement's step in log α and log(1−β).</summary>
    const int RefineLevels = 4;

    /// <summary>
    /// Minimises the total steps over the grid (learning rates × β or γ; SGD: learning rates only), then refines off the
    /// grid by a pattern search in (log α, log(1−β)) that accepts only strictly smaller exact totals, so the result is
    /// never worse than the grid's best cell. A cell is rejected as soon as its running total reaches the incumbent.
    /// </summary>
    public static PiecewiseResult Optimize(IReadOnlyList<PiecewiseSegment> segments, OptimizerKind kind, double batchSize, SearchOptions options)
    {
        if (segments.Count == 0) throw new NqmArgumentException("a piecewise trajectory needs at least one piece");
        if (kind is OptimizerKind.Schedule) throw new NqmArgumentException("a piecewise trajectory runs constant hyperparameters, not a schedule");
        if (!(batchSize > 0)) throw new NqmArgumentException($"batch size = {batchSize}: must be > 0");
        foreach (var s in segments)
            if (!(s.EndLoss > 0)) throw new NqmArgumentException($"a piece's end loss = {s.EndLoss}: must be > 0");
        var rates = options.LearningRates ?? (kind == OptimizerKind.Sgd ? HyperparameterSearch.NotebookSgdRates : HyperparameterSearch.NotebookMomentumRates);
        var seconds = kind == OptimizerKind.Sgd ? new double[] { 0 } : options.SecondGrid ?? HyperparameterSearch.NotebookSecondGrid;
        long cap = options.MaxSteps ?? HyperparameterSearch.DefaultCap(kind);
        var models = segments.Select(s => new LossModel(s.Spectrum, options.Preconditioner)).ToArray();
        var search = new Incumbent(models, segments, kind, batchSize, cap);

        bool Coarse(int i, int j) => i % 3 == 0 && j % 2 == 0;
        foreach (bool coarse in new[] { true, false })
            for (int i = 0; i < rates.Count; i++)
                for (int j = 0; j < seconds.Count; j++)
                    if (Coarse(i, j) == coarse) search.Try(rates[i], seconds[j]);
        if (search.Best is not null && options.Mode == SearchMode.Continuous)
            Refine(search, kind, rates, seconds);
        return search.Result();
    }

    /// <summary>
    /// Pattern search around the incumbent in u = log α and v = log(1−β): each level tries the four neighbours at its
    /// step, moves while one is strictly better, then halves the step (starting at the grid's own spacing).
    /// </summary>
    static void Refine(Incumbent search, OptimizerKind kind, IReadOnlyList<double> rates, IReadOnlyList<double> seconds)
    {
        double du = rates.Count > 1 ? Math.Abs(Math.Log(rates[1] / rates[0])) : 0.1;
        double dv = seconds.Count > 1 ? Math.Abs(Math.Log((1 - seconds[1]) / (1 - seconds[0]))) : 0;
        for (int level = 0; level < RefineLevels; level++, du /= 2, dv /= 2)
        {
            bool moved = true;
            while (moved)
            {
                moved = false;
                var (alpha, second) = (search.LearningRate, search.Second);
                foreach (var (su, sv) in new[] { (1, 0), (-1, 0), (0, 1), (0, -1) })
                {
                    if (sv != 0 && (kind == OptimizerKind.Sgd || dv == 0)) continue;
                    double a = alpha * Math.Exp(su * du);
                    double s = kind == OptimizerKind.Sgd ? 0 : 1 - (1 - second) * Math.Exp(sv * dv);
                    if (s < 0 || s >= 1) continue;
                    if (search.Try(a, s)) { moved = true; break; }
                }
            }
        }
    }

    /// <summary>The best cell so far and the evaluation of one more against it.</summary>
    sealed class Incumbent(LossModel[] models, IReadOnlyList<PiecewiseSegment> segments, OptimizerKind kind, double batchSize, long cap)
    {
        public long? Best { get; private set; }
        public double LearningRate { get; private set; } = double.NaN;
        public double Second { get; private set; }
        long[] _segmentSteps = [];

        /// <summary>Evaluates (α, β or γ); keeps it when its total is strictly below the incumbent's. Returns whether it did.</summary>
        public bool Try(double alpha, double second)
        {
            long limit = Best is long b ? Math.Min(cap, b - 1) : cap;
            var steps = new long[models.Length];
            long total = 0;
            for (int k = 0; k < models.Length; k++)
            {
                if (!models[k].Configure(kind, alpha, second, batchSize)) return false;
                long k1 = models[k].FirstBelow(segments[k].EndLoss, limit - total);
                if (k1 < 0) return false;
                steps[k] = k1;
                total += k1;
            }
            (Best, LearningRate, Second, _segmentSteps) = (total, alpha, second, steps);
            return true;
        }

        public PiecewiseResult Result() => new(kind, batchSize, Best, LearningRate,
            kind == OptimizerKind.Momentum ? Second : 0, kind == OptimizerKind.Ema ? Second : 0, _segmentSteps);
    }
}
