using NqmValidate.Training.Optimizers;

namespace NqmValidate.Training.Sweeps;

/// <summary>
/// Orders a study's trials so that good ones come first, which lets best-so-far pruning cap the
/// rest early. The first study of a chain starts at the centre of the search space; each later
/// study starts at the previous batch size's best point with its learning rate scaled by
/// (B / B_prev)^α: α = 1 for SGD and momentum (linear scaling below the critical batch size),
/// α = 1/2 for Adam (square-root scaling). Trials are then taken by distance from that
/// prediction in unit (log) coordinates; ties by canonical index. The order depends only on
/// the previous study's (deterministic) result, so it is the same on every run.
/// </summary>
public static class TrialOrdering
{
    public static double ScalingExponent(string optimizer) => OptimizerFamilies.Get(optimizer).ScalingExponent;

    /// <summary>The predicted best point of <paramref name="study"/> in unit coordinates.</summary>
    /// <param name="study">The study to order.</param>
    /// <param name="space">Its optimizer's search space.</param>
    /// <param name="previous">The chain's previous study and its result, or null for the first study.</param>
    /// <param name="previousPrediction">The prediction used for the previous study (carried when it reached nothing).</param>
    public static double[] Predict(StudyPlan study, SearchSpace space, StudyResult? previous, double[]? previousPrediction)
    {
        var centre = Enumerable.Repeat(0.5, space.Dimensions).ToArray();
        if (previous is null) return centre;
        double[] from = previous.Best?.Trial.Unit ?? previousPrediction ?? centre;
        double lr = previous.Best?.Trial.Point.LearningRate ?? space.FromUnit(from).LearningRate;
        double scaled = lr * Math.Pow(study.BatchSize / (double)previous.Study.BatchSize, ScalingExponent(study.Optimizer));
        var predicted = (double[])from.Clone();
        predicted[0] = space.LearningRateUnit(scaled);
        return predicted;
    }

    /// <summary>The run order of a study's trials.</summary>
    public static IReadOnlyList<TrialPlan> Order(StudyPlan study, double[] predicted, string order)
    {
        if (order == "canonical") return study.Trials;
        return study.Trials
            .OrderBy(t => Distance(t.Unit, predicted))
            .ThenBy(t => t.Index)
            .ToList();
    }

    static double Distance(double[] a, double[] b)
    {
        double d = 0;
        for (int i = 0; i < a.Length; i++) d += (a[i] - b[i]) * (a[i] - b[i]);
        return d;
    }
}
