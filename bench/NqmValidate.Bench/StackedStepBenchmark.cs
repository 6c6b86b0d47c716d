using System.Diagnostics;
using System.Globalization;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Stacks;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Workloads;

namespace NqmValidate.Bench;

/// <summary>
/// stacked-step: model-steps/s of K trials trained as one stack (TrialStack) against the same K trials trained one after
/// another alone (TrialRunner.Run, the single-trial loop), both the full trial loop with its evaluations, the quick and
/// full experiments' MLP (784-256-256-10, or --hidden), one thread, in a trial process's environment, SGD and Adam; alternating, medians of the repeats.
/// Model-steps/s = (trials × steps each) / wall seconds. Args: [--repeats R] [--stack K,K,…] [--only 16|128] [--hidden 256,256]
/// </summary>
public sealed class StackedStepBenchmark : IBenchmark
{
    public string Name => "stacked-step";
    public string Description => "model-steps/s of K MLP trials in one stack vs the same trials alone (B = 16, 128; SGD, Adam)";

    public int Run(string[] args)
    {
        if (BenchSupport.InTrialEnvironment(Name, args) is { } code) return code;
        int repeats = int.Parse(BenchSupport.Arg(args, "--repeats") ?? "3", CultureInfo.InvariantCulture);
        int[] sizes = (BenchSupport.Arg(args, "--stack") ?? "4,8").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        string? only = BenchSupport.Arg(args, "--only");
        int[] hidden = (BenchSupport.Arg(args, "--hidden") ?? "256,256").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        TorchRuntime.Initialize(1);
        using var data = FashionMnist.Load(null);
        var workload = new FashionMnistWorkload(data);
        Console.WriteLine($"stacked-step: MLP 784-{string.Join("-", hidden)}-10, 1 thread, {repeats} repeats alternating, medians; load average {BenchSupport.LoadAverage()}");
        Console.WriteLine($"{"optimizer",-9} {"B",4} {"K",3} {"steps",6} {"alone steps/s",14} {"stacked model-steps/s",22} {"ratio",6}  (min..max)");
        foreach (int batch in new[] { 16, 128 }.Where(b => only is null || only == b.ToString(CultureInfo.InvariantCulture)))
        foreach (string optimizer in new[] { "sgd", "adam" })
        foreach (int k in sizes)
        {
            int steps = batch == 16 ? 600 : 200;
            var configs = Enumerable.Range(0, k).Select(i => Config(optimizer, batch, steps, seed: i + 1, lr: 0.01 * (1 + 0.1 * i), hidden)).ToList();
            double Alone() => Measure.Seconds(() => { foreach (var c in configs) TrialRunner.Run(c, workload); });
            double Stacked() => Measure.Seconds(() =>
            {
                foreach (var o in TrialStack.RunAll(configs, workload, k))
                    if (o.Error is not null) throw o.Error;
            });
            Alone(); Stacked(); // warm-up
            var alone = new List<double>(); var stacked = new List<double>(); var pairs = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                double a = Alone(), s = Stacked();
                alone.Add(a); stacked.Add(s); pairs.Add(a / s);
            }
            double aloneRate = k * steps / Measure.Median(alone), stackedRate = k * steps / Measure.Median(stacked);
            Console.WriteLine(FormattableString.Invariant(
                $"{optimizer,-9} {batch,4} {k,3} {steps,6} {aloneRate,14:F0} {stackedRate,22:F0} {stackedRate / aloneRate,6:F2}  ({pairs.Min():F2}..{pairs.Max():F2})"));
        }
        Console.WriteLine($"load average at the end {BenchSupport.LoadAverage()}");
        return 0;
    }

    static TrialConfig Config(string optimizer, int batch, int steps, long seed, double lr, int[] hidden) => new()
    {
        Model = new ModelSpec("mlp", hidden),
        Optimizer = optimizer == "adam" ? new OptimizerSpec("adam", lr / 10) : new OptimizerSpec("sgd", lr),
        BatchSize = batch,
        // Out of reach: every trial trains its budget, with the trial loop's usual sparse evaluations.
        Target = new Target(TargetMetric.TrainLoss, 1e-6),
        MaxSteps = steps, Seed = seed, EvalExamples = 1000, Threads = 1,
    };
}
