using NqmValidate.Training.Sweeps;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// Heavy-ball momentum v ← μv + g, θ ← θ − ηv (<see cref="SgdRule"/>: TorchSharp's SGD arithmetic with momentum and zero dampening), or with
/// <c>nesterov</c> the look-ahead form θ ← θ − η(g + μv). Both are modelled by the NQM's heavy ball.
/// </summary>
public sealed class MomentumFamily(bool nesterov) : IOptimizerFamily
{
    public string Name => nesterov ? "nesterov" : "momentum";
    public string Description => nesterov ? "v ← μv + g, θ ← θ − η(g + μv)" : "v ← μv + g, θ ← θ − ηv";
    public IReadOnlyList<Hyperparameter> Hyperparameters => [Hyperparameter.Decay("momentum", 0.9, "momentum μ")];
    public IReadOnlyList<SearchDimension> SearchDimensions => [new("one_minus_momentum", "momentum", OneMinus: true, Required: true)];
    public double ScalingExponent => 1.0;
    public IReadOnlyList<string> NqmCounterparts(OptimizerSearch entry) => ["momentum"];

    public IUpdateRule Create(OptimizerSpec resolved, nn.Module model) =>
        new SgdRule(model.parameters(), momentum: resolved["momentum"]!.Value, nesterov: nesterov);
}
