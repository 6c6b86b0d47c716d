namespace NqmValidate.Nqm;

/// <summary>
/// The hot path: expected loss E L(k) of SGD, heavy-ball momentum or EMA at constant hyperparameters,
/// in closed form with cost O(rows) independent of k, plus interval lower bounds used by the exact
/// steps-to-target search. A mutable workspace: configure, then evaluate; one per thread; no allocation
/// after construction.
/// <para>
/// Every optimizer's per-row second moment is written as
/// <c>E θ_k² = s0 · G_k² + N_k</c>, where G_k is the noiseless response to θ_0 = 1 and
/// N_k is the accumulated noise (the second moment of the process started at θ = 0), which is
/// nondecreasing in k because each step adds a nonnegative contribution. N_k is computed as
/// <c>N_∞ − Q_k</c>, Q_k being the noiseless evolution of the stationary state, written as a sum of
/// squares so nothing cancels.
/// </para>
/// <list type="bullet">
/// <item>SGD: G_k = (1−x)^k, N_k = s*(1 − (1−x)^{2k}).</item>
/// <item>Momentum: with λ1,2 the roots of z² − (1−x+β)z + β and S_j = (λ1^j − λ2^j)/(λ1 − λ2) (a divided
/// difference, evaluated as σ^{j−1} β^{(j−1)/2} sinh(jψ)/sinh ψ, sin(jφ)/sin φ or j in the repeated-root
/// case, so it is continuous through λ1 = λ2): G_k = S_{k+1} − βS_k,
/// Q_k = S_k² v1 + (S_{k+1} − β²S_{k−1})² a/(1+β)², a = n(1+β)/((1−β)x(2+2β−x)), v1 = nβ²/(1−β²).
/// The three eigenvalues λ1², λ2², λ1λ2 of the 3×3 moment transition all enter through S.</item>
/// <item>EMA: with D_k = (r^k − γ^k)/(r − γ), r = 1−x: G_k = γ^k + (1−γ) r D_k; Q_k from the stationary
/// covariance of (θ, θ̃).</item>
/// </list>
/// Facts used by the exact search (proved in docs/nqm-engine.md): N_k is nondecreasing; |G_k| is monotone or
/// unimodal with an interior maximum for SGD, real/repeated-root momentum and EMA with r &gt;= 0 (minimum on an
/// interval at an end); for complex-root momentum |G_k| = ρ^k R |sin(kφ + ω)|/sin φ exactly (phase bound);
/// for EMA with r &lt; 0, |G_k| &gt;= |A|γ^k − |B||r|^{k+1}.
/// <para>
/// Each optimizer's per-row coefficients, and the formulas that use them, are in <see cref="SgdRow"/>,
/// <see cref="HeavyBallRow"/> (by <see cref="HeavyBallRegime"/>) and <see cref="EmaRow"/> (by <see cref="EmaRegime"/>);
/// this class holds the rows, sums them with the loss weights and searches.
/// </para>
/// </summary>
internal sealed class LossModel
{
    // Static per spectrum/preconditioner (rows with h > 0 and count > 0 only).
    readonly int _n;
    readonly double[] _w, _h, _c, _s0, _p;
    double _initialLoss;

    // Per configuration.
    OptimizerKind _kind;
    double _beta; // momentum β or EMA γ
    double _alpha, _batch, _reg;
    int _ready; // rows [0, _ready) have their coefficients computed (ConfigureRows)
    // Per-row coefficients of the configured optimizer, one array per kind (only _kind's is current): structs
    // in contiguous arrays, built once per configuration, so the evaluation loops allocate nothing.
    readonly SgdRow[] _sgd;
    readonly HeavyBallRow[] _heavyBall;
    readonly EmaRow[] _ema;

    public bool Stable { get; private set; }
    public int Rows => _n;

    public LossModel(Spectrum spectrum, Preconditioner preconditioner)
    {
        // Ascending h: slow rows carry most of the loss late in training, so early exits in the bound sums trigger sooner.
        var rows = spectrum.Rows.Where(r => r.H > 0 && r.Count > 0).OrderBy(r => r.H).ToArray();
        _n = rows.Length;
        _w = rows.Select(r => 0.5 * r.H * r.Count).ToArray();
        _h = rows.Select(r => r.H).ToArray();
        _c = rows.Select(r => r.C).ToArray();
        _s0 = rows.Select(r => r.S0).ToArray();
        _p = rows.Select(preconditioner.For).ToArray();
        _initialLoss = 0; for (int i = 0; i < _n; i++) _initialLoss += _w[i] * _s0[i];
        _sgd = new SgdRow[_n]; _heavyBall = new HeavyBallRow[_n]; _ema = new EmaRow[_n];
    }

    /// <summary>A fresh workspace over the same rows (for another thread or a schedule segment).</summary>
    public LossModel(LossModel other)
    {
        _n = other._n; _w = other._w; _h = other._h; _c = other._c; _p = other._p;
        _s0 = (double[])other._s0.Clone(); _initialLoss = other._initialLoss;
        _sgd = new SgdRow[_n]; _heavyBall = new HeavyBallRow[_n]; _ema = new EmaRow[_n];
    }

    public double InitialLoss => _initialLoss;

    /// <summary>Replaces the initial second moments s0 (per dynamic row), e.g. the state at the start of a schedule segment.</summary>
    public void SetInitialState(ReadOnlySpan<double> s0)
    {
        if (s0.Length != _n) throw new ArgumentException($"expected {_n} rows, got {s0.Length}", nameof(s0));
        s0.CopyTo(_s0);
        _initialLoss = 0; for (int i = 0; i < _n; i++) _initialLoss += _w[i] * _s0[i];
    }

    /// <summary>Loss weights ½ h count per dynamic row.</summary>
    public ReadOnlySpan<double> Weights => _w;
    public ReadOnlySpan<double> Curvatures => _h;
    public ReadOnlySpan<double> Noises => _c;
    public ReadOnlySpan<double> Preconditioners => _p;
    public ReadOnlySpan<double> InitialState => _s0;

    /// <summary>Largest P·h: SGD is stable iff α &lt; 2 / max(P h).</summary>
    public double MaxPh { get { double m = 0; for (int i = 0; i < _n; i++) m = Math.Max(m, _p[i] * _h[i]); return m; } }

    /// <summary>
    /// Sets the hyperparameters. <paramref name="second"/> is β (momentum), γ (EMA), ignored for SGD.
    /// <paramref name="sgdStationaryRegularizer"/> reproduces the notebook's s* = n/(1 − (1−x)² + 1e-8)
    /// when 1e-8 is passed (0 = the exact model). Returns whether the iteration is stable in every row.
    /// </summary>
    public bool Configure(OptimizerKind kind, double alpha, double second, double batchSize, double sgdStationaryRegularizer = 0)
    {
        if (!(alpha > 0) || !double.IsFinite(alpha)) throw new NqmArgumentException($"learning rate = {alpha}: must be finite and > 0");
        if (!(batchSize > 0)) throw new NqmArgumentException($"batch size = {batchSize}: must be > 0");
        if (kind == OptimizerKind.Schedule) throw new NqmArgumentException("schedules are evaluated segment by segment, not configured here");
        if (kind != OptimizerKind.Sgd && !(second >= 0 && second < 1))
            throw new NqmArgumentException($"{(kind == OptimizerKind.Momentum ? "momentum β" : "EMA decay γ")} = {second}: must be in [0, 1)");
        if (kind != OptimizerKind.Sgd && second == 0) kind = OptimizerKind.Sgd; // β = 0 / γ = 0 is SGD exactly
        _kind = kind; _beta = second;
        _alpha = alpha; _batch = batchSize; _reg = sgdStationaryRegularizer; _ready = 0;
        // Stability needs every row but only a product per row; the per-row coefficients (logs, roots, angles) are
        // computed lazily, in row order, the first time a row is evaluated (Row): a configuration rejected by a bound
        // that stops after a few slow rows never pays for the others. The coefficients are the same either way.
        bool stable = true;
        for (int i = 0; i < _n; i++)
        {
            double x = alpha * _p[i] * _h[i];
            stable &= kind == OptimizerKind.Momentum ? second < 1 && x > 0 && x < 2 + 2 * second : x > 0 && x < 2;
        }
        Stable = stable;
        return stable;
    }

    /// <summary>Computes the per-row coefficients of rows [_ready, i] for the current configuration.</summary>
    void ConfigureRows(int i)
    {
        for (int j = _ready; j <= i; j++)
        {
            double ap = _alpha * _p[j];
            double x = ap * _h[j];
            double noise = ap * ap * _c[j] / _batch;
            switch (_kind)
            {
                case OptimizerKind.Sgd: _sgd[j] = new SgdRow(x, noise, _reg); break;
                case OptimizerKind.Momentum: _heavyBall[j] = new HeavyBallRow(x, noise, _beta); break;
                default: _ema[j] = new EmaRow(x, noise, _beta); break;
            }
        }
        _ready = i + 1;
    }

    /// <summary>E L(k) for the configured hyperparameters.</summary>
    public double Loss(long k)
    {
        if (k <= 0) return _initialLoss;
        double sum = 0;
        for (int i = 0; i < _n; i++)
        {
            Row(i, k, out double g2, out double noise);
            sum += _w[i] * (_s0[i] * g2 + noise);
        }
        return sum;
    }

    /// <summary>
    /// E L(k), except that summing stops once the (nonnegative) partial sum reaches <paramref name="stopAbove"/>:
    /// the result is exact when below it and some value &gt;= it otherwise (enough for comparisons against it).
    /// </summary>
    public double Loss(long k, double stopAbove)
    {
        if (k <= 0) return _initialLoss;
        double sum = 0;
        for (int i = 0; i < _n && sum < stopAbove; i++)
        {
            Row(i, k, out double g2, out double noise);
            sum += _w[i] * (_s0[i] * g2 + noise);
        }
        return sum;
    }

    /// <summary>E L(k) &lt; target, stopping as soon as the (nonnegative) partial sum reaches the target.</summary>
    public bool LossBelow(long k, double target)
    {
        if (k <= 0) return _initialLoss < target;
        double sum = 0;
        for (int i = 0; i < _n && sum < target; i++)
        {
            Row(i, k, out double g2, out double noise);
            sum += _w[i] * (_s0[i] * g2 + noise);
        }
        return sum < target;
    }

    /// <summary>Per-row second moments E θ_k² (length Rows).</summary>
    public void SecondMoments(long k, Span<double> into)
    {
        for (int i = 0; i < _n; i++)
        {
            if (k <= 0) { into[i] = _s0[i]; continue; }
            Row(i, k, out double g2, out double noise);
            into[i] = _s0[i] * g2 + noise;
        }
    }

    /// <summary>
    /// A lower bound of E L(k) over every k in [a, b] (1 &lt;= a &lt;= b): Σ w (s0·(lower bound of G² on [a, b]) + N_a),
    /// valid because N is nondecreasing and each row's G² bound holds on the whole interval (see the class remarks);
    /// for SGD rows Σ w min(E θ_a², E θ_b²), E θ_k² = s* + (s0 − s*) r^{2k} being monotone in k.
    /// Stops summing once the partial sum reaches <paramref name="stopAbove"/> (all terms are &gt;= 0).
    /// </summary>
    public double LowerBound(long a, long b, double stopAbove = double.PositiveInfinity)
    {
        double sum = 0;
        for (int i = 0; i < _n; i++)
        {
            // Every term is >= 0: once the partial sum reaches stopAbove the bound is decided.
            if (sum >= stopAbove) return sum;
            Row(i, a, out double g2a, out double noiseA);
            double det; // a lower bound of G² on [a, b]
            if (_kind == OptimizerKind.Momentum && _heavyBall[i].Regime == HeavyBallRegime.ComplexRoots) det = _heavyBall[i].PhaseLowerBound(a, b);
            else if (_kind == OptimizerKind.Ema && _ema[i].Regime == EmaRegime.Negative) det = _ema[i].TwoExponentialLowerBound(a, b);
            else
            {
                // |G| is monotone or unimodal with an interior maximum on the other rows: its minimum is at an end.
                Row(i, b, out double g2b, out double noiseB);
                if (_kind == OptimizerKind.Sgd)
                {
                    // SGD: E θ_k² = s* + (s0 − s*) r^{2k} is monotone in k, so its minimum on [a, b] is at an end
                    // (tighter than G² at one end plus N at the other).
                    sum += _w[i] * Math.Min(_s0[i] * g2a + noiseA, _s0[i] * g2b + noiseB);
                    continue;
                }
                det = Math.Min(g2a, g2b);
            }
            sum += _w[i] * (_s0[i] * det + noiseA);
        }
        return sum;
    }

    void Row(int i, long k, out double g2, out double noise)
    {
        if (i >= _ready) ConfigureRows(i);
        switch (_kind)
        {
            case OptimizerKind.Sgd: _sgd[i].Moments(k, out g2, out noise); return;
            case OptimizerKind.Momentum: _heavyBall[i].Moments(k, _beta, out g2, out noise); return;
            default: _ema[i].Moments(k, _beta, out g2, out noise); return;
        }
    }

    /// <summary>
    /// The smallest k in [0, maxSteps] with E L(k) &lt; target, or -1 if there is none (or the iteration
    /// is unstable: see docs). Exact: branch and bound over [1, maxSteps] with <see cref="LowerBound"/>;
    /// an interval is discarded only when its lower bound is &gt;= target, and intervals of at most 8
    /// steps are scanned point by point, so the first crossing is never skipped, monotone or not.
    /// </summary>
    public long FirstBelow(double target, long maxSteps)
    {
        if (_initialLoss < target) return 0;
        if (!Stable || maxSteps < 1) return -1;
        // A short range is scanned point by point by Search; one bound first usually rejects it at once.
        if (maxSteps > 2 && maxSteps < 9 && LowerBound(1, maxSteps, target) >= target) return -1;
        return Search(1, maxSteps, target);
    }

    /// <summary>As <see cref="FirstBelow"/> but also searches unstable iterations (used inside schedule segments).</summary>
    public long FirstBelowAnyStability(double target, long maxSteps)
    {
        if (_initialLoss < target) return 0;
        return maxSteps < 1 ? -1 : Search(1, maxSteps, target);
    }

    long Search(long a, long b, double target)
    {
        if (b - a < 8)
        {
            for (long k = a; k <= b; k++) if (LossBelow(k, target)) return k;
            return -1;
        }
        if (LowerBound(a, b, target) >= target) return -1;
        // Geometric split while the interval spans a large ratio: a curve that is above the target early because
        // it has not decayed yet and late because its noise has built up is then rejected in O(log log) levels,
        // not O(log) (any split is exact: both halves are searched unless bounded away).
        long mid = b > 4 * a ? (long)Math.Sqrt((double)a * b) : a + (b - a) / 2;
        long r = Search(a, mid, target);
        return r >= 0 ? r : Search(mid + 1, b, target);
    }
}
