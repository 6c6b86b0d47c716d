using System.Diagnostics;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Workloads;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Trials;

/// <summary>Optional hooks into a running trial (progress display, memory probes in benchmarks).</summary>
public interface ITrialObserver
{
    /// <summary>After update <paramref name="step"/> with its mini-batch loss.</summary>
    void Stepped(long step, double minibatchLoss) { }
    /// <summary>After an evaluation (the row carries the evaluated metrics).</summary>
    void Evaluated(CurvePoint point) { }
}

/// <summary>A finished (or stopped) trial: its record and its curve, sorted by step.</summary>
public sealed record TrialResult(TrialRecord Record, IReadOnlyList<CurvePoint> Curve);

/// <summary>
/// Runs one trial: trains a model from its seed until the target is met (status reached, with the first
/// evaluated step meeting it), the step budget is spent (budget_exhausted), the loss blows up (diverged), or the
/// token is cancelled (interrupted). Evaluates on an <see cref="EvaluationSchedule"/>.
/// </summary>
public static class TrialRunner
{
    /// <summary>Memory allowed for parameter copies kept between two coarse evaluations.</summary>
    public const long SnapshotMemoryBytes = 256L << 20;
    const int EvalChunk = 1000;
    const double LossAverageWeight = 0.1;
    /// <summary>Dense evaluation starts once the mini-batch loss average is below (1 + this) × the target loss.</summary>
    const double LossProxyMargin = 0.05;

    /// <summary>
    /// Loads the data, runs the trial and writes trial.json (once the data is loaded with status running, and at the
    /// end) and curve.csv into <paramref name="outDir"/>. Bad input throws before anything is written; an unexpected
    /// failure during training is recorded as status crashed (with its error) and rethrown. <c>machine</c> goes into
    /// trial.json as is (the `nqm train` process passes <see cref="MachineProvenance.Current"/>).
    /// </summary>
    public static TrialResult RunToDirectory(TrialConfig config, string outDir, CancellationToken cancel = default,
        ITrialObserver? observer = null, string[]? commandLine = null, MachineProvenance? machine = null)
    {
        var started = DateTime.UtcNow;
        var wall = Stopwatch.StartNew();
        var resolved = config.Resolve();
        TorchRuntime.Initialize(resolved.Threads);
        var device = TorchRuntime.ResolveDevice(resolved.Device);
        using var data = FashionMnist.Load(resolved.DataDir, new FashionMnistOptions(EvalExamples: resolved.EvalExamples, Device: device));
        return RunToDirectory(config, data, wall.Elapsed.TotalSeconds, started, outDir, cancel, observer, commandLine, machine);
    }

    /// <summary>
    /// the loading `RunToDirectory` on data
    /// already loaded (a trial worker loads the data set once for many trials). <paramref name="data"/> must be the config's
    /// data directory on the config's device; <paramref name="loadSeconds"/> is what this trial spent loading it (0 when reused).
    /// The training itself is the same code, so the trial's numbers are those of a trial that loaded the data itself.
    /// </summary>
    public static TrialResult RunToDirectory(TrialConfig config, FashionMnistData data, double loadSeconds, DateTime started, string outDir,
        CancellationToken cancel = default, ITrialObserver? observer = null, string[]? commandLine = null, MachineProvenance? machine = null)
    {
        var resolved = config.Resolve();
        TorchRuntime.Initialize(resolved.Threads);
        if (Path.GetFullPath(data.Directory) != resolved.DataDir)
            throw new ArgumentException($"the trial trains on {resolved.DataDir}, but the data given was loaded from {data.Directory}.", nameof(data));
        var workload = new FashionMnistWorkload(data);
        var files = new TrialDirectory(config, data, loadSeconds, started, outDir, commandLine, machine);
        TrialResult result;
        try
        {
            result = Run(files.Config, workload, cancel, observer);
        }
        catch (Exception e) when (e is not TrialConfigException)
        {
            files.Crashed(e);
            throw;
        }
        return files.Finished(result);
    }

    /// <summary>
    /// A trial's directory while it runs: trial.json says `running` from the start (once the config has been checked
    /// against the loaded data), and at the end holds the record, with curve.csv beside it, or the crash.
    /// </summary>
    public sealed class TrialDirectory
    {
        readonly Stopwatch _wall = Stopwatch.StartNew();
        readonly TrialRecord _running;
        readonly string _outDir, _trialJson;
        readonly double _loadSeconds;

        /// <summary>The resolved config, its evaluation subset as used on this data.</summary>
        public TrialConfig Config { get; }

        public TrialDirectory(TrialConfig config, FashionMnistData data, double loadSeconds, DateTime started, string outDir,
            string[]? commandLine, MachineProvenance? machine)
        {
            var resolved = config.Resolve();
            // Checked against the loaded data before trial.json says `running`; the record holds the evaluation subset actually used.
            if (resolved.BatchSize > data.Train.Count)
                throw new TrialConfigException($"batch_size {resolved.BatchSize} exceeds the {data.Train.Count} training examples.");
            Config = resolved with { EvalExamples = (int)Math.Min(resolved.EvalExamples, data.Train.Count) };
            var (commit, dirty) = GitInfo.Current;
            _running = new TrialRecord
            {
                Status = TrialStatus.Running, Config = Config, StartedUtc = started, LoadSeconds = loadSeconds,
                GitCommit = commit, GitDirty = dirty, Versions = VersionInfo.Current(), CommandLine = commandLine,
                Machine = machine,
            };
            (_outDir, _trialJson, _loadSeconds) = (outDir, Path.Combine(outDir, "trial.json"), loadSeconds);
            TrialJson.Write(_trialJson, _running);
        }

        /// <summary>Records an unexpected failure during training as status crashed.</summary>
        public void Crashed(Exception e) =>
            TrialJson.Write(_trialJson, _running with { Status = TrialStatus.Crashed, Error = $"{e.GetType().Name}: {e.Message}", WallSeconds = _loadSeconds + _wall.Elapsed.TotalSeconds });

        /// <summary>Writes curve.csv and the final trial.json; returns the result with its full record.</summary>
        public TrialResult Finished(TrialResult result)
        {
            var record = result.Record with
            {
                StartedUtc = _running.StartedUtc, LoadSeconds = _loadSeconds, WallSeconds = _loadSeconds + _wall.Elapsed.TotalSeconds,
                GitCommit = _running.GitCommit, GitDirty = _running.GitDirty, CommandLine = _running.CommandLine, Machine = _running.Machine,
            };
            CurveFile.Write(Path.Combine(_outDir, CurveFile.FileName), result.Curve);
            TrialJson.Write(_trialJson, record);
            return result with { Record = record };
        }
    }

    /// <summary>Runs a trial of <paramref name="workload"/> (its data on the config's device). Writes nothing.</summary>
    public static TrialResult Run(TrialConfig config, IWorkload workload, CancellationToken cancel = default, ITrialObserver? observer = null)
    {
        var resolved = config.Resolve();
        TorchRuntime.Initialize(resolved.Threads);
        var device = TorchRuntime.ResolveDevice(resolved.Device);
        using var session = new TrialSession(resolved, workload, device);
        return session.Run(cancel, observer ?? new NoObserver());
    }

    /// <summary>Runs a Fashion-MNIST trial on data already in memory. Writes nothing.</summary>
    public static TrialResult Run(TrialConfig config, FashionMnistData data, CancellationToken cancel = default, ITrialObserver? observer = null) =>
        Run(config, new FashionMnistWorkload(data), cancel, observer);

    /// <summary>
    /// The model of a trial after <paramref name="steps"/> updates (0 = its initial weights), trained exactly as
    /// <see cref="Run(TrialConfig, IWorkload, CancellationToken, ITrialObserver?)"/> trains it (same seeds, batches and learning rates; no evaluation): a checkpoint for
    /// curvature measurements that matches a trial's trajectory. The caller owns (disposes) the model. The
    /// target is not used and may be null.
    /// </summary>
    public static nn.Module<Tensor, Tensor> TrainModel(TrialConfig config, FashionMnistData data, long steps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        using var replay = new TrialReplay(config, new FashionMnistWorkload(data));
        replay.TrainTo(steps);
        return replay.ReleaseModel();
    }

    /// <summary>
    /// A trial's training replayed step by step without evaluating: the same model, seeds, batches, update rule and
    /// learning-rate schedule (decaying over the config's max_steps) as <see cref="Run(TrialConfig, IWorkload, CancellationToken, ITrialObserver?)"/>, so after S steps its model
    /// is the trial's at step S. The curvature stage measures checkpoints of a trial's trajectory through it.
    /// </summary>
    public sealed class TrialReplay : IDisposable
    {
        readonly TrialSession _session;

        /// <param name="config">The trial's configuration (the target is not used and may be null).</param>
        /// <param name="workload">Its workload.</param>
        public TrialReplay(TrialConfig config, IWorkload workload)
        {
            var resolved = (config with { Target = config.Target ?? new Target(TargetMetric.TrainLoss, 1) }).Resolve();
            TorchRuntime.Initialize(resolved.Threads);
            _session = new TrialSession(resolved, workload, TorchRuntime.ResolveDevice(resolved.Device));
        }

        /// <summary>Updates made so far.</summary>
        public long Step { get; private set; }

        /// <summary>The mini-batch loss of the last update (NaN before the first).</summary>
        public double LastMiniBatchLoss { get; private set; } = double.NaN;

        /// <summary>The model being trained (owned by the replay unless released).</summary>
        public nn.Module<Tensor, Tensor> Model => _session.Model;

        /// <summary>Trains until <paramref name="step"/> updates have been made (a no-op when already there).</summary>
        public void TrainTo(long step, Action<long, double>? progress = null)
        {
            if (step < Step) throw new InvalidOperationException($"cannot go back from step {Step} to {step}");
            _session.Model.train();
            while (Step < step)
            {
                Step++;
                LastMiniBatchLoss = _session.Train(Step, OptimizerFamilies.LearningRateAt(_session.Config.Optimizer, Step));
                progress?.Invoke(Step, LastMiniBatchLoss);
            }
        }

        /// <summary>Hands the model over to the caller, who then disposes it.</summary>
        public nn.Module<Tensor, Tensor> ReleaseModel() => _session.ReleaseModel();

        /// <summary>The diagonal preconditioner the trial's update rule applies now (<see cref="IUpdateRule.DiagonalPreconditioner"/>); null if none.</summary>
        public IReadOnlyList<Tensor>? DiagonalPreconditioner() => _session.Rule.DiagonalPreconditioner();

        /// <summary>
        /// The training loss on the trial's evaluation subset now, evaluated exactly as the trial evaluates it (same
        /// examples, chunks and evaluation weights), so a replayed step gives the trial's recorded value.
        /// </summary>
        public double EvaluateTrainLoss() => _session.EvaluateTrainLoss();

        public void Dispose() => _session.Dispose();
    }

    internal sealed class NoObserver : ITrialObserver;

    /// <summary>One update a trial's <see cref="TrialSession.Course"/> asks for; whoever makes it sets <see cref="Loss"/>.</summary>
    internal sealed class PendingUpdate(long step, double learningRate)
    {
        /// <summary>The update's number (1-based): its batch is the shuffler's batch of this step.</summary>
        public long Step { get; } = step;
        public double LearningRate { get; } = learningRate;
        /// <summary>The mini-batch loss of the update, set by whoever made it.</summary>
        public double Loss { get; set; } = double.NaN;
    }

    /// <summary>The state of one running trial.</summary>
    internal sealed class TrialSession : IDisposable
    {
        readonly TrialConfig _config;
        readonly Target _target;
        readonly nn.Module<Tensor, Tensor> _model;
        readonly IUpdateRule? _rule;
        readonly EpochShuffler _shuffler;
        readonly IWorkload _workload;
        readonly DataSplit _train, _trainEval, _validation;
        readonly SortedDictionary<long, CurvePoint> _curve = new();
        readonly Stopwatch _trainClock = new(), _evalClock = new();
        // Parameter copies are recycled: allocating fresh ones at every grid point costs page faults on each step that takes one.
        readonly Stack<Dictionary<string, Tensor>> _snapshotPool = new();
        int _evaluations;

        /// <param name="config">A resolved config.</param>
        /// <param name="workload">Its workload.</param>
        /// <param name="device">The device of the workload's data.</param>
        /// <param name="stackMember">
        /// Trained by a <see cref="Stacks.TrialStack"/>, not by this session: no update rule is made, the model holds the
        /// trial's weights only after <paramref name="stackMember"/> has copied them in (called before every read of the
        /// weights: evaluations and parameter copies), and <see cref="Course"/>'s caller makes the updates.
        /// </param>
        public TrialSession(TrialConfig config, IWorkload workload, Device device, Action? stackMember = null)
        {
            _config = config;
            _target = config.Target!;
            _workload = workload;
            _train = workload.Train;
            _validation = workload.Validation;
            long evalCount = Math.Min(config.EvalExamples, _train.Count);
            _trainEval = new DataSplit("train_eval", _train.Images.narrow(0, 0, evalCount).DetachFromDisposeScope(),
                _train.Labels.narrow(0, 0, evalCount).DetachFromDisposeScope());
            if (config.BatchSize > _train.Count)
                throw new TrialConfigException($"batch_size {config.BatchSize} exceeds the {_train.Count} training examples.");
            _model = workload.CreateModel(config.Model, Seeds.Derive(config.Seed, Seeds.ModelStream), device);
            _model.train();
            _syncModel = stackMember;
            _rule = stackMember is null ? OptimizerFamilies.Create(config.Optimizer, _model) : null;
            _shuffler = new EpochShuffler(_train.Count, config.BatchSize, Seeds.Derive(config.Seed, Seeds.DataStream), device);
        }

        bool _modelReleased;
        readonly Action? _syncModel;

        public TrialConfig Config => _config;
        public nn.Module<Tensor, Tensor> Model => _model;
        public IUpdateRule Rule => _rule ?? throw new InvalidOperationException("a stack member has no update rule of its own");

        /// <summary>Hands the model over to the caller, who then disposes it.</summary>
        public nn.Module<Tensor, Tensor> ReleaseModel()
        {
            _modelReleased = true;
            return _model;
        }

        public void Dispose()
        {
            _shuffler.Dispose();
            _rule?.Dispose();
            if (!_modelReleased) _model.Dispose();
            _trainEval.Images.Dispose();
            _trainEval.Labels.Dispose();
            while (_snapshotPool.TryPop(out var state)) DisposeState(state);
        }

        DataSplit TargetSplit => _target.Metric == TargetMetric.TrainLoss ? _trainEval : _validation;

        /// <summary>
        /// A training-loss target has a free proxy, the mini-batch losses, so its trial evaluates only the training
        /// subset: densely once the proxy nears the target, and on a sparse safety-net schedule before (the proxy
        /// only decides when to look; the reported step always comes from evaluations). The validation split is not
        /// evaluated at all then: at short trials two validation passes alone cost more than the evaluation budget.
        /// </summary>
        bool HasLossProxy => _target.Metric == TargetMetric.TrainLoss;

        /// <summary>Trains the trial to its end with its own update rule.</summary>
        public TrialResult Run(CancellationToken cancel, ITrialObserver observer)
        {
            using var course = Course(cancel, observer);
            while (course.MoveNext())
            {
                var update = course.Current;
                _trainClock.Start();
                update.Loss = Train(update.Step, update.LearningRate);
                _trainClock.Stop();
            }
            return Result!;
        }

        /// <summary>The outcome once <see cref="Course"/> has ended.</summary>
        public TrialResult? Result { get; private set; }

        /// <summary>Seconds spent training so far: a stack adds each member's share of its stacked updates.</summary>
        public void AddTrainSeconds(TimeSpan share) => _trainSeconds += share;
        TimeSpan _trainSeconds;
        double TrainSeconds => (_trainClock.Elapsed + _trainSeconds).TotalSeconds;

        /// <summary>
        /// The trial as a sequence of updates: evaluates, checks divergence and the target, and before each update yields
        /// it (step and learning rate) for the caller to make, who sets its mini-batch loss before moving on. When it
        /// ends, <see cref="Result"/> holds the outcome. <see cref="Run"/> makes the updates with the trial's own rule;
        /// a <see cref="Stacks.TrialStack"/> makes those of many trials at once.
        /// </summary>
        public IEnumerator<PendingUpdate> Course(CancellationToken cancel, ITrialObserver observer)
        {
            long paramBytes = _model.state_dict().Values.Sum(t => t.numel() * t.element_size());
            int maxSnapshots = (int)Math.Clamp(SnapshotMemoryBytes / Math.Max(1, paramBytes), 0, 10_000);
            var schedule = EvaluationSchedule.ForCost(_config.MaxSteps, _config.BatchSize, TargetSplit.Count, maxSnapshots,
                HasLossProxy ? EvaluationSchedule.SafetyNetShare : EvaluationSchedule.EvalShare);
            var snapshots = new List<(long Step, Dictionary<string, Tensor> State)>();
            try
            {

            long step = 0, examples = 0;
            _curve[0] = new CurvePoint(0, 0, 0, null, null, null, null);
            var initial = HasLossProxy ? new Metrics(EvaluateTarget(0, observer), double.NaN, double.NaN) : EvaluateAll(0, observer);
            double initialLoss = initial.TrainLoss;
            TrialStatus? status = null;
            string? divergence = null;
            long? reached = null, lowerBound = null;
            Metrics? final = initial;
            // The looser targets (loosest first) and the trial's own (last). Each keeps the schedule it would have alone —
            // its own coarse evaluations and its own interval of parameter copies — and sees an evaluation made for another
            // only through the copy kept at that grid point, so each crossing is the step a trial to that target alone
            // reports, and the trial's own steps-to-target do not change when looser targets are added.
            var levels = (_config.LooserTargets ?? []).Select(t => new Target(_target.Metric, t)).Append(_target)
                .Select(t => new Level(t, schedule.NextCoarse(0))).ToArray();
            var own = levels[^1];
            var coarse = new List<Level>(levels.Length);
            var evaluatedAt = new Dictionary<long, double> { [0] = TargetValue(initial) };
            if (!double.IsFinite(initialLoss)) (status, divergence) = (TrialStatus.Diverged, "the initial training loss is not finite");
            else
            {
                foreach (var level in levels[..^1].Where(l => l.Target.IsMetBy(TargetValue(initial)))) level.Close((0, null));
                if (_target.IsMetBy(TargetValue(initial))) (status, reached) = (TrialStatus.Reached, 0);
            }

            double averageLoss = double.NaN;
            long nextGrid = EvaluationSchedule.NextGridPoint(0);
            while (status is null)
            {
                if (cancel.IsCancellationRequested) { status = TrialStatus.Interrupted; final = null; break; }
                step++;
                double lr = OptimizerFamilies.LearningRateAt(_config.Optimizer, step);
                if (!(Math.Abs(lr) <= float.MaxValue))
                {
                    // The update cannot be represented in the parameters' float32: the trial has diverged, not crashed.
                    (status, divergence, final) = (TrialStatus.Diverged, $"learning rate {lr:G4} at step {step} overflows float32 (the parameters' type)", null);
                    break;
                }
                var update = new PendingUpdate(step, lr);
                yield return update;
                double loss = update.Loss;
                examples += _config.BatchSize;
                observer.Stepped(step, loss);
                averageLoss = double.IsNaN(averageLoss) ? loss : (1 - LossAverageWeight) * averageLoss + LossAverageWeight * loss;

                bool isGrid = step == nextGrid;
                // The mini-batch loss average is a free estimate of the training loss: once it comes near a target, that
                // target evaluates at every grid point (its crossing is then bracketed to one grid interval at little cost).
                coarse.Clear(); // reused: this runs at every step
                foreach (var l in levels)
                    if (l.Open && (step == l.NextCoarse || (isGrid && HasLossProxy && averageLoss < l.Target.Threshold * (1 + LossProxyMargin))))
                        coarse.Add(l);
                if (isGrid) nextGrid = EvaluationSchedule.NextGridPoint(step);
                if (isGrid || coarse.Count > 0 || (_config.LogEvery > 0 && step % _config.LogEvery == 0) || !double.IsFinite(loss))
                    _curve[step] = new CurvePoint(step, examples, TrainSeconds, loss, null, null, null, lr);

                if (!double.IsFinite(loss))
                {
                    (status, divergence, final) = (TrialStatus.Diverged, $"mini-batch loss {loss} at step {step}", null);
                    if (!_curve.ContainsKey(step)) _curve[step] = new CurvePoint(step, examples, TrainSeconds, loss, null, null, null, lr);
                    break;
                }
                if (averageLoss > _config.DivergenceFactor * initialLoss)
                {
                    (status, divergence, final) = (TrialStatus.Diverged,
                        $"mini-batch loss average {averageLoss:G4} exceeds {_config.DivergenceFactor} × the initial loss {initialLoss:G4} at step {step}", null);
                    _curve[step] = new CurvePoint(step, examples, TrainSeconds, loss, null, null, null, lr);
                    break;
                }

                if (coarse.Count > 0)
                {
                    double value = evaluatedAt[step] = EvaluateTarget(step, observer);
                    if (!double.IsFinite(value))
                    {
                        (status, divergence, final) = (TrialStatus.Diverged, $"evaluated {_target.Metric} is {value} at step {step}", null);
                        break;
                    }
                    // The trial ends when its own target is met at one of its coarse evaluations, or at the last step of its
                    // budget; then every target still open searches its interval (the loss may have dipped below it since).
                    bool ends = coarse.Contains(own) && (_target.IsMetBy(value) || step >= _config.MaxSteps);
                    var searching = ends ? levels.Where(l => l.Open).ToList() : coarse.Where(l => l.Target.IsMetBy(value)).ToList();
                    if (searching.Count > 0)
                    {
                        if (ends) final = HasLossProxy ? new Metrics(value, double.NaN, double.NaN) : EvaluateAll(step, observer);
                        using var live = ends ? null : new LiveWeights(this);
                        foreach (var level in searching)
                        {
                            var found = FindFirstMet(level.LastCoarse, step, value, level.Target,
                                snapshots.Where(c => c.Step > level.LastCoarse).ToList(), evaluatedAt, observer);
                            if (level != own) level.Close(found is { } f ? (f.Reached, f.LowerBound) : null);
                            else if (found is { } first) (status, reached, lowerBound) = (TrialStatus.Reached, first.Reached, first.LowerBound);
                            else status = TrialStatus.BudgetExhausted;
                        }
                    }
                    foreach (var level in coarse.Where(l => l.Open)) level.Advance(step, schedule);
                    // Copies no open target's interval holds any more go back to the pool.
                    long keepAfter = levels.Where(l => l.Open).Select(l => l.LastCoarse).DefaultIfEmpty(step).Min();
                    foreach (var (_, state) in snapshots.Where(c => c.Step <= keepAfter)) _snapshotPool.Push(state);
                    snapshots.RemoveAll(c => c.Step <= keepAfter);
                }
                // A grid point inside some open target's interval keeps a copy (a step evaluated for another target too).
                if (status is null && isGrid && levels.Any(l => l.Open && l.LastCoarse < step))
                    snapshots.Add((step, Snapshot()));
            }

            var record = new TrialRecord
            {
                Status = status.Value,
                StepsToTarget = reached,
                StepsLowerBound = lowerBound,
                LooserTargets = levels.Length == 1 ? null
                    : levels[..^1].Select(l => new TargetCrossing(l.Target.Threshold, l.Crossing?.Reached, l.Crossing?.LowerBound)).ToList(),
                StepsRun = step,
                ExamplesSeen = examples,
                InitialLoss = initialLoss,
                FinalLoss = final?.TrainLoss,
                FinalValidationLoss = final is { ValidationLoss: var vl } && double.IsFinite(vl) ? vl : null,
                FinalValidationError = final is { ValidationError: var ve } && double.IsFinite(ve) ? ve : null,
                DivergenceReason = divergence,
                Config = _config,
                ParameterCount = _model.parameters().Sum(p => p.numel()),
                TrainSeconds = TrainSeconds,
                EvalSeconds = _evalClock.Elapsed.TotalSeconds,
                Evaluations = _evaluations,
                Versions = VersionInfo.Current(),
            };
            Result = new TrialResult(record, _curve.Values.ToList());
            }
            finally
            {
                foreach (var (_, state) in snapshots) _snapshotPool.Push(state);
            }
        }

        /// <summary>
        /// The coarse evaluation at <paramref name="previous"/> missed <paramref name="target"/>; search the parameter copies
        /// kept at the grid points after it for the first one that meets it. When the coarse step <paramref name="hit"/>
        /// (evaluated at <paramref name="hitValue"/>) met the target the search always succeeds; otherwise <paramref name="hit"/>
        /// is the last step of the trial, which missed, and the search looks for a dip below the target before it.
        /// Returns (first step meeting the target, largest evaluated step below it not meeting it), or null.
        /// </summary>
        /// <remarks>
        /// An exponential (galloping) search from the left, then a bisection inside the bracket it found, rather than a
        /// bisection over the whole interval: which copies it evaluates depends only on the trajectory up to the bracket
        /// it lands in, not on where the interval ends. A trial capped early (a sweep caps a trial at its study's best
        /// steps so far) then ends its last interval at the cap but probes the same copies as the uncapped trial whose
        /// interval runs on, and both report the same first crossing even when the loss dips below the target, rises
        /// again and falls back within one interval (a plain bisection lands on different crossings there). It costs
        /// at most about twice a bisection's evaluations, and fewer when the crossing lies early in the interval.
        /// </remarks>
        (long Reached, long LowerBound)? FindFirstMet(long previous, long hit, double hitValue, Target target,
            List<(long Step, Dictionary<string, Tensor> State)> snapshots, Dictionary<long, double> evaluatedAt, ITrialObserver observer)
        {
            int n = snapshots.Count; // index n stands for the coarse step itself
            bool Meets(int i)
            {
                if (i >= n) return target.IsMetBy(hitValue);
                // A copy evaluated before (for another target, or live at an evaluation made for one) is not evaluated again:
                // the same weights give the same value.
                if (!evaluatedAt.TryGetValue(snapshots[i].Step, out double value))
                {
                    Restore(snapshots[i].State);
                    evaluatedAt[snapshots[i].Step] = value = EvaluateTarget(snapshots[i].Step, observer, restored: true);
                }
                return target.IsMetBy(value);
            }
            long StepAt(int i) => i >= n ? hit : snapshots[i].Step;

            // Gallop: probe 0, 1, 3, 7, ... until a copy meets; lo is then the last probe known to miss (or -1).
            int lo = -1, hi = 0;
            while (!Meets(hi))
            {
                if (hi >= n) return null;
                (lo, hi) = (hi, Math.Min(n, 2 * hi + 1));
            }
            // Bisect (lo, hi]: lo misses (or is the coarse step before the interval), hi meets.
            while (hi - lo > 1)
            {
                int mid = lo + (hi - lo) / 2;
                if (Meets(mid)) hi = mid; else lo = mid;
            }
            return (StepAt(hi), lo < 0 ? previous : StepAt(lo));
        }

        readonly record struct Metrics(double TrainLoss, double ValidationLoss, double ValidationError);

        /// <summary>
        /// One target a trial watches: the step its open interval starts at (its last coarse evaluation that missed), its
        /// next scheduled coarse evaluation, and once closed its first crossing (null: not met before the trial ended).
        /// </summary>
        sealed class Level(Target target, long nextCoarse)
        {
            public Target Target { get; } = target;
            public long LastCoarse { get; private set; }
            public long NextCoarse { get; private set; } = nextCoarse;
            public bool Open { get; private set; } = true;
            public (long Reached, long? LowerBound)? Crossing { get; private set; }

            public void Advance(long coarse, EvaluationSchedule schedule) => (LastCoarse, NextCoarse) = (coarse, schedule.NextCoarse(coarse));

            public void Close((long Reached, long? LowerBound)? crossing) => (Open, Crossing) = (false, crossing);
        }

        double TargetValue(Metrics m) => _target.Metric == TargetMetric.TrainLoss ? m.TrainLoss : m.ValidationError;

        /// <summary>
        /// Evaluates only the split the target is stated on and records it in the curve row. With
        /// <paramref name="restored"/> the model holds a restored copy of evaluation weights (see <see cref="Snapshot"/>).
        /// </summary>
        double EvaluateTarget(long step, ITrialObserver observer, bool restored = false)
        {
            var (loss, error) = Evaluate(TargetSplit, restored);
            var row = _curve[step];
            row = _target.Metric == TargetMetric.TrainLoss ? row with { TrainLoss = loss } : row with { ValidationLoss = loss, ValidationError = error };
            _curve[step] = row;
            observer.Evaluated(row);
            return _target.Metric == TargetMetric.TrainLoss ? loss : error;
        }

        /// <summary>Evaluates whichever of the training-loss subset and the validation split the row at <paramref name="step"/> lacks (initial and final rows).</summary>
        Metrics EvaluateAll(long step, ITrialObserver observer)
        {
            var row = _curve[step];
            double trainLoss = row.TrainLoss ?? Evaluate(_trainEval).Loss;
            var (validationLoss, validationError) = row is { ValidationLoss: { } vl, ValidationError: { } ve } ? (vl, ve) : Evaluate(_validation);
            row = row with { TrainLoss = trainLoss, ValidationLoss = validationLoss, ValidationError = validationError };
            _curve[step] = row;
            observer.Evaluated(row);
            return new Metrics(trainLoss, validationLoss, validationError);
        }

        /// <summary>The training loss on the evaluation subset (for a replay; not recorded in the curve).</summary>
        public double EvaluateTrainLoss() => Evaluate(_trainEval).Loss;

        (double Loss, double Error) Evaluate(DataSplit split, bool restored = false)
        {
            if (!restored) _syncModel?.Invoke();
            _evalClock.Start();
            _evaluations++;
            using var weights = restored ? null : _rule?.UseEvaluationWeights();
            _model.eval();
            double lossSum = 0;
            long? correct = 0;
            for (long start = 0; start < split.Count; start += EvalChunk)
            {
                var (l, c) = RunBatch(split, start, (int)Math.Min(EvalChunk, split.Count - start));
                lossSum += l;
                correct += c;
            }
            _model.train();
            _evalClock.Stop();
            // A workload without a classification error (regression) reports NaN there.
            return (lossSum / split.Count, correct is { } n ? 1.0 - (double)n / split.Count : double.NaN);
        }

        /// <summary>The indices of step <paramref name="trainStep"/>'s shuffled batch (a view: dispose it).</summary>
        public Tensor BatchIndices(long trainStep) => _shuffler.BatchIndices(trainStep);

        /// <summary>One update on step <paramref name="trainStep"/>'s shuffled batch; returns its mean loss. Every tensor made for it dies here.</summary>
        public double Train(long trainStep, double learningRate)
        {
            using var scope = NewDisposeScope();
            var indices = _shuffler.BatchIndices(trainStep);
            var x = _train.Images.index_select(0, indices);
            var y = _train.Labels.index_select(0, indices);
            return Rule.Step(() => _workload.Loss(_model.call(x), y), learningRate).item<float>();
        }

        /// <summary>A forward pass without gradients over split[start, start+count): the summed loss and the number of correct predictions.</summary>
        (double LossSum, long? Correct) RunBatch(DataSplit split, long start, int count)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var images = split.Images.narrow(0, start, count);
            var labels = split.Labels.narrow(0, start, count);
            var (sum, hits) = _workload.Score(_model.call(images), labels);
            return (sum.item<float>(), hits?.item<long>());
        }

        /// <summary>A copy of the weights the trial is evaluated with (an EMA's averaged iterate, else the live weights).</summary>
        Dictionary<string, Tensor> Snapshot()
        {
            _syncModel?.Invoke();
            using var noGrad = no_grad();
            using var weights = _rule?.UseEvaluationWeights();
            if (!_snapshotPool.TryPop(out var state))
                return _model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone().DetachFromDisposeScope());
            foreach (var (name, tensor) in _model.state_dict()) state[name].copy_(tensor);
            return state;
        }

        /// <summary>
        /// The training weights (parameters and buffers as they are, not an evaluation view) held while a search restores
        /// copies into the model mid-trial, and put back when disposed, so that training goes on from where it was.
        /// </summary>
        sealed class LiveWeights : IDisposable
        {
            readonly TrialSession _session;
            readonly Dictionary<string, Tensor>? _state;

            public LiveWeights(TrialSession session)
            {
                _session = session;
                // A stack member's model is only a view its stack copies the member's weights into before each read.
                if (session._syncModel is not null) return;
                using var noGrad = no_grad();
                if (!session._snapshotPool.TryPop(out _state))
                    _state = session._model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone().DetachFromDisposeScope());
                else foreach (var (name, tensor) in session._model.state_dict()) _state[name].copy_(tensor);
            }

            public void Dispose()
            {
                if (_state is null) return;
                _session.Restore(_state);
                _session._snapshotPool.Push(_state);
            }
        }

        void Restore(Dictionary<string, Tensor> state)
        {
            using var noGrad = no_grad();
            foreach (var (name, tensor) in _model.state_dict()) tensor.copy_(state[name]);
        }

        static void DisposeState(Dictionary<string, Tensor> state)
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }
}
