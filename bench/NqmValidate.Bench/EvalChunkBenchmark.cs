using System.Globalization;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Workloads;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// eval-chunk: forward-only evaluation throughput (examples/s) at several chunk sizes, the way a trial evaluates
/// (TrialRunner's RunBatch: the model in eval mode, no_grad, one dispose scope per chunk, the workload's summed loss and
/// correct count read back per chunk) over the first N training examples (a trial's train_eval subset). A trial evaluates
/// in chunks of 1,000; a convolution's activations at 1,000 examples are tens of MiB (cnn: 1000 × 32 × 28 × 28 floats
/// ≈ 100 MiB after the first convolution), past what stays in cache, so a smaller chunk may be faster there. Runs in a
/// trial process's environment (1 thread, glibc's allocator settings). Each repeat evaluates every chunk size once, in
/// turn; medians of the repeats, and the ratio to chunk 1,000 (> 1: faster than the trial's chunk).
/// Args: [--repeats R] [--examples N] [--chunks 128,256,512,1000] [--models mlp,cnn-narrow,cnn]
/// </summary>
public sealed class EvalChunkBenchmark : IBenchmark
{
    public string Name => "eval-chunk";
    public string Description => "forward-only evaluation examples/s per chunk size (mlp, cnn-narrow, cnn) and the ratio to the trial's 1,000";

    const int TrialChunk = 1000;

    public int Run(string[] args)
    {
        if (BenchSupport.InTrialEnvironment(Name, args) is { } code) return code;
        int repeats = int.Parse(BenchSupport.Arg(args, "--repeats") ?? "3", CultureInfo.InvariantCulture);
        int examples = int.Parse(BenchSupport.Arg(args, "--examples") ?? "2000", CultureInfo.InvariantCulture);
        int[] chunks = (BenchSupport.Arg(args, "--chunks") ?? "128,256,512,1000").Split(',')
            .Select(c => int.Parse(c, CultureInfo.InvariantCulture)).Append(TrialChunk).Distinct().Order().ToArray();
        string[] models = (BenchSupport.Arg(args, "--models") ?? "mlp,cnn-narrow,cnn").Split(',');
        TorchRuntime.Initialize(1);
        using var data = FashionMnist.Load(null, new FashionMnistOptions(EvalExamples: examples));
        var workload = new FashionMnistWorkload(data);
        using var images = data.Train.Images.narrow(0, 0, examples);
        using var labels = data.Train.Labels.narrow(0, 0, examples);
        var split = new DataSplit("train_eval", images, labels);
        Console.WriteLine($"eval-chunk: {examples} examples per pass, 1 thread, GLIBC_TUNABLES={Environment.GetEnvironmentVariable("GLIBC_TUNABLES")}, " +
                          $"{repeats} repeats (chunk sizes in turn), medians; load average {BenchSupport.LoadAverage()}");
        Console.WriteLine($"{"model",-11} {"chunk",6} {"examples/s",11} {"ratio",6}");
        foreach (var name in models)
        {
            using var model = ModelRegistry.Create(new ModelSpec(name), 1);
            model.eval();
            foreach (int chunk in chunks) Pass(model, workload, split, chunk); // warm-up: JIT, allocator, first-touch
            var seconds = chunks.ToDictionary(c => c, _ => new List<double>());
            for (int r = 0; r < repeats; r++)
                foreach (int chunk in chunks)
                    seconds[chunk].Add(Measure.Seconds(() => Pass(model, workload, split, chunk)));
            double trial = examples / Measure.Median(seconds[TrialChunk]);
            foreach (int chunk in chunks)
            {
                double rate = examples / Measure.Median(seconds[chunk]);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-11} {chunk,6} {rate,11:F0} {rate / trial,6:F2}"));
            }
        }
        Console.WriteLine($"load average at the end: {BenchSupport.LoadAverage()}");
        return 0;
    }

    /// <summary>One evaluation of the split in chunks of <paramref name="chunk"/>, as TrialRunner's Evaluate does it; returns the mean loss.</summary>
    static double Pass(nn.Module<Tensor, Tensor> model, FashionMnistWorkload workload, DataSplit split, int chunk)
    {
        double lossSum = 0;
        for (long start = 0; start < split.Count; start += chunk)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            int count = (int)Math.Min(chunk, split.Count - start);
            var (sum, hits) = workload.Score(model.call(split.Images.narrow(0, start, count)), split.Labels.narrow(0, start, count));
            lossSum += sum.item<float>();
            _ = hits?.item<long>();
        }
        return lossSum / split.Count;
    }
}
