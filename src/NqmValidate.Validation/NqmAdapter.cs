namespace NqmValidate.Validation;

/// <summary>The NQM optimum at one batch size: steps-to-target and the hyperparameters that achieve it.</summary>
public sealed record NqmOptimum(double Steps, double LearningRate, double? Momentum, double EffectiveLearningRate);

/// <summary>The one place the validation stage calls the NQM engine.</summary>
internal static class NqmAdapter
{
    public static NqmOptimum? Optimize(IReadOnlyList<NqmBin> bins, string nqmOptimizer, double batchSize, double target, bool grid, double adamEpsilon)
        => throw new NotImplementedException();

    public static ScalingFitResult? FitScaling(ScalingPoints curve) => throw new NotImplementedException();
}
