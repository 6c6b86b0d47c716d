namespace NqmValidate.Nqm;

/// <summary>Grid = the notebook's grids (docs/design/nqm.md §3.3); Continuous = refine off the grid in log space, never worse than the grid.</summary>
public enum SearchMode { Grid, Continuous }

/// <summary>Options of <see cref="HyperparameterSearch.Optimize"/>; defaults reproduce the notebook.</summary>
public sealed record SearchOptions
{
    public SearchMode Mode { get; init; } = SearchMode.Grid;
    public Preconditioner Preconditioner { get; init; } = Preconditioner.None;
    /// <summary>Largest k searched. Default: the notebook's bisection caps minus one (SGD 1e9−1, momentum/EMA 1e7−1).</summary>
    public long? MaxSteps { get; init; }
    /// <summary>Adds the notebook's 1e-8 to the SGD stationary denominator (s* = n/(1−(1−x)²+1e-8)). Off = the exact model.</summary>
    public bool NotebookSgdRegularizer { get; init; }
    /// <summary>Learning-rate grid; default SGD logspace(−5, 0.5, 100), momentum/EMA logspace(−8, 1, 100).</summary>
    public IReadOnlyList<double>? LearningRates { get; init; }
    /// <summary>β or γ grid; default 1 − logspace(−5, 0, 20).</summary>
    public IReadOnlyList<double>? SecondGrid { get; init; }
    /// <summary>Pieces of the piecewise-constant schedule (<see cref="OptimizerKind.Schedule"/>).</summary>
    public int Pieces { get; init; } = 10;
}

/// <summary>
/// The best hyperparameters found for one (optimizer, batch size, target). <see cref="Steps"/> is the exact
/// steps-to-target (smallest k with E L(k) &lt; target), null if no cell reaches the target within the cap.
/// <see cref="NotebookSteps"/> is the same number in the notebook's convention (k−1, clamped to &gt;= 1 for SGD;
/// cap−1 when not reached), for comparison with published figures.
/// </summary>
public sealed record SearchResult(
    OptimizerKind Kind, double BatchSize, double Target, double PrecondPower, long? Steps,
    double LearningRate, double Momentum, double Decay, IReadOnlyList<double>? ScheduleRates, long Cap)
{
    public double EffectiveLearningRate => Kind == OptimizerKind.Momentum ? LearningRate / (1 - Momentum) : LearningRate;
    public long NotebookSteps => Steps is { } k ? (Kind == OptimizerKind.Sgd ? Math.Max(k - 1, 1) : k - 1) : Cap;
}

/// <summary>Optimal hyperparameters per batch size (docs/design/nqm.md §3.3).</summary>
public static class HyperparameterSearch
{
    public static IReadOnlyList<double> NotebookSgdRates { get; } = NumpyCompat.Logspace(-5, 0.5, 100);
    public static IReadOnlyList<double> NotebookMomentumRates { get; } = NumpyCompat.Logspace(-8, 1, 100);
    public static IReadOnlyList<double> NotebookSecondGrid { get; } = NumpyCompat.Logspace(-5, 0, 20).Select(v => 1 - v).ToArray();

    public static long DefaultCap(OptimizerKind kind) => kind == OptimizerKind.Sgd || kind == OptimizerKind.Schedule ? 1_000_000_000 - 1 : 10_000_000 - 1;

    /// <summary>
    /// Minimises steps-to-target over the learning rate (SGD), learning rate and β (momentum) or
    /// learning rate and γ (EMA), or over an n-piece schedule (<see cref="OptimizerKind.Schedule"/>).
    /// Grid mode returns the notebook's cell: the first cell in its loop order (learning rate outer, β/γ inner)
    /// with the fewest steps (a coarse pass first, then the rest in order with tie-breaking by position).
    /// Continuous mode refines off the grid from a sparse start and then checks every grid cell against its
    /// incumbent; it only ever accepts a strictly better exact step count, so it is never worse than the grid.
    /// </summary>
    public static SearchResult Optimize(Spectrum spectrum, OptimizerKind kind, double batchSize, double target, SearchOptions? options = null)
    {
        options ??= new SearchOptions();
        if (!(target > 0)) throw new NqmArgumentException($"target = {target}: must be > 0");
        if (!(batchSize > 0)) throw new NqmArgumentException($"batch size = {batchSize}: must be > 0");
        double power = options.Preconditioner.UseSpectrumRows ? double.NaN : options.Preconditioner.Power;
        long cap = options.MaxSteps ?? DefaultCap(kind);
        if (kind == OptimizerKind.Schedule)
        {
            var sched = ScheduleOptimizer.StepsToTarget(spectrum, batchSize, target, options.Pieces, options.Preconditioner, cap);
            return new SearchResult(kind, batchSize, target, power, sched.Steps, sched.Rates.Count > 0 ? sched.Rates[0] : double.NaN, 0, 0, sched.Rates, cap);
        }
        var model = new LossModel(spectrum, options.Preconditioner);
        double reg = options.NotebookSgdRegularizer ? 1e-8 : 0;
        var rates = options.LearningRates ?? (kind == OptimizerKind.Sgd ? NotebookSgdRates : NotebookMomentumRates);
        var seconds = kind == OptimizerKind.Sgd ? new double[] { 0 } : options.SecondGrid ?? NotebookSecondGrid;

        long best = long.MaxValue; double bestA = double.NaN, bestS = double.NaN; int bestI = -1, bestJ = -1;
        int Index(int i, int j) => i * seconds.Count + j;
        void Cell(int i, int j, bool strict)
        {
            model.Configure(kind, rates[i], seconds[j], batchSize, reg);
            // The notebook keeps the first cell (in its loop order) with the smallest steps. A cell before the
            // incumbent wins ties, a cell after it must be strictly better; nothing else needs an exact count,
            // so the search range is [0, best] or [0, best − 1] and most cells are rejected by one bound.
            bool before = !strict && (bestI < 0 || Index(i, j) < Index(bestI, bestJ));
            long limit = best == long.MaxValue ? cap : Math.Min(cap, before ? best : best - 1);
            long k = model.FirstBelow(target, limit);
            if (k >= 0 && (k < best || (k == best && before))) { best = k; bestA = rates[i]; bestS = seconds[j]; bestI = i; bestJ = j; }
        }
        if (options.Mode == SearchMode.Continuous)
        {
            // Continuous: a sparse start (about 12 × 5 cells), an off-grid refinement from its best cell, then every
            // other grid cell against that (usually better) incumbent with strict improvement only. Every grid cell
            // is checked exactly against the incumbent of its time and only strictly better exact counts are ever
            // accepted, so the result is never worse than the grid's best cell. It costs less than grid mode: grid
            // mode needs the exact count of each cell that improves its incumbent on the way (in its coarse pass and
            // after), continuous mode gets its incumbent from the refinement's cheap loss evaluations, so nearly every
            // cell of its sweep is a rejection, mostly by one or two interval bounds.
            int strideA = Math.Max(1, rates.Count / 11), strideS = Math.Max(1, seconds.Count / 5);
            bool Start(int i, int j) => i % strideA == 0 && j % strideS == 0;
            for (int i = 0; i < rates.Count; i++) for (int j = 0; j < seconds.Count; j++) if (Start(i, j)) Cell(i, j, true);
            if (bestI >= 0) (best, bestA, bestS) = Refine(model, kind, batchSize, target, reg, rates, seconds, bestI, bestJ, best, strideA, strideS);
            long refined = best;
            for (int i = 0; i < rates.Count; i++) for (int j = 0; j < seconds.Count; j++) if (!Start(i, j)) Cell(i, j, true);
            // A grid cell beat the refined point (its basin was missed): refine from that cell too.
            if (best < refined)
                (best, bestA, bestS) = Refine(model, kind, batchSize, target, reg, rates, seconds, bestI, bestJ, best, strideA, strideS);
        }
        else
        {
            // A coarse pass (every 3rd rate, every 2nd β/γ) first gives a strong incumbent; the full pass then
            // visits the remaining cells in the notebook's order. Result: the notebook's cell, found much faster.
            // (A coarse cell rejected in the first pass had steps >= an earlier incumbent, so it can never be the
            // first minimum and need not be revisited.)
            bool Coarse(int i, int j) => i % 3 == 0 && j % 2 == 0;
            for (int i = 0; i < rates.Count; i++) for (int j = 0; j < seconds.Count; j++) if (Coarse(i, j)) Cell(i, j, false);
            for (int i = 0; i < rates.Count; i++) for (int j = 0; j < seconds.Count; j++) if (!Coarse(i, j)) Cell(i, j, false);
        }
        return new SearchResult(kind, batchSize, target, power, best == long.MaxValue ? null : best, bestA,
            kind == OptimizerKind.Momentum ? bestS : 0, kind == OptimizerKind.Ema ? bestS : 0, null, cap);
    }

    /// <summary>
    /// Continuous refinement from grid cell (i, j), whose exact steps are <paramref name="best"/>. A point needs at most
    /// K steps if its loss at K is below the target, so each round minimises the loss at K = best − 1 — one O(rows)
    /// evaluation per point, no crossing search — by a golden-section search in u = log α (momentum: u =
    /// log(α/(1−β)), the effective rate, along which its optimum is a ridge) and then one in v = log(1−β) (or
    /// log(1−γ)). If the minimum is below the target, that point's exact steps (&lt;= K) become the incumbent and the
    /// next round looks for K − 1 from there. A bracket whose minimum moved across most of it doubles (the optimum
    /// can lie far along a valley, e.g. β → 1 at small batch sizes), otherwise it halves. Stops after
    /// <c>Rounds</c> rounds or two rounds in a row without an improvement. Only exact, strictly smaller step counts
    /// are accepted, so the result is never worse than the starting cell.
    /// </summary>
    static (long, double, double) Refine(LossModel model, OptimizerKind kind, double batchSize, double target, double reg,
        IReadOnlyList<double> rates, IReadOnlyList<double> seconds, int bi, int bj, long best, int strideA, int strideS)
    {
        const int Rounds = 6, Iterations = 8, MaxMisses = 2;
        const double MinV = -30; // 1 − β >= e^−30 ≈ 1e-13
        double bestA = rates[bi], bestS = seconds[bj];
        bool two = kind != OptimizerKind.Sgd, ridge = kind == OptimizerKind.Momentum;
        // Initial brackets: the start pass's spacing on each side of its best cell.
        static double Spacing(IReadOnlyList<double> g, int i) => g.Count < 2 ? 0.5
            : Math.Abs(Math.Log(g[Math.Min(i + 1, g.Count - 1)]) - Math.Log(g[Math.Max(i - 1, 0)])) / (i == 0 || i == g.Count - 1 ? 1 : 2);
        double du = strideA * Spacing(rates, bi);
        double dv = two ? strideS * Spacing(seconds.Select(x => 1 - x).ToArray(), bj) : 0;
        if (!(du > 0) || !double.IsFinite(du)) du = 0.5;
        if (two && (!(dv > 0) || !double.IsFinite(dv))) dv = 1;
        double u = Math.Log(bestA / (ridge ? 1 - bestS : 1)), v = two ? Math.Log(1 - bestS) : 0;
        (double a, double s) Point(double uu, double vv)
        {
            double s = two ? -Numerics.Expm1(Math.Min(vv, 0)) : 0;
            return (Math.Exp(uu) * (ridge ? 1 - s : 1), s);
        }

        int misses = 0;
        for (int round = 0; round < Rounds && best > 1 && misses < MaxMisses; round++)
        {
            long k = best - 1;
            // Loss at k; summing stops at the value it is compared against (golden section only compares).
            double F(double uu, double vv, double stopAbove)
            {
                var (a, s) = Point(uu, vv);
                if (!(a > 0) || !double.IsFinite(a) || !(s >= 0 && s < 1)) return double.PositiveInfinity;
                if (!model.Configure(kind, a, s, batchSize, reg)) return double.PositiveInfinity;
                return model.Loss(k, stopAbove);
            }
            double u0 = u, v0 = v;
            double f = F(u, v, double.PositiveInfinity);
            (u, f) = Golden((x, stop) => F(x, v, stop), u - du, u + du, u, f, Iterations);
            if (two) (v, f) = Golden((y, stop) => F(u, y, stop), Math.Max(v - dv, MinV), Math.Min(v + dv, 0), v, f, Iterations);
            du = Math.Abs(u - u0) > 0.5 * du ? 2 * du : 0.5 * du;
            dv = Math.Abs(v - v0) > 0.5 * dv ? 2 * dv : 0.5 * dv;
            if (!(f < target)) { misses++; continue; }
            var (ba, bs) = Point(u, v);
            model.Configure(kind, ba, bs, batchSize, reg);
            long steps = model.FirstBelow(target, k); // L(k) < target, so the first crossing is <= k
            if (steps < 0 || steps >= best) break;
            best = steps; bestA = ba; bestS = bs; misses = 0;
        }
        return (best, bestA, bestS);
    }

    /// <summary>
    /// Golden-section minimisation on [lo, hi], given a known point (x0, f0) that is returned if nothing beats it.
    /// f(x, stop) must be exact when below stop and may return any value &gt;= stop otherwise (a partial sum): each new
    /// point is only compared against the retained one, so it is evaluated only as far as that comparison needs.
    /// Returns the best abscissa seen and its exact value.
    /// </summary>
    static (double, double) Golden(Func<double, double, double> f, double lo, double hi, double x0, double f0, int iterations)
    {
        const double g = 0.6180339887498949;
        double a = lo, b = hi, c = b - g * (b - a), d = a + g * (b - a);
        double fc = f(c, double.PositiveInfinity), fd = f(d, fc);
        double bx = x0, bf = f0;
        if (fc < bf) { bf = fc; bx = c; }
        if (fd < bf) { bf = fd; bx = d; }
        for (int it = 0; it < iterations; it++)
        {
            if (fc <= fd) { b = d; d = c; fd = fc; c = b - g * (b - a); fc = f(c, fd); if (fc < bf) { bf = fc; bx = c; } }
            else { a = c; c = d; fc = fd; d = a + g * (b - a); fd = f(d, fc); if (fd < bf) { bf = fd; bx = d; } }
        }
        return (bx, bf);
    }
}
