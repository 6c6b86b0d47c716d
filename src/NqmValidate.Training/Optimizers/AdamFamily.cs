using NqmValidate.Training.Sweeps;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// Adam (bias-corrected first and second moments, θ ← θ − η m̂/(√v̂ + ε)). The NQM models it as a diagonal
/// preconditioner: of power 1/2, measured from the gradient's second moment where the fit has it, or as the
/// trial's own P = 1/(√v̂ + ε), under which the curvature stage measures the spectrum of a replayed Adam trial.
/// </summary>
public sealed class AdamFamily : IOptimizerFamily
{
    public string Name => "adam";
    public string Description => "m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², θ ← θ − η m̂/(√v̂ + ε)";
    public IReadOnlyList<Hyperparameter> Hyperparameters =>
    [
        Hyperparameter.Decay("beta1", 0.9, "first-moment decay β1"),
        Hyperparameter.Decay("beta2", 0.999, "second-moment decay β2"),
        Hyperparameter.Positive("epsilon", 1e-8, "ε added to √v̂"),
    ];
    public IReadOnlyList<SearchDimension> SearchDimensions =>
    [
        new("one_minus_beta1", "beta1", OneMinus: true),
        new("epsilon", "epsilon", OneMinus: false),
    ];
    // Adam's best learning rate grows roughly as √B below the critical batch size.
    public double ScalingExponent => 0.5;
    // p = 0.5 on the plain spectrum, P from the gradient's second moment per diagonal bin, and heavy ball on the spectrum
    // measured under the trial's own P (where the curvature stage replayed an Adam trial).
    public IReadOnlyList<string> NqmCounterparts(OptimizerSearch entry) => ["precond-p0.5", "precond-measured", "precond-own"];

    public IUpdateRule Create(OptimizerSpec resolved, nn.Module model) =>
        new AdamRule(model.parameters(), resolved["beta1"]!.Value, resolved["beta2"]!.Value, resolved["epsilon"]!.Value);
}
