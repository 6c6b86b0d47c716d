using NqmValidate.Training.Sweeps;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>Plain SGD: θ ← θ − η g.</summary>
public sealed class SgdFamily : IOptimizerFamily
{
    public string Name => "sgd";
    public string Description => "θ ← θ − η g";
    public IReadOnlyList<Hyperparameter> Hyperparameters => [];
    public IReadOnlyList<SearchDimension> SearchDimensions => [];
    public double ScalingExponent => 1.0;
    public IReadOnlyList<string> NqmCounterparts(OptimizerSearch entry) => ["sgd"];

    public IUpdateRule Create(OptimizerSpec resolved, nn.Module model) =>
        new SgdRule(model.parameters());
}
