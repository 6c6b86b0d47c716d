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
    readonly double[] _a, _b, _g, _e, _f, _u, _v, _q, _rho, _bA, _bB, _lr; // generic per-row coefficient slots
    readonly byte[] _mode;
    // How the deterministic part s0·G_k² is bounded below on an interval (see LowerBound).
    readonly byte[] _bound;
    const byte BoundEndpoints = 0, BoundPhase = 1, BoundTwoExp = 2;

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
        _a = new double[_n]; _b = new double[_n]; _g = new double[_n]; _e = new double[_n];
        _f = new double[_n]; _u = new double[_n]; _v = new double[_n]; _q = new double[_n]; _rho = new double[_n];
        _mode = new byte[_n]; _bound = new byte[_n]; _bA = new double[_n]; _bB = new double[_n]; _lr = new double[_n];
    }

    /// <summary>A fresh workspace over the same rows (for another thread or a schedule segment).</summary>
    public LossModel(LossModel other)
    {
        _n = other._n; _w = other._w; _h = other._h; _c = other._c; _p = other._p;
        _s0 = (double[])other._s0.Clone(); _initialLoss = other._initialLoss;
        _a = new double[_n]; _b = new double[_n]; _g = new double[_n]; _e = new double[_n];
        _f = new double[_n]; _u = new double[_n]; _v = new double[_n]; _q = new double[_n]; _rho = new double[_n];
        _mode = new byte[_n]; _bound = new byte[_n]; _bA = new double[_n]; _bB = new double[_n]; _lr = new double[_n];
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
                case OptimizerKind.Sgd: ConfigureSgd(j, x, noise, _reg); break;
                case OptimizerKind.Momentum: ConfigureMomentum(j, x, noise, _beta); break;
                default: ConfigureEma(j, x, noise, _beta); break;
            }
        }
        _ready = i + 1;
    }

    void ConfigureSgd(int i, double x, double noise, double reg)
    {
        _a[i] = 2 * Numerics.LogAbsOneMinus(x);          // ln r²  (−∞ when x = 1)
        _b[i] = noise / (x * (2 - x) + reg);            // s* = n / (1 − r²)
        _bound[i] = BoundEndpoints;                     // G² = r^{2k} is monotone
    }

    // Momentum slots: _a = a (stationary), _b = v1, _g = ln ρ, _e = angle (ψ or φ), _f = sinh ψ / sin φ,
    // _u = cosh ψ / cos φ (direct mode: λ1), _v = σ (direct mode: λ2), _mode: 0 direct, 1 sinh, 2 sin, 3 repeated.
    void ConfigureMomentum(int i, double x, double noise, double beta)
    {
        double sq = Math.Sqrt(beta);
        double lo = (1 - sq) * (1 - sq), hi = (1 + sq) * (1 + sq);
        double disc = (lo - x) * (hi - x);          // (1+β−x)² − 4β without cancellation
        double m = 0.5 * (1 + beta - x);
        double sigma = m < 0 ? -1 : 1, am = Math.Abs(m);
        _g[i] = Math.Log(sq); _rho[i] = sq;
        _a[i] = noise * (1 + beta) / ((1 - beta) * x * (2 + 2 * beta - x));
        _b[i] = noise * beta * beta / ((1 - beta) * (1 + beta));
        if (disc > 0)
        {
            double d = 0.5 * Math.Sqrt(disc), t = d / am;
            if (t > 0.5)
            {
                double l1 = sigma * (am + d);
                _mode[i] = 0; _u[i] = l1; _v[i] = beta / l1;
                _e[i] = Math.Log(Math.Abs(l1)); _f[i] = Math.Log(Math.Abs(beta / l1));
            }
            else
            {
                double psi = Math.Atanh(t);
                _mode[i] = 1; _e[i] = psi; _f[i] = Math.Sinh(psi); _u[i] = Math.Cosh(psi); _v[i] = sigma;
            }
            _bound[i] = BoundEndpoints;
        }
        else if (disc < 0)
        {
            double phi = Math.Atan2(0.5 * Math.Sqrt(-disc), am);
            var (s, c) = Math.SinCos(phi);
            _mode[i] = 2; _e[i] = phi; _f[i] = s; _u[i] = c; _v[i] = sigma;
            // |G_k| = ρ^k R |sin(kφ + ω)| / sin φ with R cos ω = cos φ − σρ, R sin ω = sin φ.
            _bound[i] = BoundPhase;
            _bA[i] = Math.Atan2(s, c - sigma * sq);
            double rr = Math.Sqrt((c - sigma * sq) * (c - sigma * sq) + s * s) / s;
            _bB[i] = rr * rr;
        }
        else
        {
            _mode[i] = 3; _v[i] = sigma; _bound[i] = BoundEndpoints;
        }
    }

    // EMA slots: _a = r, _b = ln γ, _e = Σ11, _f = κ = Σ12/Σ11, _u = var(θ̃ | θ), _v = Σ22.
    void ConfigureEma(int i, double x, double noise, double gamma)
    {
        double r = 1 - x;
        double s11 = noise / (x * (2 - x));
        double gr = gamma * r;
        _a[i] = r; _b[i] = Math.Log(gamma); _q[i] = Numerics.LogAbsOneMinus(x);
        if (r > 0)
        {
            // D_k = big^k (1 − (small/big)^k)/(big − small): precompute ln big, ln(small/big), big − small.
            bool rBig = r >= gamma;
            double big = rBig ? r : gamma, small = rBig ? gamma : r;
            _g[i] = rBig ? _q[i] : _b[i];
            _rho[i] = big - small;
            _mode[i] = (byte)(big == small ? 1 : 0);
            _lr[i] = big == small ? 0 : Numerics.Log1p(-(big - small) / big);
        }
        _e[i] = s11;
        _f[i] = (1 - gamma) / (1 - gr);
        _u[i] = (1 - gamma) * noise * gamma * gamma / ((1 - gr) * (1 - gr) * (1 + gamma));
        _v[i] = (1 - gamma) * s11 * (1 + gr) / ((1 - gr) * (1 + gamma));
        if (r >= 0) _bound[i] = BoundEndpoints;
        else
        {
            // G_k = A γ^k + B r^{k+1}: |G_k| >= |A| γ^b − |B| |r|^{a+1} on [a, b].
            _bound[i] = BoundTwoExp;
            _bA[i] = Math.Abs(1 + (1 - gamma) * r / (gamma - r));
            _bB[i] = (1 - gamma) / (gamma - r);
        }
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
            double det;
            switch (_bound[i])
            {
                case BoundEndpoints:
                {
                    // |G| is monotone or unimodal with an interior maximum on these rows: its minimum is at an end.
                    Row(i, b, out double g2b, out double noiseB);
                    if (_kind == OptimizerKind.Sgd)
                    {
                        // SGD: E θ_k² = s* + (s0 − s*) r^{2k} is monotone in k, so its minimum on [a, b] is at an end
                        // (tighter than G² at one end plus N at the other).
                        sum += _w[i] * Math.Min(_s0[i] * g2a + noiseA, _s0[i] * g2b + noiseB);
                        continue;
                    }
                    det = Math.Min(g2a, g2b);
                    break;
                }
                case BoundPhase:
                {
                    double phi = _e[i], ta = a * phi + _bA[i], tb = b * phi + _bA[i];
                    double minSin2;
                    if (tb - ta >= Math.PI) minSin2 = 0;
                    else
                    {
                        double next = (Math.Floor(ta / Math.PI) + 1) * Math.PI;
                        if (next <= tb) minSin2 = 0;
                        else { double sa = Math.Sin(ta), sb = Math.Sin(tb); minSin2 = Math.Min(sa * sa, sb * sb); }
                    }
                    det = minSin2 == 0 ? 0 : Math.Exp(2 * b * _g[i]) * _bB[i] * minSin2;
                    break;
                }
                default:
                {
                    double lo = _bA[i] * Math.Exp(b * _b[i]) - _bB[i] * Math.Pow(Math.Abs(_a[i]), a + 1);
                    det = lo > 0 ? lo * lo : 0;
                    break;
                }
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
            case OptimizerKind.Sgd:
            {
                double e = k * _a[i];
                double rk = Math.Exp(e);
                g2 = rk;
                noise = _b[i] * (e < -0.5 ? 1 - rk : -Numerics.Expm1(e));
                return;
            }
            case OptimizerKind.Momentum:
            {
                MomentumS(i, k, out double sm, out double s, out double sp);
                double beta = _beta;
                double g = sp - beta * s;
                double hh = sp - beta * beta * sm;
                double q = s * s * _b[i] + hh * hh * _a[i] / ((1 + beta) * (1 + beta));
                g2 = g * g;
                noise = _a[i] - q;
                return;
            }
            default:
            {
                double gamma = _beta, r = _a[i];
                double gk = Math.Exp(k * _b[i]);
                double dk = EmaD(i, r, gamma, k);
                double c1 = (1 - gamma) * r * dk;
                double g = gk + c1;
                double y = c1 + _f[i] * gk;
                g2 = g * g;
                noise = _v[i] - (y * y * _e[i] + gk * gk * _u[i]);
                return;
            }
        }
    }

    /// <summary>D_k = (r^k − γ^k)/(r − γ), continuous through r = γ.</summary>
    double EmaD(int i, double r, double gamma, long k)
    {
        if (r > 0)
        {
            double bk1 = Math.Exp((k - 1) * _g[i]);
            if (_mode[i] == 1) return k * bk1;
            double bk = bk1 * Math.Exp(_g[i]);
            double e = k * _lr[i];
            return bk * (e < -0.5 ? 1 - Math.Exp(e) : -Numerics.Expm1(e)) / _rho[i];
        }
        return (Math.Pow(r, k) - Math.Pow(gamma, k)) / (r - gamma);
    }

    /// <summary>S_{k−1}, S_k, S_{k+1} for momentum row i (k &gt;= 1).</summary>
    void MomentumS(int i, long k, out double sm, out double s, out double sp)
    {
        switch (_mode[i])
        {
            case 0:
            {
                double l1 = _u[i], l2 = _v[i], den = l1 - l2;
                // λ^{k−1} = sign^{k−1} exp((k−1) ln|λ|) (cheaper than Math.Pow, same accuracy).
                bool odd = ((k - 1) & 1) == 1;
                double p1 = Math.Exp((k - 1) * _e[i]), p2 = Math.Exp((k - 1) * _f[i]);
                if (odd && l1 < 0) { p1 = -p1; p2 = -p2; }
                sm = (p1 - p2) / den;
                s = (p1 * l1 - p2 * l2) / den;
                sp = (p1 * l1 * l1 - p2 * l2 * l2) / den;
                return;
            }
            case 1:
            {
                // B = σ^{k−1} ρ^{k−1}; BU = B sinh(kψ)/sinh ψ, BC = B cosh(kψ).
                double lnB = (k - 1) * _g[i], kpsi = k * _e[i];
                double sign = (_v[i] < 0 && ((k - 1) & 1) == 1) ? -1 : 1;
                double bu, bc;
                if (kpsi < 0.5)
                {
                    double bb = Math.Exp(lnB);
                    bu = bb * Math.Sinh(kpsi) / _f[i];
                    bc = bb * Math.Cosh(kpsi);
                }
                else
                {
                    double ep = Math.Exp(lnB + kpsi), em = Math.Exp(lnB - kpsi);
                    bu = 0.5 * (ep - em) / _f[i];
                    bc = 0.5 * (ep + em);
                }
                bu *= sign; bc *= sign;
                double sr = _v[i] * _rho[i];
                s = bu;
                sp = sr * (bu * _u[i] + bc);
                sm = (bu * _u[i] - bc) / sr;
                return;
            }
            case 2:
            {
                double bb = Math.Exp((k - 1) * _g[i]);
                if (_v[i] < 0 && ((k - 1) & 1) == 1) bb = -bb;
                var (sn, cs) = Math.SinCos(k * _e[i]);
                double bu = bb * sn / _f[i], bc = bb * cs;
                double sr = _v[i] * _rho[i];
                s = bu;
                sp = sr * (bu * _u[i] + bc);
                sm = (bu * _u[i] - bc) / sr;
                return;
            }
            default:
            {
                double bb = Math.Exp((k - 1) * _g[i]);
                if (_v[i] < 0 && ((k - 1) & 1) == 1) bb = -bb;
                double sr = _v[i] * _rho[i];
                s = bb * k;
                sp = sr * bb * (k + 1);
                sm = bb * (k - 1) / sr;
                return;
            }
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
