namespace NqmValidate.Nqm;

/// <summary>Grid = the notebook's grids (NQM.md §3); Continuous = start at the grid optimum and refine in log space.</summary>
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

/// <summary>Optimal hyperparameters per batch size (NQM.md §3).</summary>
public static class HyperparameterSearch
{
    public static IReadOnlyList<double> NotebookSgdRates { get; } = NumpyCompat.Logspace(-5, 0.5, 100);
    public static IReadOnlyList<double> NotebookMomentumRates { get; } = NumpyCompat.Logspace(-8, 1, 100);
    public static IReadOnlyList<double> NotebookSecondGrid { get; } = NumpyCompat.Logspace(-5, 0, 20).Select(v => 1 - v).ToArray();

    public static long DefaultCap(OptimizerKind kind) => kind == OptimizerKind.Sgd || kind == OptimizerKind.Schedule ? 1_000_000_000 - 1 : 10_000_000 - 1;

    /// <summary>
    /// Minimises steps-to-target over the learning rate (SGD), learning rate and β (momentum) or
    /// learning rate and γ (EMA), or over an n-piece schedule (<see cref="OptimizerKind.Schedule"/>).
    /// Grid mode scans the notebook's grid in its order (learning rate outer, β/γ inner) and keeps the
    /// first strictly better cell, so it returns the notebook's cell. Continuous mode starts from that
    /// cell and refines; it only ever accepts a strictly better exact step count, so it is never worse.
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
        void Cell(int i, int j)
        {
            model.Configure(kind, rates[i], seconds[j], batchSize, reg);
            // The notebook keeps the first cell (in its loop order) with the smallest steps. A cell before the
            // incumbent wins ties, a cell after it must be strictly better; nothing else needs an exact count,
            // so the search range is [0, best] or [0, best − 1] and most cells are rejected by one bound.
            bool before = bestI < 0 || Index(i, j) < Index(bestI, bestJ);
            long limit = best == long.MaxValue ? cap : Math.Min(cap, before ? best : best - 1);
            long k = model.FirstBelow(target, limit);
            if (k >= 0 && (k < best || (k == best && before))) { best = k; bestA = rates[i]; bestS = seconds[j]; bestI = i; bestJ = j; }
        }
        // A coarse pass (every 3rd rate, every 2nd β/γ) first gives a strong incumbent; the full pass then
        // visits the remaining cells in the notebook's order. Result: the notebook's cell, found much faster.
        // (A coarse cell rejected in the first pass had steps >= an earlier incumbent, so it can never be the
        // first minimum and need not be revisited.)
        bool Coarse(int i, int j) => i % 3 == 0 && j % 2 == 0;
        for (int i = 0; i < rates.Count; i++) for (int j = 0; j < seconds.Count; j++) if (Coarse(i, j)) Cell(i, j);
        for (int i = 0; i < rates.Count; i++) for (int j = 0; j < seconds.Count; j++) if (!Coarse(i, j)) Cell(i, j);
        if (options.Mode == SearchMode.Continuous && bestI >= 0)
            (best, bestA, bestS) = Refine(model, kind, batchSize, target, cap, reg, rates, seconds, bestI, bestJ, best);
        return new SearchResult(kind, batchSize, target, power, best == long.MaxValue ? null : best, bestA,
            kind == OptimizerKind.Momentum ? bestS : 0, kind == OptimizerKind.Ema ? bestS : 0, null, cap);
    }

    /// <summary>
    /// Continuous refinement around grid cell (i, j): coordinate golden-section searches on a smooth surrogate
    /// of steps (the fractional crossing time k − 1 + (L(k−1) − target)/(L(k−1) − L(k))), in
    /// u = log(α/(1−β)) (the effective rate, along which momentum's optimum is a ridge) and v = log(1−β).
    /// Every evaluated point's exact steps are compared with the incumbent; only strict improvements are kept.
    /// </summary>
    static (long, double, double) Refine(LossModel model, OptimizerKind kind, double batchSize, double target, long cap, double reg,
        IReadOnlyList<double> rates, IReadOnlyList<double> seconds, int bi, int bj, long best)
    {
        double bestA = rates[bi], bestS = seconds[bj];
        double Step(IReadOnlyList<double> g, int i) => g.Count < 2 ? 0.5 : Math.Abs(Math.Log(g[Math.Min(i + 1, g.Count - 1)]) - Math.Log(g[Math.Max(i - 1, 0)])) / (i == 0 || i == g.Count - 1 ? 1 : 2);
        bool two = kind != OptimizerKind.Sgd;
        double du = Step(rates, bi);
        // Second coordinate: log(1−β) (β = 0 maps to v = 0; the domain is v < 0).
        var oneMinus = seconds.Select(s => 1 - s).ToArray();
        double dv = two ? Step(oneMinus, bj) : 0;
        double u = Math.Log(bestA / (two ? 1 - bestS : 1)), v = two ? Math.Log(1 - bestS) : 0;

        double Eval(double uu, double vv)
        {
            double s = two ? 1 - Math.Exp(Math.Min(vv, 0)) : 0;
            double a = Math.Exp(uu) * (two ? 1 - s : 1);
            if (two && !(s >= 0 && s < 1)) return double.PositiveInfinity;
            model.Configure(kind, a, s, batchSize, reg);
            // Points more than twice as slow as the incumbent are not worth an exact count: cap the search there.
            long lim = Math.Min(cap, best > cap / 2 ? cap : 2 * best);
            long k = model.FirstBelow(target, lim);
            if (k < 0) return lim + 1.0;
            if (k < best) { best = k; bestA = a; bestS = s; }
            if (k == 0) return 0;
            double l0 = model.Loss(k - 1), l1 = model.Loss(k);
            double frac = l0 > l1 ? Math.Clamp((l0 - target) / (l0 - l1), 0, 1) : 1;
            return k - 1 + frac;
        }

        for (int round = 0; round < (two ? 2 : 1); round++)
        {
            u = Golden(x => Eval(x, v), u - du, u + du, 18);
            if (two) v = Golden(y => Eval(u, y), v - dv, Math.Min(v + dv, -1e-12), 18);
            du *= 0.5; dv *= 0.5;
        }
        return (best, bestA, bestS);
    }

    /// <summary>Golden-section minimisation on [lo, hi]; returns the best abscissa seen.</summary>
    static double Golden(Func<double, double> f, double lo, double hi, int iterations)
    {
        const double g = 0.6180339887498949;
        double a = lo, b = hi, c = b - g * (b - a), d = a + g * (b - a);
        double fc = f(c), fd = f(d), bx = fc <= fd ? c : d, bf = Math.Min(fc, fd);
        for (int it = 0; it < iterations; it++)
        {
            if (fc <= fd) { b = d; d = c; fd = fc; c = b - g * (b - a); fc = f(c); if (fc < bf) { bf = fc; bx = c; } }
            else { a = c; c = d; fc = fd; d = a + g * (b - a); fd = f(d); if (fd < bf) { bf = fd; bx = d; } }
        }
        return bx;
    }
}
