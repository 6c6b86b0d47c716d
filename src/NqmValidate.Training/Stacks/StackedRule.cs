using NqmValidate.Training.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Stacks;

/// <summary>
/// An update rule over stacked parameters (<see cref="MlpStack.Parameters"/>): one set of tensor operations updates the
/// first n members at once, each with its own hyperparameters (per-member tensors broadcast along the member
/// dimension) and its own optimizer state (rows of stacked state tensors). It performs the member's single-trial rule
/// (<see cref="SgdRule"/>, <see cref="AdamRule"/>) in the same formulas; state rows move with their member.
/// </summary>
public abstract class StackedRule : IDisposable
{
    protected readonly IReadOnlyList<Tensor> Parameters;
    protected readonly int Capacity;
    // Scalars held for the whole rule's life: a temporary Scalar may be freed by a concurrent GC mid-call (ParameterUpdateRule).
    protected readonly Scalar One = 1.0.ToScalar();

    protected StackedRule(IReadOnlyList<Tensor> parameters, int capacity) => (Parameters, Capacity) = (parameters, capacity);

    /// <summary>The rule for a family's members, or null when the family has no stacked form.</summary>
    public static StackedRule? For(string family, IReadOnlyList<Tensor> parameters, int capacity) => family switch
    {
        "sgd" or "momentum" => new StackedHeavyBall(parameters, capacity, nesterov: false),
        "nesterov" => new StackedHeavyBall(parameters, capacity, nesterov: true),
        "adam" => new StackedAdam(parameters, capacity),
        _ => null,
    };

    /// <summary>The families with a stacked form: what a stack can train.</summary>
    public static readonly IReadOnlyList<string> Families = ["sgd", "momentum", "nesterov", "adam"];

    /// <summary>Starts a new member in <paramref name="slot"/>: its hyperparameters from a resolved spec, its state zero.</summary>
    public abstract void Start(int slot, OptimizerSpec resolved);

    /// <summary>Moves the member in slot <paramref name="from"/> (hyperparameters and state) to slot <paramref name="to"/>.</summary>
    public abstract void Move(int from, int to);

    /// <summary>Updates the first <paramref name="members"/> slots from the gradients in place, member k at <paramref name="learningRates"/>[k].</summary>
    public void Update(int members, ReadOnlySpan<double> learningRates)
    {
        using (no_grad())
        using (NewDisposeScope())
            Update(members, learningRates.ToArray());
        GC.KeepAlive(this);
    }

    protected abstract void Update(int members, double[] learningRates);

    /// <summary>A per-member value as a [n, 1, 1] tensor (every stacked tensor is 3-D: member, rows, columns).</summary>
    protected Tensor PerMember(IEnumerable<double> values, int members) =>
        tensor(values.Take(members).Select(v => (float)v).ToArray(), device: Parameters[0].device).view(members, 1, 1);

    /// <summary>Stacked state shaped like the parameters, zero.</summary>
    protected Tensor[] ZeroState() => Parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();

    protected static void MoveRows(IEnumerable<Tensor> state, int from, int to)
    {
        foreach (var s in state) s[to].copy_(s[from]);
    }

    protected static void ZeroRows(IEnumerable<Tensor> state, int slot)
    {
        foreach (var s in state) s[slot].zero_();
    }

    public virtual void Dispose() => One.Dispose();
}

/// <summary>
/// SGD and heavy-ball momentum, v ← μv + g, θ ← θ − ηv (or Nesterov's θ ← θ − η(g + μv)), as <see cref="SgdRule"/>;
/// v starts at zero, so the first update's v is the first gradient as there. Plain SGD is μ = 0.
/// </summary>
public sealed class StackedHeavyBall(IReadOnlyList<Tensor> parameters, int capacity, bool nesterov) : StackedRule(parameters, capacity)
{
    readonly double[] _momentum = new double[capacity];
    Tensor[]? _state;

    Tensor[] Velocity => _state ??= ZeroState();

    public override void Start(int slot, OptimizerSpec resolved)
    {
        _momentum[slot] = resolved["momentum"] ?? 0;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        ZeroRows(Velocity, slot);
    }

    public override void Move(int from, int to)
    {
        _momentum[to] = _momentum[from];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        MoveRows(Velocity, from, to);
    }

    protected override void Update(int members, double[] learningRates)
    {
        var mu = PerMember(_momentum, members);
        var minusLearningRate = PerMember(learningRates.Select(r => -r), members);
        for (int i = 0; i < Parameters.Count; i++)
        {
            var grad = Parameters[i].grad!.narrow(0, 0, members);
            var v = Velocity[i].narrow(0, 0, members);
            v.mul_(mu).add_(grad);
            var direction = nesterov ? grad.add(v.mul(mu)) : v;
            Parameters[i].narrow(0, 0, members).addcmul_(direction, minusLearningRate, One);
        }
    }

    public override void Dispose()
    {
        foreach (var v in _state ?? []) v.Dispose();
        base.Dispose();
    }
}

/// <summary>Adam as <see cref="AdamRule"/>: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², θ ← θ − η/(1−β1ᵗ) · m/(√v/√(1−β2ᵗ) + ε), t per member.</summary>
public sealed class StackedAdam(IReadOnlyList<Tensor> parameters, int capacity) : StackedRule(parameters, capacity)
{
    readonly double[] _beta1 = new double[capacity], _beta2 = new double[capacity], _epsilon = new double[capacity];
    readonly long[] _t = new long[capacity];
    Tensor[]? _m, _v;

    Tensor[] M => _m ??= ZeroState();
    Tensor[] V => _v ??= ZeroState();

    public override void Start(int slot, OptimizerSpec resolved)
    {
        (_beta1[slot], _beta2[slot], _epsilon[slot], _t[slot]) = (resolved["beta1"]!.Value, resolved["beta2"]!.Value, resolved["epsilon"]!.Value, 0);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        ZeroRows(M.Concat(V), slot);
    }

    public override void Move(int from, int to)
    {
        (_beta1[to], _beta2[to], _epsilon[to], _t[to]) = (_beta1[from], _beta2[from], _epsilon[from], _t[from]);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        MoveRows(M.Concat(V), from, to);
    }

    protected override void Update(int members, double[] learningRates)
    {
        for (int k = 0; k < members; k++) _t[k]++;
        var k_ = Enumerable.Range(0, members);
        var beta1 = PerMember(_beta1, members);
        var oneMinusBeta1 = PerMember(_beta1.Select(b => 1 - b), members);
        var beta2 = PerMember(_beta2, members);
        var oneMinusBeta2 = PerMember(_beta2.Select(b => 1 - b), members);
        var epsilon = PerMember(_epsilon, members);
        var sqrtBiasCorrection2 = PerMember(k_.Select(k => Math.Sqrt(1 - Math.Pow(_beta2[k], _t[k]))), members);
        var minusStepSize = PerMember(k_.Select(k => -learningRates[k] / (1 - Math.Pow(_beta1[k], _t[k]))), members);
        for (int i = 0; i < Parameters.Count; i++)
        {
            var grad = Parameters[i].grad!.narrow(0, 0, members);
            var m = M[i].narrow(0, 0, members);
            var v = V[i].narrow(0, 0, members);
            m.mul_(beta1).addcmul_(grad, oneMinusBeta1, One);
            v.mul_(beta2).addcmul_(grad.mul(grad), oneMinusBeta2, One);
            var denominator = v.sqrt().div_(sqrtBiasCorrection2).add_(epsilon);
            Parameters[i].narrow(0, 0, members).addcdiv_(m.mul(minusStepSize), denominator, One);
        }
    }

    public override void Dispose()
    {
        foreach (var t in (_m ?? []).Concat(_v ?? [])) t.Dispose();
        base.Dispose();
    }
}
