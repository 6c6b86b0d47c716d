namespace NqmValidate.Nqm;

/// <summary>
/// Expected loss, loss curves and steps-to-target of the Noisy Quadratic Model (docs/design/nqm.md §2–3).
/// Everything is deterministic and in double precision. Constant-rate optimizers cost O(rows) per
/// evaluation independent of k; piecewise-constant schedules O(segments · rows); per-step schedules
/// (linear, cosine) O(k · rows) by exact recursion.
/// </summary>
public static class Nqm
{
    /// <summary>E L(k) = ½ Σ count h E θ_k² after <paramref name="k"/> steps.</summary>
    public static double ExpectedLoss(Spectrum spectrum, NqmOptimizer optimizer, double batchSize, long k)
    {
        if (k < 0) throw new NqmArgumentException($"k = {k}: must be >= 0");
        if (optimizer is ScheduledSgd sched)
            return ScheduleDynamics.Loss(new LossModel(spectrum, sched.Preconditioner), sched.Schedule, batchSize, k);
        var model = Configured(spectrum, optimizer, batchSize);
        return model.Loss(k);
    }

    /// <summary>E L(k) for every k in <paramref name="steps"/>.</summary>
    public static double[] LossCurve(Spectrum spectrum, NqmOptimizer optimizer, double batchSize, IReadOnlyList<long> steps)
    {
        var result = new double[steps.Count];
        if (optimizer is ScheduledSgd sched)
        {
            var m = new LossModel(spectrum, sched.Preconditioner);
            for (int j = 0; j < steps.Count; j++) result[j] = ScheduleDynamics.Loss(m, sched.Schedule, batchSize, steps[j]);
            return result;
        }
        var model = Configured(spectrum, optimizer, batchSize);
        for (int j = 0; j < steps.Count; j++) result[j] = model.Loss(steps[j]);
        return result;
    }

    /// <summary>
    /// The smallest integer k with E L(k) &lt; <paramref name="target"/>, searched in [0, maxSteps];
    /// null when no such k exists in range. Exact for every optimizer, monotone or not: see
    /// <see cref="LossModel.FirstBelow"/> and docs/nqm-engine.md. Unstable constant-rate iterations
    /// (spectral radius &gt;= 1 in some row) are reported as null: their loss grows without bound.
    /// </summary>
    public static long? StepsToTarget(Spectrum spectrum, NqmOptimizer optimizer, double batchSize, double target, long maxSteps = 1_000_000_000)
    {
        if (!(target > 0)) throw new NqmArgumentException($"target = {target}: must be > 0");
        if (optimizer is ScheduledSgd sched)
            return ScheduleDynamics.StepsToTarget(new LossModel(spectrum, sched.Preconditioner), sched.Schedule, batchSize, target, maxSteps);
        var model = Configured(spectrum, optimizer, batchSize);
        long k = model.FirstBelow(target, maxSteps);
        return k < 0 ? null : k;
    }

    /// <summary>True when the constant-rate iteration is stable in every row (the loss stays bounded).</summary>
    public static bool IsStable(Spectrum spectrum, NqmOptimizer optimizer, double batchSize) =>
        optimizer is ScheduledSgd || Configured(spectrum, optimizer, batchSize).Stable;

    /// <summary>
    /// The paper's lower bound on steps (docs/design/nqm.md §3.5): d/(2·target·B) for c = h; for a general
    /// spectrum Σ count·(c/h) / (2·target·B) over rows with h &gt; 0 (the noise-limited floor of an ideal
    /// per-dimension schedule).
    /// </summary>
    public static double LowerBound(Spectrum spectrum, double batchSize, double target)
    {
        double d = 0;
        foreach (var r in spectrum.Rows) if (r.H > 0 && r.Count > 0) d += r.Count * r.C / r.H;
        return d / (2 * target * batchSize);
    }

    internal static LossModel Configured(Spectrum spectrum, NqmOptimizer optimizer, double batchSize)
    {
        var model = new LossModel(spectrum, optimizer.Preconditioner);
        switch (optimizer)
        {
            case Sgd s: model.Configure(OptimizerKind.Sgd, s.Alpha, 0, batchSize); break;
            case Momentum m: model.Configure(OptimizerKind.Momentum, m.Alpha, m.Beta, batchSize); break;
            case Ema e: model.Configure(OptimizerKind.Ema, e.Alpha, e.Decay, batchSize); break;
            default: throw new NqmArgumentException($"unsupported optimizer {optimizer.GetType().Name}");
        }
        return model;
    }
}

/// <summary>SGD under a learning-rate schedule: the per-row state is carried across segments with the SGD closed form.</summary>
internal static class ScheduleDynamics
{
    /// <summary>Per-row E θ² after k steps of the schedule (state in <paramref name="s"/>, initialised from the model).</summary>
    public static void Advance(LossModel m, LearningRateSchedule schedule, double batchSize, long k, Span<double> s)
    {
        m.InitialState.CopyTo(s);
        var h = m.Curvatures; var c = m.Noises; var p = m.Preconditioners;
        long done = 0;
        if (schedule.Segments is { } segments)
        {
            foreach (var seg in segments)
            {
                if (done >= k) return;
                long len = Math.Min(seg.Steps, k - done);
                ApplyConstant(h, c, p, seg.Rate, batchSize, len, s);
                done += len;
            }
            if (done < k) ApplyConstant(h, c, p, schedule.RateAt(long.MaxValue), batchSize, k - done, s);
            return;
        }
        // Per-step rates: exact recursion s' = (1 − x_t)² s + n_t up to the schedule's end, then closed form.
        long perStep = Math.Min(k, schedule.Length);
        for (long t = 0; t < perStep; t++)
        {
            double a = schedule.RateAt(t);
            for (int i = 0; i < s.Length; i++)
            {
                double ap = a * p[i], x = ap * h[i], r = 1 - x;
                s[i] = r * r * s[i] + ap * ap * c[i] / batchSize;
            }
        }
        if (k > perStep) ApplyConstant(h, c, p, schedule.RateAt(long.MaxValue), batchSize, k - perStep, s);
    }

    static void ApplyConstant(ReadOnlySpan<double> h, ReadOnlySpan<double> c, ReadOnlySpan<double> p, double rate, double batchSize, long len, Span<double> s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            double ap = rate * p[i], x = ap * h[i], n = ap * ap * c[i] / batchSize;
            double den = x * (2 - x);
            if (den == 0) { s[i] += len * n; continue; }
            double e = len * 2 * Numerics.LogAbsOneMinus(x);
            double sstar = n / den;
            // s* + r^{2len}(s − s*) written as s·r^{2len} + s*(1 − r^{2len}) (no cancellation when s ≈ s*).
            s[i] = s[i] * Math.Exp(e) + sstar * -Numerics.Expm1(e);
        }
    }

    public static double Loss(LossModel m, LearningRateSchedule schedule, double batchSize, long k)
    {
        Span<double> s = m.Rows <= 512 ? stackalloc double[m.Rows] : new double[m.Rows];
        Advance(m, schedule, batchSize, k, s);
        double sum = 0; var w = m.Weights;
        for (int i = 0; i < s.Length; i++) sum += w[i] * s[i];
        return sum;
    }

    /// <summary>Exact first crossing along a schedule: each constant segment is searched with the SGD bound search.</summary>
    public static long? StepsToTarget(LossModel m, LearningRateSchedule schedule, double batchSize, double target, long maxSteps)
    {
        if (m.InitialLoss < target) return 0;
        var s = new double[m.Rows];
        m.InitialState.CopyTo(s);
        var work = new LossModel(m);
        long done = 0;
        IEnumerable<ScheduleSegment> segs = schedule.Segments
            ?? Enumerable.Range(0, (int)Math.Min(schedule.Length, int.MaxValue)).Select(t => new ScheduleSegment(schedule.RateAt(t), 1));
        foreach (var seg in segs.Append(new ScheduleSegment(schedule.RateAt(long.MaxValue), long.MaxValue / 4)))
        {
            if (done >= maxSteps) return null;
            long len = Math.Min(seg.Steps, maxSteps - done);
            work.SetInitialState(s);
            work.Configure(OptimizerKind.Sgd, seg.Rate, 0, batchSize);
            // Unstable segments are still exact here: the bound search only needs N monotone and G² >= 0.
            long k = work.FirstBelowAnyStability(target, len);
            if (k >= 0) return done + k;
            work.SecondMoments(len, s);
            done += len;
        }
        return null;
    }
}
