using System.Diagnostics;
using System.Globalization;
using NqmValidate.Training;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Trials;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// training-throughput: examples/s of the harness's trial loop (TrialRunner, wall time minus its evaluation time)
/// against a bare TorchSharp loop (same model, seed, optimizer, batch size, threads and shuffled batches, no evaluation,
/// no bookkeeping) measured in the same run, alternating, medians of several repeats. Target: ratio ≥ 0.9.
/// Then the resident memory of a 5,000-step MLP trial: peak, and growth between step 1,000 and step 5,000 (target &lt; 5%).
/// Args: [--threads N] [--repeats R] [--skip-memory] [--only mlp:16] [--steps-scale F]
/// </summary>
public sealed class TrainingBenchmark : IBenchmark
{
    public string Name => "training-throughput";
    public string Description => "harness trial loop vs bare TorchSharp loop (MLP B=16/128/1024, CNN B=64); RSS of a 5,000-step trial";

    internal sealed record Case(string Model, int BatchSize, int Steps);

    public int Run(string[] args)
    {
        int threads = IntArg(args, "--threads", 1), repeats = IntArg(args, "--repeats", 5);
        TorchRuntime.Initialize(threads);
        using var full = FashionMnist.Load(null);
        // A small validation split keeps the harness's (untimed) initial and final evaluations short.
        var data = full with { Validation = new DataSplit("validation", full.Validation.Images.narrow(0, 0, 500), full.Validation.Labels.narrow(0, 0, 500)) };

        Console.WriteLine($"training-throughput: threads {threads}, {repeats} repeats, medians; harness = TrialRunner wall time minus its evaluation time");
        if (!args.Contains("--skip-memory")) MemoryGrowth(data); // first, so the peak is that of data + one MLP trial
        Console.WriteLine($"{"model",-6} {"B",5} {"steps",6} {"bare ex/s",11} {"harness ex/s",13} {"ratio",6}  {"(min..max ratio)",18} {"steps-only ratio",17}");
        Case[] cases = [new("mlp", 16, 400), new("mlp", 128, 400), new("mlp", 1024, 100), new("cnn", 64, 100)];
        int scale = Array.IndexOf(args, "--steps-scale");
        if (scale >= 0) cases = cases.Select(c => c with { Steps = (int)Math.Ceiling(c.Steps * double.Parse(args[scale + 1], CultureInfo.InvariantCulture)) }).ToArray();
        int only = Array.IndexOf(args, "--only");
        if (only >= 0) cases = cases.Where(c => $"{c.Model}:{c.BatchSize}" == args[only + 1]).ToArray();
        var ratios = new List<double>();
        foreach (var c in cases)
        {
            Bare(c, data); Harness(c, data); // warm-up (JIT, allocator)
            var bare = new List<double>(); var harness = new List<double>(); var pairRatios = new List<double>(); var stepsOnly = new List<double>();
            for (int r = 0; r < repeats; r++)
            {
                double b = Bare(c, data);
                var (h, s) = Harness(c, data);
                bare.Add(b); harness.Add(h); pairRatios.Add(h / b); stepsOnly.Add(s);
            }
            double ratio = Measure.Median(harness) / Measure.Median(bare);
            ratios.Add(ratio);
            Console.WriteLine(FormattableString.Invariant(
                $"{c.Model,-6} {c.BatchSize,5} {c.Steps,6} {Measure.Median(bare),11:F0} {Measure.Median(harness),13:F0} {ratio,6:F3}  ({pairRatios.Min():F3}..{pairRatios.Max():F3}) {Measure.Median(stepsOnly) / Measure.Median(bare),17:F3}"));
        }
        if (ratios.Count > 0)
            Console.WriteLine(FormattableString.Invariant($"throughput ratio: worst {ratios.Min():F3}, target >= 0.9: {(ratios.Min() >= 0.9 ? "met" : "NOT met")}"));
        return 0;
    }

    static TrialConfig ConfigFor(Case c, long steps) => new()
    {
        Model = new ModelSpec(c.Model), Optimizer = new OptimizerSpec("sgd", 0.01), BatchSize = c.BatchSize,
        Target = new Target(TargetMetric.TrainLoss, 1e-9), MaxSteps = steps, Seed = 1, EvalExamples = 500,
        Threads = torch.get_num_threads(), LogEvery = 100,
    };

    /// <summary>
    /// Harness examples/s: the trial's wall time minus the time it spent evaluating; and, for diagnosis, examples/s of
    /// its train_seconds (the update steps alone, without the loop's bookkeeping and parameter copies).
    /// </summary>
    static (double Loop, double StepsOnly) Harness(Case c, FashionMnistData data)
    {
        var clock = Stopwatch.StartNew();
        var record = TrialRunner.Run(ConfigFor(c, c.Steps), data).Record;
        double seconds = clock.Elapsed.TotalSeconds - record.EvalSeconds;
        return (record.ExamplesSeen / seconds, record.ExamplesSeen / record.TrainSeconds);
    }

    /// <summary>The loop one would write by hand: shuffled batches, forward, loss, backward, step, a dispose scope per step.</summary>
    internal static double Bare(Case c, FashionMnistData data)
    {
        var clock = Stopwatch.StartNew();
        using var model = ModelRegistry.Create(new ModelSpec(c.Model), Seeds.Derive(1, Seeds.ModelStream));
        using var optimizer = optim.SGD(model.parameters(), 0.01);
        long n = data.Train.Count, perEpoch = n / c.BatchSize;
        Tensor? permutation = null;
        using var generator = new Generator(7);
        for (int step = 0; step < c.Steps; step++)
        {
            if (step % perEpoch == 0) { permutation?.Dispose(); permutation = randperm(n, generator: generator); }
            using var scope = NewDisposeScope();
            var idx = permutation!.narrow(0, step % perEpoch * c.BatchSize, c.BatchSize);
            var x = data.Train.Images.index_select(0, idx);
            var y = data.Train.Labels.index_select(0, idx);
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.call(x), y);
            loss.backward();
            optimizer.step();
        }
        permutation?.Dispose();
        return (double)c.Steps * c.BatchSize / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Samples memory at steps 1,000, 3,000 and 5,000: raw RSS, then RSS after a full GC and malloc_trim.</summary>
    sealed class RssProbe : ITrialObserver
    {
        public readonly Dictionary<long, (long Raw, long Trimmed, long LiveTensors)> Samples = new();
        public void Stepped(long step, double loss)
        {
            if (step is not (1000 or 3000 or 5000)) return;
            long raw = CurrentRss();
            // Separates retained memory (a leak) from memory the managed GC or glibc's allocator merely has not returned yet.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            MallocTrim(0);
            Samples[step] = (raw, CurrentRss(), DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    static void MemoryGrowth(FashionMnistData data)
    {
        var probe = new RssProbe();
        var clock = Stopwatch.StartNew();
        var record = TrialRunner.Run(ConfigFor(new Case("mlp", 128, 5000), 5000) with { EvalExamples = 10_000 }, data, default, probe).Record;
        var (a, b, c) = (probe.Samples[1000], probe.Samples[3000], probe.Samples[5000]);
        double rawGrowth = (c.Raw - a.Raw) / (double)a.Raw, trimmedGrowth = (c.Trimmed - a.Trimmed) / (double)a.Trimmed;
        Console.WriteLine(FormattableString.Invariant(
            $"memory: 5,000-step MLP trial (B=128, {record.Evaluations} evaluations, {clock.Elapsed.TotalSeconds:F0} s), peak RSS of the process {Mb(PeakRss())} MB (data set in memory included)"));
        Console.WriteLine(FormattableString.Invariant(
            $"  RSS at steps 1,000 / 3,000 / 5,000: raw {Mb(a.Raw)} / {Mb(b.Raw)} / {Mb(c.Raw)} MB (growth {100 * rawGrowth:F2}%); after GC + malloc_trim {Mb(a.Trimmed)} / {Mb(b.Trimmed)} / {Mb(c.Trimmed)} MB (growth {100 * trimmedGrowth:F2}%, target < 5%: {(trimmedGrowth < 0.05 ? "met" : "NOT met")}); live tensors {a.LiveTensors} / {b.LiveTensors} / {c.LiveTensors}"));
    }

    static long CurrentRss() => StatusField("VmRSS:");
    static long PeakRss() => StatusField("VmHWM:");

    /// <summary>A memory field of /proc/self/status, in bytes.</summary>
    static long StatusField(string name)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(name, StringComparison.Ordinal));
        return long.Parse(line[name.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    static string Mb(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);

    static int IntArg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
