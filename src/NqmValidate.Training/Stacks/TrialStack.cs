using System.Diagnostics;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Workloads;
using static TorchSharp.torch;
using TrialSession = NqmValidate.Training.Trials.TrialRunner.TrialSession;
using PendingUpdate = NqmValidate.Training.Trials.TrialRunner.PendingUpdate;

namespace NqmValidate.Training.Stacks;

/// <summary>How a stacked trial ended: its result, or the exception that stopped it (a crash).</summary>
public sealed record StackedTrialOutcome(TrialConfig Config, TrialResult? Result, Exception? Error);

/// <summary>
/// Trials that share a workload, an MLP architecture, a batch size and a stacked update rule, trained as one stacked
/// model (<see cref="MlpStack"/>, <see cref="StackedRule"/>): every member keeps its own initial weights, data order,
/// learning-rate schedule, optimizer state, evaluations, divergence check and stop — its own <c>TrialSession.Course</c>,
/// the same code a trial trained alone runs — and only the updates are made together. Members leave as they finish
/// and new ones may join at any step (<see cref="Add"/>), so a queue of trials keeps the stack full.
/// </summary>
/// <remarks>
/// Why: at small batch sizes a step of a small MLP is dominated by per-operation overhead (kernel launches, autograd
/// bookkeeping), not arithmetic; n members stacked pay it once. A member's curve does not depend on the other
/// members or its slot (so a sweep killed and resumed finishes the same), but is not bit for bit the curve of the
/// trial alone (<see cref="MlpStack"/>'s remarks say why).
/// </remarks>
public sealed class TrialStack : IDisposable
{
    sealed class Member(TrialConfig config, TrialSession session, IEnumerator<PendingUpdate> course, Action<StackedTrialOutcome> finished)
    {
        public TrialConfig Config { get; } = config;
        public TrialSession Session { get; } = session;
        public IEnumerator<PendingUpdate> Course { get; } = course;
        public Action<StackedTrialOutcome> Finished { get; } = finished;
        public PendingUpdate? Pending { get; set; }
        public int Slot { get; set; }
    }

    readonly IWorkload _workload;
    readonly Device _device;
    readonly List<Member> _members = [];
    MlpStack? _stack;
    StackedRule? _rule;

    /// <summary>Members at most.</summary>
    public int Capacity { get; }

    /// <summary>Members training now.</summary>
    public int Count => _members.Count;

    /// <summary>What every member shares (<see cref="KeyOf"/>); null while the stack is empty.</summary>
    public string? Key { get; private set; }

    public TrialStack(IWorkload workload, Device device, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        (_workload, _device, Capacity) = (workload, device, capacity);
    }

    /// <summary>Why a trial cannot be trained in a stack (null when it can).</summary>
    public static string? Unsupported(TrialConfig config)
    {
        if (config.Model.Name != "mlp") return $"model {config.Model.Name}: stacks train MLPs only";
        if (!StackedRule.Families.Contains(config.Optimizer.Name))
            return $"optimizer {config.Optimizer.Name}: stacks train {string.Join(", ", StackedRule.Families)} only";
        return null;
    }

    /// <summary>True when trials of <paramref name="model"/> with optimizer family <paramref name="optimizer"/> can be stacked.</summary>
    public static bool Supports(Models.ModelSpec model, string optimizer) =>
        Unsupported(new TrialConfig { Model = model, Optimizer = new Optimizers.OptimizerSpec(optimizer, 1) }) is null;

    /// <summary>
    /// What members of one stack share: the model, the batch size, the device and thread count, and the stacked rule
    /// (SGD and heavy ball share one: SGD is μ = 0).
    /// </summary>
    public static string KeyOf(TrialConfig config) =>
        $"{config.Model}|B={config.BatchSize}|{config.Device}|threads={config.Threads}|data={config.DataDir}|" +
        (config.Optimizer.Name is "sgd" ? "momentum" : config.Optimizer.Name);

    /// <summary>True when <paramref name="config"/> can join now (room left, same key).</summary>
    public bool Accepts(TrialConfig config) =>
        Count < Capacity && Unsupported(config) is null && (Key is null || Key == KeyOf(config.Resolve()));

    /// <summary>
    /// Adds a trial; it starts with the next <see cref="Step"/>. <paramref name="finished"/> is called (from
    /// <see cref="Step"/>) when it ends, with its result or the exception that stopped it.
    /// </summary>
    public void Add(TrialConfig config, Action<StackedTrialOutcome> finished, ITrialObserver? observer = null, CancellationToken cancel = default)
    {
        var resolved = config.Resolve();
        if (Unsupported(resolved) is { } reason) throw new NotSupportedException(reason);
        if (Count >= Capacity) throw new InvalidOperationException($"the stack is full ({Capacity} members)");
        string key = KeyOf(resolved);
        if (Key is not null && key != Key) throw new ArgumentException($"a trial of {key} cannot join a stack of {Key}", nameof(config));
        Member? member = null;
        var session = new TrialSession(resolved, _workload, _device, stackMember: () => _stack!.Store(member!.Slot, member.Session.Model));
        try
        {
            _stack ??= new MlpStack(session.Model, Capacity);
            _rule ??= StackedRule.For(resolved.Optimizer.Name, _stack.Parameters, Capacity)!;
            member = new Member(resolved, session, session.Course(cancel, observer ?? new TrialRunner.NoObserver()), finished) { Slot = _members.Count };
            _stack.Load(member.Slot, session.Model);
            _rule.Start(member.Slot, resolved.Optimizer);
        }
        catch
        {
            session.Dispose();
            throw;
        }
        _members.Add(member);
        Key = key;
    }

    /// <summary>
    /// Lets every member evaluate and decide (members that end are removed and reported), then makes one update of all
    /// remaining members at once. Returns false when no member is left.
    /// </summary>
    public bool Step()
    {
        for (int i = 0; i < _members.Count;)
        {
            var m = _members[i];
            if (m.Pending is null)
            {
                Exception? error = null;
                bool more;
                try { more = m.Course.MoveNext(); }
                catch (Exception e) { (more, error) = (false, e); }
                if (!more)
                {
                    Remove(i); // the last member moves into slot i: look at i again
                    m.Finished(new StackedTrialOutcome(m.Config, error is null ? m.Session.Result : null, error));
                    m.Course.Dispose();
                    m.Session.Dispose();
                    continue;
                }
                m.Pending = m.Course.Current;
            }
            i++;
        }
        if (_members.Count == 0)
        {
            Key = null;
            return false;
        }
        Update();
        return true;
    }

    /// <summary>One stacked update: each member's batch of its own step, one forward and backward pass, one rule update.</summary>
    void Update()
    {
        var clock = Stopwatch.StartNew();
        int n = _members.Count;
        double[] losses;
        using (NewDisposeScope())
        {
            var indices = cat(_members.Select(m => m.Session.BatchIndices(m.Pending!.Step)).ToArray());
            var train = _workload.Train;
            var inputs = train.Images.index_select(0, indices);
            var targets = train.Labels.index_select(0, indices);
            long batch = inputs.shape[0] / n;
            _stack!.ZeroGrad();
            var outputs = _stack.Forward(inputs.view(new[] { n, batch }.Concat(inputs.shape.Skip(1)).ToArray()), n);
            var perMember = stack(Enumerable.Range(0, n)
                .Select(k => _workload.Loss(outputs[k], targets.narrow(0, k * batch, batch))).ToArray());
            perMember.sum().backward();
            _rule!.Update(n, _members.Select(m => m.Pending!.LearningRate).ToArray());
            losses = perMember.detach().to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        }
        var share = clock.Elapsed / n;
        for (int k = 0; k < n; k++)
        {
            var m = _members[k];
            m.Pending!.Loss = (float)losses[k];
            m.Pending = null;
            m.Session.AddTrainSeconds(share);
        }
    }

    void Remove(int i)
    {
        int last = _members.Count - 1;
        if (i != last)
        {
            var moved = _members[last];
            _stack!.Move(last, i);
            _rule!.Move(last, i);
            moved.Slot = i;
            _members[i] = moved;
        }
        _members.RemoveAt(last);
    }

    /// <summary>
    /// Trains <paramref name="configs"/> (one key) in a stack of <paramref name="capacity"/>, refilling it from the list in
    /// order as members finish. Returns the outcomes in the list's order.
    /// </summary>
    public static IReadOnlyList<StackedTrialOutcome> RunAll(IReadOnlyList<TrialConfig> configs, IWorkload workload, int capacity,
        CancellationToken cancel = default)
    {
        if (configs.Count == 0) return [];
        var first = configs[0].Resolve();
        TorchRuntime.Initialize(first.Threads);
        using var stack = new TrialStack(workload, TorchRuntime.ResolveDevice(first.Device), capacity);
        var outcomes = new StackedTrialOutcome?[configs.Count];
        int next = 0;
        while (true)
        {
            while (next < configs.Count && stack.Count < capacity)
            {
                int index = next++;
                stack.Add(configs[index], o => outcomes[index] = o, cancel: cancel);
            }
            if (!stack.Step() && next >= configs.Count) break;
        }
        return outcomes.Select(o => o!).ToList();
    }

    public void Dispose()
    {
        foreach (var m in _members)
        {
            m.Course.Dispose();
            m.Session.Dispose();
        }
        _members.Clear();
        _rule?.Dispose();
        _stack?.Dispose();
    }
}
