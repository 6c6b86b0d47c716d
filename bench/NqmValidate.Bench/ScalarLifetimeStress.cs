using System.Globalization;
using System.Runtime.InteropServices;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// scalar-lifetime: a stress check (not a benchmark) for the use-after-free of TorchSharp's <c>Scalar</c>
/// (docs/design/torchsharp.md §2, "A temporary Scalar can be freed while LibTorch reads it"). Trains a tiny
/// model with each update rule on several threads while one thread forces <c>GC.Collect</c> and
/// <c>GC.WaitForPendingFinalizers</c> in a tight loop and spinning threads keep the cores oversubscribed (the
/// race needs the stepping thread to be preempted inside the native call), and counts the steps that fail with
/// <see cref="ExternalException"/> (LibTorch's "Expected false to be true" from <c>c10::Scalar::toFloat</c>).
/// <c>torch-sgd</c> and <c>torch-adam</c> step TorchSharp's own optimizers, the unprotected baseline; the others
/// are the project's update rules (<see cref="OptimizerFamilies"/>). Exit code 1 when a project rule failed.
/// Args: [--seconds S (per rule, default 20)] [--trainers N (default 4)] [--spinners K (default 2)]
///       [--rules torch-sgd,torch-adam,sgd,momentum,nesterov,adam,ema]
/// </summary>
public sealed class ScalarLifetimeStress : IBenchmark
{
    public string Name => "scalar-lifetime";
    public string Description => "stress check: steps failing with a freed c10::Scalar under forced GC (TorchSharp optimizers vs the project's rules)";

    static readonly string[] AllRules = ["torch-sgd", "torch-adam", "sgd", "momentum", "nesterov", "adam", "ema"];

    public int Run(string[] args)
    {
        double seconds = double.Parse(BenchSupport.Arg(args, "--seconds") ?? "20", CultureInfo.InvariantCulture);
        int trainers = int.Parse(BenchSupport.Arg(args, "--trainers") ?? "4", CultureInfo.InvariantCulture);
        int spinners = int.Parse(BenchSupport.Arg(args, "--spinners") ?? "2", CultureInfo.InvariantCulture);
        var rules = BenchSupport.Arg(args, "--rules")?.Split(',') ?? AllRules;
        TorchRuntime.Initialize(1);
        Console.WriteLine(FormattableString.Invariant(
            $"scalar-lifetime: {seconds:F0} s per rule, {trainers} training threads, 1 GC thread, {spinners} spinning threads; load average {BenchSupport.LoadAverage()}"));
        Console.WriteLine($"{"rule",-11} {"steps",9} {"failed",7}  first failure");
        bool projectRuleFailed = false;
        foreach (string rule in rules)
        {
            var (steps, failures, first) = Stress(rule, seconds, trainers, spinners);
            Console.WriteLine($"{rule,-11} {steps,9} {failures,7}  {first ?? "-"}");
            if (failures > 0 && !rule.StartsWith("torch-", StringComparison.Ordinal)) projectRuleFailed = true;
        }
        Console.WriteLine($"load average after: {BenchSupport.LoadAverage()}");
        return projectRuleFailed ? 1 : 0;
    }

    static (long Steps, long Failures, string? First) Stress(string rule, double seconds, int trainers, int spinners)
    {
        long steps = 0, failures = 0;
        string? first = null;
        var stop = new CancellationTokenSource();
        var threads = new List<Thread>();
        for (int i = 0; i < trainers; i++)
        {
            int seed = i;
            threads.Add(new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try { Train(rule, seed, stop.Token, ref steps); }
                    catch (ExternalException e)
                    {
                        Interlocked.Increment(ref failures);
                        // The native call that read the freed Scalar, and the update that made it.
                        var frames = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).Select(l => l.StartsWith("at ", StringComparison.Ordinal) ? l[3..] : l).ToList();
                        string call = frames.FirstOrDefault(l => l.StartsWith("TorchSharp.torch.Tensor.", StringComparison.Ordinal)) ?? "?";
                        string caller = frames.FirstOrDefault(l => l.StartsWith("TorchSharp.Modules.", StringComparison.Ordinal) || l.StartsWith("NqmValidate.", StringComparison.Ordinal)) ?? "?";
                        Interlocked.CompareExchange(ref first, $"{e.Message[..Math.Min(26, e.Message.Length)]}… in {Short(call)} from {Short(caller)}", null);
                    }
                }
            }));
        }
        threads.Add(new Thread(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        }));
        for (int i = 0; i < spinners; i++)
            threads.Add(new Thread(() => { while (!stop.IsCancellationRequested) Thread.SpinWait(1000); }));
        foreach (var t in threads) t.Start();
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        stop.Cancel();
        foreach (var t in threads) t.Join();
        return (steps, failures, first);
    }

    static string Short(string frame) => frame.Split(" in ")[0];

    /// <summary>Trains a fresh 8-8-2 MLP on fixed random data with <paramref name="rule"/> until stopped (or a step throws).</summary>
    static void Train(string rule, int seed, CancellationToken stop, ref long steps)
    {
        using var generator = new Generator((ulong)seed);
        using var model = nn.Sequential(("l1", nn.Linear(8, 8)), ("relu", nn.ReLU()), ("l2", nn.Linear(8, 2)));
        using var x = randn(4, 8, generator: generator);
        using var y = randn(4, 2, generator: generator);
        using var update = Create(rule, model);
        while (!stop.IsCancellationRequested)
        {
            using var scope = NewDisposeScope();
            update.Step(() => nn.functional.mse_loss(model.call(x), y), 0.01);
            Interlocked.Increment(ref steps);
        }
    }

    /// <summary>A project rule by family name, or a TorchSharp optimizer stepped directly (torch-sgd, torch-adam).</summary>
    static IUpdateRule Create(string rule, nn.Module model) => rule switch
    {
        "torch-sgd" => new TorchSharpStep(optim.SGD(model.parameters(), 0.01, momentum: 0.9)),
        "torch-adam" => new TorchSharpStep(optim.Adam(model.parameters(), 0.01)),
        _ => OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec(rule, 0.01), 100), model),
    };

    /// <summary>TorchSharp's optimizer as it is: zero_grad, backward, step (the unprotected baseline).</summary>
    sealed class TorchSharpStep(optim.Optimizer optimizer) : IUpdateRule
    {
        public Tensor Step(Func<Tensor> loss, double learningRate)
        {
            optimizer.zero_grad();
            var value = loss();
            value.backward();
            optimizer.step();
            return value;
        }

        public void Dispose() => optimizer.Dispose();
    }
}
