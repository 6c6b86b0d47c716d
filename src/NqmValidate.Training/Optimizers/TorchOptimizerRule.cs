using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>An update rule that is a TorchSharp optimizer: zero the gradients, backward, step.</summary>
public sealed class TorchOptimizerRule(optim.Optimizer optimizer) : IUpdateRule
{
    double _learningRate = double.NaN;

    public Tensor Step(Func<Tensor> loss, double learningRate)
    {
        if (learningRate != _learningRate)
        {
            foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
            _learningRate = learningRate;
        }
        optimizer.zero_grad();
        var value = loss();
        value.backward();
        optimizer.step();
        return value;
    }

    public void Dispose() => optimizer.Dispose();
}
