using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Trials;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm train`: one trial to a target. Configuration = defaults → --config FILE → flags. Exit codes: 0 for any
/// finished outcome (reached, budget_exhausted, diverged), 2 for bad input, 130 when interrupted, 1 on a crash.
/// </summary>
public static class TrainCommand
{
    static readonly Option<string?> Config = new("--config") { Description = "Trial configuration JSON (snake_case keys as in trial.json's \"config\"); flags override it." };
    static readonly Option<string?> Model = new("--model") { Description = $"Model: {string.Join(", ", ModelRegistry.Names)} (default mlp)." };
    static readonly Option<string?> HiddenWidths = new("--hidden-widths") { Description = "MLP hidden widths, comma-separated (default 256,256)." };
    static readonly Option<double?> WidthMultiplier = new("--width-multiplier") { Description = "CNN/ResNet width multiplier (default 1)." };
    static readonly Option<int?> BlocksPerStage = new("--blocks-per-stage") { Description = "ResNet basic blocks per stage (default 1 = ResNet-8)." };
    static readonly Option<string?> Optimizer = new("--optimizer") { Description = $"Optimizer: {string.Join(", ", OptimizerFamilies.Names)} (default sgd)." };
    static readonly Option<double?> LearningRate = new("--learning-rate") { Description = "Initial learning rate (default 0.1)." };
    static readonly Option<double?> Momentum = new("--momentum") { Description = "Momentum μ for momentum/nesterov (default 0.9)." };
    static readonly Option<double?> Beta1 = new("--beta1") { Description = "Adam β1 (default 0.9)." };
    static readonly Option<double?> Beta2 = new("--beta2") { Description = "Adam β2 (default 0.999)." };
    static readonly Option<double?> Epsilon = new("--epsilon") { Description = "Adam ε (default 1e-8)." };
    static readonly Option<string[]> Hyper = new("--hyperparameter") { Description = "Any hyperparameter of the optimizer's family as NAME=VALUE (e.g. ema_decay=0.95); repeatable." };
    static readonly Option<string?> LrSchedule = new("--lr-schedule") { Description = "constant (default), linear decay, or piecewise (--piece-steps, --lr-factors)." };
    static readonly Option<long?> PieceSteps = new("--piece-steps") { Description = "Piecewise schedule: steps per piece." };
    static readonly Option<string?> LrFactors = new("--lr-factors") { Description = "Piecewise schedule: the learning rate's multiplier in each piece, comma-separated (the last holds after the last piece)." };
    static readonly Option<long?> DecaySteps = new("--decay-steps") { Description = "Linear decay length in steps (default max-steps)." };
    static readonly Option<double?> FinalLrFraction = new("--final-lr-fraction") { Description = "Learning rate at the end of the linear decay, as a fraction of the initial one (default 0.01)." };
    static readonly Option<int?> BatchSize = new("--batch-size") { Description = "Mini-batch size (default 128)." };
    static readonly Option<double?> TargetLoss = new("--target-loss") { Description = "Target: training cross-entropy on the evaluation subset below this." };
    static readonly Option<double?> TargetError = new("--target-error") { Description = "Target: validation error below this fraction." };
    static readonly Option<long?> MaxSteps = new("--max-steps") { Description = "Step budget (default 2000)." };
    static readonly Option<long?> Seed = new("--seed") { Description = "Trial seed: initial weights and data order (default 0)." };
    static readonly Option<int?> Threads = new("--threads") { Description = "Intra-op threads (default 1). Results repeat exactly at the same thread count." };
    static readonly Option<string?> Device = new("--device") { Description = "cpu (default) or cuda." };
    static readonly Option<string?> DataDir = new("--data-dir") { Description = $"Fashion-MNIST IDX directory (default $NQM_DATA_DIR or {FashionMnist.DefaultDirectory})." };
    static readonly Option<int?> EvalExamples = new("--eval-examples") { Description = "Size of the fixed training subset the training loss is measured on (default 2000)." };
    static readonly Option<double?> DivergenceFactor = new("--divergence-factor") { Description = "Diverged when the mini-batch loss average exceeds this multiple of the initial loss (default 3)." };
    static readonly Option<long?> LogEvery = new("--log-every") { Description = "Also log a curve row every N steps (default 100, 0 = only the schedule's steps)." };
    static readonly Option<string> Out = new("--out") { Description = "Trial directory: trial.json and curve.csv are written there.", Required = true };
    static readonly Option<bool> Quiet = new("--quiet") { Description = "No progress lines on stderr." };

    public static Command Create()
    {
        var command = new Command("train", "Run one trial: train a model from a seed until it reaches a target, exhausts its step budget or diverges.");
        foreach (var o in new Option[] { Config, Model, HiddenWidths, WidthMultiplier, BlocksPerStage, Optimizer, LearningRate, Momentum, Beta1, Beta2,
                     Epsilon, Hyper, LrSchedule, DecaySteps, FinalLrFraction, PieceSteps, LrFactors, BatchSize, TargetLoss, TargetError, MaxSteps, Seed, Threads, Device,
                     DataDir, EvalExamples, DivergenceFactor, LogEvery, Out, Quiet })
            command.Options.Add(o);
        command.SetAction(Run);
        return command;
    }

    /// <summary>Maps the parsed flags onto a configuration (defaults → config file → flags). Throws TrialConfigException.</summary>
    public static TrialConfig ToConfig(ParseResult p)
    {
        var c = p.GetValue(Config) is { } path ? TrialConfig.Load(path) : new TrialConfig();
        if (p.GetValue(TargetLoss) is not null && p.GetValue(TargetError) is not null)
            throw new TrialConfigException("Give either --target-loss or --target-error, not both.");
        var m = c.Model;
        m = m with
        {
            Name = p.GetValue(Model) ?? m.Name,
            HiddenWidths = p.GetValue(HiddenWidths) is { } h ? ParseWidths(h) : m.HiddenWidths,
            WidthMultiplier = p.GetValue(WidthMultiplier) ?? m.WidthMultiplier,
            BlocksPerStage = p.GetValue(BlocksPerStage) ?? m.BlocksPerStage,
        };
        var o = c.Optimizer;
        o = o with
        {
            Name = p.GetValue(Optimizer) ?? o.Name,
            LearningRate = p.GetValue(LearningRate) ?? o.LearningRate,
            Schedule = p.GetValue(LrSchedule) ?? o.Schedule,
            DecaySteps = p.GetValue(DecaySteps) ?? o.DecaySteps,
            FinalFraction = p.GetValue(FinalLrFraction) ?? o.FinalFraction,
            PieceSteps = p.GetValue(PieceSteps) ?? o.PieceSteps,
            Factors = p.GetValue(LrFactors) is { } factors ? [.. ParseFactors(factors)] : o.Factors,
        };
        foreach (var (option, name) in new[] { (Momentum, "momentum"), (Beta1, "beta1"), (Beta2, "beta2"), (Epsilon, "epsilon") })
            if (p.GetValue(option) is { } value) o = o.With(name, value);
        foreach (var assignment in p.GetValue(Hyper) ?? [])
        {
            var parts = assignment.Split('=', 2, StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || parts[0].Length == 0
                || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                throw new TrialConfigException($"--hyperparameter: '{assignment}' is not NAME=VALUE with a number (e.g. ema_decay=0.95).");
            o = o.With(parts[0], v);
        }
        var target = p.GetValue(TargetLoss) is { } tl ? new Target(TargetMetric.TrainLoss, tl)
            : p.GetValue(TargetError) is { } te ? new Target(TargetMetric.ValidationError, te)
            : c.Target;
        return c with
        {
            Model = m,
            Optimizer = o,
            Target = target,
            BatchSize = p.GetValue(BatchSize) ?? c.BatchSize,
            MaxSteps = p.GetValue(MaxSteps) ?? c.MaxSteps,
            Seed = p.GetValue(Seed) ?? c.Seed,
            Threads = p.GetValue(Threads) ?? c.Threads,
            Device = p.GetValue(Device) ?? c.Device,
            DataDir = p.GetValue(DataDir) ?? c.DataDir,
            EvalExamples = p.GetValue(EvalExamples) ?? c.EvalExamples,
            DivergenceFactor = p.GetValue(DivergenceFactor) ?? c.DivergenceFactor,
            LogEvery = p.GetValue(LogEvery) ?? c.LogEvery,
        };
    }

    static double[] ParseFactors(string text) =>
        text.Split(',', StringSplitOptions.TrimEntries).Select(part =>
            double.TryParse(part, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v)
                ? v : throw new TrialConfigException($"--lr-factors: '{part}' is not a number (expected e.g. 1,0.5,0.25).")).ToArray();

    static int[] ParseWidths(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var widths = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out widths[i]) || widths[i] < 1)
                throw new TrialConfigException($"--hidden-widths: '{parts[i]}' is not a positive integer (expected e.g. 256,256).");
        return widths;
    }

    static int Run(ParseResult parse)
    {
        string outDir = parse.GetValue(Out)!;
        bool quiet = parse.GetValue(Quiet);
        using var cancel = new CancellationTokenSource();
        // Ctrl-C and SIGTERM stop the trial between two steps; it then writes its files with status interrupted.
        void Stop(PosixSignalContext context) { context.Cancel = true; cancel.Cancel(); }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        try
        {
            var config = ToConfig(parse);
            if (config.Threads > Environment.ProcessorCount)
                Console.Error.WriteLine($"note: --threads {config.Threads} on {Environment.ProcessorCount} cores: oversubscribed threads make training much slower.");
            // Set the trial's threads first, so that the machine record names the thread count the trial runs with.
            TorchRuntime.Initialize(config.Resolve().Threads);
            var result = TrialRunner.RunToDirectory(config, outDir, cancel.Token, quiet ? null : new ProgressLines(),
                Environment.GetCommandLineArgs(), MachineProvenance.Current());
            Console.WriteLine(Summary(result.Record, outDir));
            return result.Record.Status == TrialStatus.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        }
        catch (Exception e) when (IsBadInput(e))
        {
            Console.Error.WriteLine($"nqm train: {e.Message}");
            return ExitCodes.BadInput;
        }
        // Anything else is a crash: NqmApp prints one line and writes the trace to a log in --out.
    }

    /// <summary>What a trial rejects as bad input (exit 2) rather than crashes on (shared with `nqm worker`).</summary>
    internal static bool IsBadInput(Exception e) =>
        e is TrialConfigException or DataSetException or TorchLoadException or ArgumentException or ModelSpecException or OptimizerSpecException;

    /// <summary>The one line a finished trial prints.</summary>
    internal static string Summary(TrialRecord r, string outDir)
    {
        string status = r.Status switch
        {
            TrialStatus.Reached => $"reached {r.Config.Target} at step {r.StepsToTarget} (steps_to_target; first met after step {r.StepsLowerBound})",
            TrialStatus.BudgetExhausted => $"budget_exhausted: {r.Config.Target} not reached in {r.StepsRun} steps",
            TrialStatus.Diverged => $"diverged: {r.DivergenceReason}",
            _ => $"{r.Status.ToString().ToLowerInvariant()} after {r.StepsRun} steps",
        };
        string final = r.FinalLoss is { } fl
            ? $"; final train loss {fl:F4}{(r.FinalValidationError is { } fve ? $", validation error {fve:F4}" : "")} at step {r.StepsRun}" : "";
        return FormattableString.Invariant(
            $"{status}{final}; {r.WallSeconds:F1} s wall (train {r.TrainSeconds:F1} s, eval {r.EvalSeconds:F1} s, {r.Evaluations} evaluations) -> {outDir}");
    }

    /// <summary>Plain progress lines on stderr, one per evaluation at most every two seconds.</summary>
    sealed class ProgressLines : ITrialObserver
    {
        readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        double _last = double.NegativeInfinity;

        public void Evaluated(CurvePoint p)
        {
            double now = _clock.Elapsed.TotalSeconds;
            if (now - _last < 2 && p.Step != 0) return;
            _last = now;
            string metrics = string.Join(", ", new[]
            {
                p.TrainLoss is { } tl ? $"train loss {tl:F4}" : null,
                p.ValidationError is { } ve ? $"validation error {ve:F4}" : null,
            }.Where(s => s is not null));
            Console.Error.WriteLine(FormattableString.Invariant($"  step {p.Step,7}: {metrics} ({now:F1} s)"));
        }
    }
}
