namespace NqmValidate.Nqm;

/// <summary>
/// Diagonal preconditioner: either P_i = (h_i + δ)^(-power) (0 = plain, 1 = ideal; Adam ≈ 0.5; δ = <see cref="Damping"/>,
/// 0 unless made by <see cref="Damped"/>) or the measured per-row P of the spectrum (<see cref="FromSpectrum"/>).
/// </summary>
public readonly record struct Preconditioner(double Power, bool UseSpectrumRows)
{
    /// <summary>δ added to h before the power: K-FAC's eigenbasis damping λ, in the spectrum's units.</summary>
    public double Damping { get; init; }

    public static Preconditioner None => new(0, false);
    public static Preconditioner FromPower(double power) =>
        power is >= 0 and <= 1 ? new(power, false) : throw new NqmArgumentException($"preconditioner power = {power}: must be in [0, 1]");
    public static Preconditioner FromSpectrum => new(double.NaN, true);

    /// <summary>P = (h + <paramref name="damping"/>)^-power: a damped second-order method (K-FAC: power 1, δ = its λ).</summary>
    public static Preconditioner Damped(double power, double damping) =>
        damping > 0 && double.IsFinite(damping) ? FromPower(power) with { Damping = damping }
        : throw new NqmArgumentException($"preconditioner damping = {damping}: must be finite and > 0");

    /// <summary>P for one row (rows with h &lt;= 0 never reach the dynamics).</summary>
    public double For(SpectrumRow row)
    {
        if (UseSpectrumRows)
            return row.P ?? throw new NqmArgumentException("the preconditioner comes from the spectrum, but a row has no 'precond' value");
        return Power == 0 ? 1.0 : Math.Pow(row.H + Damping, -Power);
    }

    /// <summary>
    /// The curvature h at which P(h)·h reaches <paramref name="ph"/> (P·h grows with h for power ≤ 1): the cap on h that
    /// caps P·h there. +∞ when no h reaches it (P·h = h/(h + δ) stays below 1 at power 1), 0 when every h does (power 1,
    /// undamped: P·h ≡ 1 ≥ <paramref name="ph"/>). Not for a measured P.
    /// </summary>
    public double CurvatureAt(double ph)
    {
        if (UseSpectrumRows) throw new InvalidOperationException("a measured preconditioner has no curvature law");
        // Undamped: h^(1−p) = ph, the closed form (at p = 1 it gives +∞ above 1 and 0 below).
        if (Damping == 0) return Math.Pow(ph, 1 / (1 - Power));
        if (Power == 1) return ph < 1 ? ph * Damping / (1 - ph) : double.PositiveInfinity;
        // 0 ≤ p < 1 with damping: P·h = h (h + δ)^-p is increasing and unbounded; bisect in log h.
        var (power, damping) = (Power, Damping);
        double Ph(double h) => h * Math.Pow(h + damping, -power);
        double lo = 1e-300, hi = 1;
        while (Ph(hi) < ph) hi *= 2;
        for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++)
        {
            double mid = Math.Sqrt(lo * hi);
            if (Ph(mid) < ph) lo = mid; else hi = mid;
        }
        return hi;
    }

    public override string ToString() => UseSpectrumRows ? "measured" : Damping == 0 ? $"h^-{Power}" : $"(h+{Damping})^-{Power}";
}

/// <summary>Which optimizer family; the search methods take this.</summary>
public enum OptimizerKind { Sgd, Momentum, Ema, Schedule }

/// <summary>An optimizer of the NQM (docs/design/nqm.md §2). All use x = α P h and per-step noise n = α² P² c / B.</summary>
public abstract record NqmOptimizer(Preconditioner Preconditioner)
{
    public abstract OptimizerKind Kind { get; }
    /// <summary>α for constant-rate optimizers; first rate for schedules.</summary>
    public abstract double LearningRate { get; }
    /// <summary>α/(1-β) for momentum, α otherwise.</summary>
    public virtual double EffectiveLearningRate => LearningRate;
}

/// <summary>SGD at a constant learning rate: s' = (1-x)² s + n.</summary>
public sealed record Sgd(double Alpha, Preconditioner Preconditioner) : NqmOptimizer(Preconditioner)
{
    public Sgd(double alpha) : this(alpha, Preconditioner.None) { }
    public override OptimizerKind Kind => OptimizerKind.Sgd;
    public override double LearningRate => Alpha;
}

/// <summary>Heavy-ball momentum θ' = θ - αPg + β(θ - θ_prev), 0 &lt;= β &lt; 1.</summary>
public sealed record Momentum(double Alpha, double Beta, Preconditioner Preconditioner) : NqmOptimizer(Preconditioner)
{
    public override OptimizerKind Kind => OptimizerKind.Momentum;
    public override double LearningRate => Alpha;
    public override double EffectiveLearningRate => Alpha / (1 - Beta);
}

/// <summary>SGD plus an exponential moving average of iterates θ̃' = γθ̃ + (1-γ)θ'; the loss is measured at θ̃.</summary>
public sealed record Ema(double Alpha, double Decay, Preconditioner Preconditioner) : NqmOptimizer(Preconditioner)
{
    public override OptimizerKind Kind => OptimizerKind.Ema;
    public override double LearningRate => Alpha;
}

/// <summary>SGD following a learning-rate schedule (the rate is held at its last value after the schedule ends).</summary>
public sealed record ScheduledSgd(LearningRateSchedule Schedule, Preconditioner Preconditioner) : NqmOptimizer(Preconditioner)
{
    public override OptimizerKind Kind => OptimizerKind.Schedule;
    public override double LearningRate => Schedule.RateAt(0);
}

/// <summary>A learning-rate schedule α_t for t = 0, 1, ... (step t uses α_t).</summary>
public abstract record LearningRateSchedule
{
    public abstract double RateAt(long step);
    /// <summary>Steps after which the rate stays constant.</summary>
    public abstract long Length { get; }
    /// <summary>
    /// Piecewise-constant segments covering [0, Length), or null when the schedule changes every
    /// step (linear, cosine): those are evaluated by exact per-step recursion, O(steps · rows).
    /// </summary>
    public abstract IReadOnlyList<ScheduleSegment>? Segments { get; }
}

/// <summary>Rate α held for <see cref="Steps"/> steps.</summary>
public readonly record struct ScheduleSegment(double Rate, long Steps);

/// <summary>Piecewise-constant schedule (the notebook's): closed form per segment, O(segments · rows).</summary>
public sealed record PiecewiseConstantSchedule(IReadOnlyList<ScheduleSegment> Pieces) : LearningRateSchedule
{
    public override long Length => Pieces.Sum(p => p.Steps);
    public override IReadOnlyList<ScheduleSegment> Segments => Pieces;
    public override double RateAt(long step)
    {
        foreach (var p in Pieces) { if (step < p.Steps) return p.Rate; step -= p.Steps; }
        return Pieces[^1].Rate;
    }
    /// <summary>n equal pieces of <paramref name="pieceSteps"/> steps each.</summary>
    public static PiecewiseConstantSchedule EqualPieces(IReadOnlyList<double> rates, long pieceSteps) =>
        new(rates.Select(r => new ScheduleSegment(r, pieceSteps)).ToArray());
}

/// <summary>Step decay: α_t = initial · factor^⌊t/every⌋ for <see cref="Drops"/> drops, then constant. Piecewise constant.</summary>
public sealed record StepDecaySchedule(double Initial, double Factor, long Every, int Drops) : LearningRateSchedule
{
    public override long Length => Every * Drops;
    public override double RateAt(long step) => Initial * Math.Pow(Factor, Math.Min(Drops, step / Every));
    public override IReadOnlyList<ScheduleSegment> Segments =>
        Enumerable.Range(0, Drops).Select(j => new ScheduleSegment(Initial * Math.Pow(Factor, j), Every)).ToArray();
}

/// <summary>Linear decay from <see cref="Initial"/> to <see cref="Final"/> over <see cref="Steps"/> steps.</summary>
public sealed record LinearDecaySchedule(double Initial, double Final, long Steps) : LearningRateSchedule
{
    public override long Length => Steps;
    public override IReadOnlyList<ScheduleSegment>? Segments => null;
    public override double RateAt(long step) => step >= Steps ? Final : Initial + (Final - Initial) * step / Steps;
}

/// <summary>Cosine decay from <see cref="Initial"/> to <see cref="Final"/> over <see cref="Steps"/> steps.</summary>
public sealed record CosineSchedule(double Initial, double Final, long Steps) : LearningRateSchedule
{
    public override long Length => Steps;
    public override IReadOnlyList<ScheduleSegment>? Segments => null;
    public override double RateAt(long step) =>
        step >= Steps ? Final : Final + 0.5 * (Initial - Final) * (1 + Math.Cos(Math.PI * step / Steps));
}
