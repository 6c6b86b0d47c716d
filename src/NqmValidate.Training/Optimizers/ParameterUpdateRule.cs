using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// A gradient update rule over a model's parameters: zero the gradients, forward, backward, then <see cref="Update"/>
/// under no_grad in a dispose scope of its own.
/// </summary>
/// <remarks>
/// Why the project's rules do not call TorchSharp's <c>optim.SGD</c> / <c>optim.Adam</c> <c>step()</c>: that step passes
/// every coefficient (−η, μ, 1 − β, ε, …) as a temporary <see cref="Scalar"/> made by an implicit conversion from
/// double. Nothing keeps the temporary alive once its native handle has been read, so a garbage collection started by
/// another thread during the native call can finalize it, and LibTorch then reads a freed <c>c10::Scalar</c>
/// ("Expected false to be true" from <c>c10::Scalar::toFloat</c>, or silently a wrong coefficient):
/// docs/design/torchsharp.md §2. The rules here hold every Scalar they pass until the call has returned (fields of
/// the rule, kept alive to the end of <see cref="Step"/>, or locals in a <c>using</c>), and issue the same native
/// operations, with the same Scalar types, in the same order as TorchSharp 0.107's optimizers, so a trial's numbers
/// are unchanged bit for bit (pinned by WorkerTests, VerifyCommandTests and TrialRunnerTests).
/// </remarks>
public abstract class ParameterUpdateRule : IUpdateRule
{
    /// <summary>The parameters updated, in the model's order.</summary>
    protected readonly IReadOnlyList<Parameter> Parameters;

    protected ParameterUpdateRule(IEnumerable<Parameter> parameters) => Parameters = parameters.ToList();

    public Tensor Step(Func<Tensor> loss, double learningRate)
    {
        // Gradients are zeroed in place (not set to none), as TorchSharp's optimizers do, so backward accumulates into zeros.
        foreach (var p in Parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
        var value = loss();
        value.backward();
        using (no_grad())
        using (NewDisposeScope())
            Update(learningRate);
        // The Scalars a rule holds in fields stay reachable through this object until every native call has returned.
        GC.KeepAlive(this);
        return value;
    }

    /// <summary>The parameter update at <paramref name="learningRate"/>, from the gradients in place.</summary>
    protected abstract void Update(double learningRate);

    /// <inheritdoc/>
    public virtual IReadOnlyList<Tensor>? DiagonalPreconditioner() => null;

    public virtual void Dispose() { }
}
