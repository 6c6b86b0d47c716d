using System.Diagnostics;
using System.Globalization;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// kfac-step: the wall time of one K-FAC step (forward, backward, factors, preconditioning, heavy ball) over one SGD step
/// (forward, backward, update) on the same model and Fashion-MNIST batches, B = 128. K-FAC refreshes its eigenbases every
/// T steps, so both are timed in blocks of T steps (each K-FAC block holds one refresh), alternating, medians of the
/// repeats: the amortised ratio, and apart the steps without a refresh and the refresh step itself.
/// Args: [--threads N] [--repeats R] [--every T] [--only mlp|cnn]
/// </summary>
public sealed class KfacStepBenchmark : IBenchmark
{
    public string Name => "kfac-step";
    public string Description => "K-FAC step time over SGD's (quick experiment's MLP and the simple CNN, B = 128; amortised over T steps)";

    const int BatchSize = 128;

    public int Run(string[] args)
    {
        int threads = Int(args, "--threads", 1), repeats = Int(args, "--repeats", 5), every = Int(args, "--every", 10);
        string? only = BenchSupport.Arg(args, "--only");
        TorchRuntime.Initialize(threads);
        using var data = FashionMnist.Load(null);
        Console.WriteLine($"kfac-step: B = {BatchSize}, threads {threads}, inverse_every T = {every}, {repeats} blocks of T steps each, alternating, medians; load average {BenchSupport.LoadAverage()}");
        Console.WriteLine($"{"model",-5} {"SGD ms",8} {"K-FAC ms",9} {"ratio",6}  {"no-refresh ms",13} {"ratio",6}  {"refresh ms",10}");
        foreach (var model in new[] { "mlp", "cnn" }.Where(m => only is null || m == only))
        {
            var spec = new ModelSpec(model);
            using var sgdModel = ModelRegistry.Create(spec, 1);
            using var kfacModel = ModelRegistry.Create(spec, 1);
            using var sgd = OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec("sgd", 1e-3), 1), sgdModel);
            using var kfac = OptimizerFamilies.Create(OptimizerFamilies.Resolve(new OptimizerSpec("kfac", 1e-3, ("inverse_every", every)), 1), kfacModel);
            var batches = Enumerable.Range(0, 4).Select(i => (
                X: data.Train.Images.narrow(0, i * BatchSize, BatchSize).clone(),
                Y: data.Train.Labels.narrow(0, i * BatchSize, BatchSize).clone())).ToList();
            Block(sgd, sgdModel, batches, every); Block(kfac, kfacModel, batches, every); // warm-up (JIT, allocator, first refresh)
            var sgdSteps = new List<double>(); var kfacSteps = new List<double>(); var plain = new List<double>(); var refresh = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                sgdSteps.Add(Block(sgd, sgdModel, batches, every).Average());
                var k = Block(kfac, kfacModel, batches, every);
                kfacSteps.Add(k.Average());
                refresh.Add(k[0]); // the block starts at step r·T + 1: a refresh
                plain.AddRange(k.Skip(1));
            }
            double s = Measure.Median(sgdSteps), a = Measure.Median(kfacSteps), p = Measure.Median(plain), f = Measure.Median(refresh);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{model,-5} {1e3 * s,8:F2} {1e3 * a,9:F2} {a / s,6:F2}  {1e3 * p,13:F2} {p / s,6:F2}  {1e3 * f,10:F1}"));
            foreach (var (x, y) in batches) { x.Dispose(); y.Dispose(); }
        }
        Console.WriteLine($"load average at the end: {BenchSupport.LoadAverage()}");
        return 0;
    }

    /// <summary>Seconds of each of <paramref name="steps"/> steps of <paramref name="rule"/>, cycling through the batches.</summary>
    static double[] Block(IUpdateRule rule, nn.Module<Tensor, Tensor> model, List<(Tensor X, Tensor Y)> batches, int steps)
    {
        var seconds = new double[steps];
        for (int i = 0; i < steps; i++)
        {
            var (x, y) = batches[i % batches.Count];
            var clock = Stopwatch.StartNew();
            using (NewDisposeScope()) rule.Step(() => nn.functional.cross_entropy(model.call(x), y), 1e-3);
            seconds[i] = clock.Elapsed.TotalSeconds;
        }
        return seconds;
    }

    static int Int(string[] args, string name, int fallback) =>
        BenchSupport.Arg(args, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
