using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using static TorchSharp.torch;

namespace NqmValidate.Training.Workloads;

/// <summary>The loss attached to a workload's network output; the curvature stage needs to know which.</summary>
public enum OutputLossKind
{
    /// <summary>Softmax cross-entropy with integer class targets.</summary>
    SoftmaxCrossEntropy,
    /// <summary>½‖z − y‖² with float targets of the output's shape.</summary>
    SquaredError,
}

/// <summary>
/// A workload in AlgoPerf's sense: a data set with its splits, the models built for it and its loss. The
/// trial (and the replay of a trial that the curvature stage measures) sees a network only through a workload,
/// and the optimizer (<see cref="Optimizers.IUpdateRule"/>) only through the loss closure the trial hands it:
/// a second data set or a regression task is a new class implementing this, not edits across the tree.
/// Fashion-MNIST with the registry's models is the first (<see cref="FashionMnistWorkload"/>).
/// </summary>
public interface IWorkload
{
    /// <summary>A name for logs and records.</summary>
    string Name { get; }

    /// <summary>The split mini-batches are drawn from.</summary>
    DataSplit Train { get; }

    /// <summary>The held-out split validation metrics are measured on.</summary>
    DataSplit Validation { get; }

    /// <summary>The output loss (what curvature's Gauss-Newton and Fisher are built from).</summary>
    OutputLossKind OutputLoss { get; }

    /// <summary>The model of <paramref name="spec"/> with its initial weights drawn from <paramref name="seed"/>.</summary>
    nn.Module<Tensor, Tensor> CreateModel(ModelSpec spec, long seed, Device device);

    /// <summary>The mean loss of a batch (differentiable): what the update rule minimises.</summary>
    Tensor Loss(Tensor output, Tensor targets);

    /// <summary>
    /// The summed loss of a batch and its number of correct predictions (null where a classification error has no
    /// meaning), for evaluation under no_grad. Tensors of the caller's dispose scope.
    /// </summary>
    (Tensor LossSum, Tensor? Correct) Score(Tensor output, Tensor targets);
}

/// <summary>Fashion-MNIST classification with the models of <see cref="ModelRegistry"/> and softmax cross-entropy.</summary>
public sealed class FashionMnistWorkload(FashionMnistData data) : IWorkload
{
    public string Name => "fashion-mnist";
    public DataSplit Train => data.Train;
    public DataSplit Validation => data.Validation;
    public OutputLossKind OutputLoss => OutputLossKind.SoftmaxCrossEntropy;

    public nn.Module<Tensor, Tensor> CreateModel(ModelSpec spec, long seed, Device device) => ModelRegistry.Create(spec, seed, device);

    public Tensor Loss(Tensor output, Tensor targets) => nn.functional.cross_entropy(output, targets);

    public (Tensor LossSum, Tensor? Correct) Score(Tensor output, Tensor targets) =>
        (nn.functional.cross_entropy(output, targets, reduction: nn.Reduction.Sum), output.argmax(1).eq(targets).sum());
}
