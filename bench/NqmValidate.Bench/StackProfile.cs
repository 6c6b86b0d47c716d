using System.Diagnostics;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Stacks;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// stack-profile: where a stacked step of K default MLPs spends its time (batch gather, forward, per-member loss, backward,
/// stacked update) against K single steps of the same models, in a trial process's environment. A diagnostic beside
/// stacked-step: it says why stacking does or does not pay on a machine.
/// </summary>
public sealed class StackProfile : IBenchmark
{
    public string Name => "stack-profile";
    public string Description => "diagnostic: a stacked step's parts (prep, forward, loss, backward, update) vs K single steps. Args: B K [sgd|adam]";

    public int Run(string[] args)
    {
        if (BenchSupport.InTrialEnvironment(Name, args) is { } code) return code;
        int B = int.Parse(args[0]), K = int.Parse(args[1]), steps = 300;
        TorchRuntime.Initialize(1);
        using var data = FashionMnist.Load(null);
        var spec = new ModelSpec("mlp");
        var models = Enumerable.Range(0, K).Select(k => ModelRegistry.Create(spec, k)).ToList();
        string fam = args.Length > 2 ? args[2] : "sgd";
        var rules = models.Select(m => OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec(fam, 0.01), 100), m)).ToList();
        var idx = arange(K * B);
        var sw = Stopwatch.StartNew();
        for (int s = 0; s < steps; s++)
            for (int k = 0; k < K; k++)
            {
                using var scope = NewDisposeScope();
                var x = data.Train.Images.index_select(0, idx.narrow(0, k * B, B));
                var y = data.Train.Labels.index_select(0, idx.narrow(0, k * B, B));
                rules[k].Step(() => nn.functional.cross_entropy(models[k].call(x), y), 0.01).item<float>();
            }
        double single = sw.Elapsed.TotalMilliseconds / steps;
        using var stack = new MlpStack(models[0], K);
        using var rule = StackedRule.For(fam, stack.Parameters, K)!;
        for (int k = 0; k < K; k++) { stack.Load(k, models[k]); rule.Start(k, OptimizerFamilies.Resolve(new OptimizerSpec(fam, 0.01), 100)); }
        var t = new double[5];
        var lrs = Enumerable.Repeat(0.01, K).ToArray();
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            var c = Stopwatch.StartNew();
            var x = data.Train.Images.index_select(0, idx).view(K, B, -1);
            var y = data.Train.Labels.index_select(0, idx);
            stack.ZeroGrad();
            t[0] += c.Elapsed.TotalMilliseconds; c.Restart();
            var o = stack.Forward(x, K);
            t[1] += c.Elapsed.TotalMilliseconds; c.Restart();
            var per = stack_(Enumerable.Range(0, K).Select(k => nn.functional.cross_entropy(o[k], y.narrow(0, k * B, B))).ToArray());
            var total = per.sum();
            t[2] += c.Elapsed.TotalMilliseconds; c.Restart();
            total.backward();
            t[3] += c.Elapsed.TotalMilliseconds; c.Restart();
            rule.Update(K, lrs);
            per.data<float>().ToArray();
            t[4] += c.Elapsed.TotalMilliseconds;
        }
        Console.WriteLine($"B={B} K={K} {fam}: single {single:F2} ms/step for K models; stacked total {t.Sum() / steps:F2} ms: prep {t[0] / steps:F2} fwd {t[1] / steps:F2} loss {t[2] / steps:F2} bwd {t[3] / steps:F2} update {t[4] / steps:F2}; load {BenchSupport.LoadAverage()}");
        return 0;
    }

    static Tensor stack_(Tensor[] t) => stack(t);
}
