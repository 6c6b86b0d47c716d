namespace NqmValidate.Training.Trials;

/// <summary>
/// When a trial evaluates. Two layers, both pure functions of the configuration (so two runs of one
/// command evaluate at the same steps and report the same steps-to-target):
/// <list type="bullet">
/// <item>The <b>grid</b> g₀ = 0, gₖ₊₁ = gₖ + max(1, ⌊gₖ/20⌋): every step up to 20, then steps 5% apart.
/// A target first met at grid point gₖ but not at gₖ₋₁ is resolved to within 5% (exactly below step 20).</item>
/// <item><b>Coarse evaluations</b> at a subset of the grid, spaced so that evaluating costs about a given share of
/// the training compute (<see cref="EvalShare"/>, or <see cref="SafetyNetShare"/> when a cheap proxy triggers dense
/// evaluation near the target; an evaluation of n examples costs about n/(3B) training steps: a forward pass is a
/// third of forward + backward). Between two coarse evaluations the trial keeps a copy of the parameters at each grid
/// point (at most <c>maxSnapshots</c> of them); the trial (TrialRunner) searches those copies from the left for the
/// first grid point that meets the target.</item>
/// </list>
/// </summary>
public sealed class EvaluationSchedule
{
    /// <summary>Target share of training compute spent on coarse evaluations.</summary>
    public const double EvalShare = 0.10;
    /// <summary>
    /// Share for trials whose target has a cheap proxy that triggers dense evaluation near the crossing (a training-loss
    /// target: the mini-batch losses); the coarse evaluations are then only a safety net for a proxy that misleads.
    /// </summary>
    public const double SafetyNetShare = 0.04;

    public long MaxSteps { get; }
    /// <summary>Minimum number of steps between two coarse evaluations.</summary>
    public long BudgetGap { get; }
    public int MaxSnapshots { get; }

    public EvaluationSchedule(long maxSteps, long budgetGap, int maxSnapshots)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSteps, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(budgetGap, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxSnapshots);
        (MaxSteps, BudgetGap, MaxSnapshots) = (maxSteps, budgetGap, maxSnapshots);
    }

    /// <summary>A schedule whose coarse evaluations cost about <see cref="EvalShare"/> of training.</summary>
    public static EvaluationSchedule ForCost(long maxSteps, int batchSize, long evalExamples, int maxSnapshots, double share = EvalShare)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(share);
        double evalCostInSteps = evalExamples / (3.0 * batchSize);
        long gap = Math.Max(1, (long)Math.Ceiling(evalCostInSteps / share));
        return new EvaluationSchedule(maxSteps, gap, maxSnapshots);
    }

    /// <summary>The grid point after <paramref name="step"/> (a grid point).</summary>
    public static long NextGridPoint(long step) => step + Math.Max(1, step / 20);

    /// <summary>The grid points in (from, to], ascending.</summary>
    public static IEnumerable<long> GridPoints(long from, long to)
    {
        for (long g = NextGridPoint(0); g <= to; g = NextGridPoint(g))
            if (g > from) yield return g;
    }

    /// <summary>
    /// The coarse evaluation after the one at <paramref name="coarse"/> (0 or a grid point): the first grid point at
    /// least <see cref="BudgetGap"/> later, earlier if <see cref="MaxSnapshots"/> grid points lie before it, and never
    /// beyond <see cref="MaxSteps"/> (which is always evaluated).
    /// </summary>
    public long NextCoarse(long coarse)
    {
        long g = coarse;
        for (int inside = 0; ; inside++)
        {
            long next = NextGridPoint(g);
            if (next >= MaxSteps) return MaxSteps;
            if (next >= coarse + BudgetGap || inside == MaxSnapshots) return next;
            g = next;
        }
    }
}
