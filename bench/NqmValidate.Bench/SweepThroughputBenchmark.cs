using System.Diagnostics;
using System.Globalization;
using NqmValidate.Formats;
using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Bench;

/// <summary>
/// sweep-throughput (#12): the same study three ways in one run — a process per trial, persistent workers, and workers
/// training each wave of K trials as one stacked model — alternating the order over repeats. Prints per mode the wall
/// time, model-steps/s (steps trained by all trials / wall), the ratios to process-per-trial, and the sweep efficiency:
/// the time the trained examples would take in a bare TorchSharp loop (measured in the same run at each batch size, one
/// thread) divided by wall × jobs (the cores the sweep holds). Also the steps-to-target of every study in each mode
/// (stacked against alone: within seed noise, not bit for bit) and the steps trained (what waves cost in pruning).
/// Args: [--spec FILE (default experiments/fmnist-mlp-quick.json)] [--stack K (default 4)] [--repeats N (default 1)]
/// [--modes per-trial,worker-glibc,worker,stacked] (worker-glibc: workers without the trial environment's malloc settings) [--out DIR] [--nqm-dll PATH]
/// </summary>
public sealed class SweepThroughputBenchmark : IBenchmark
{
    public string Name => "sweep-throughput";
    public string Description => "one study three ways (process per trial, workers, workers + stacks): wall, model-steps/s, ratios, sweep efficiency";

    public int Run(string[] args)
    {
        // The bare loop, like the trials, runs with the trial environment's allocator settings.
        if (BenchSupport.InTrialEnvironment(Name, args) is { } code) return code;
        string root = BenchSupport.RepoRoot();
        string specPath = BenchSupport.Arg(args, "--spec") ?? Path.Combine(root, "experiments", "fmnist-mlp-quick.json");
        int stack = int.Parse(BenchSupport.Arg(args, "--stack") ?? "4", CultureInfo.InvariantCulture);
        int repeats = int.Parse(BenchSupport.Arg(args, "--repeats") ?? "1", CultureInfo.InvariantCulture);
        string[] modes = (BenchSupport.Arg(args, "--modes") ?? "per-trial,worker,stacked").Split(',');
        string outRoot = BenchSupport.Arg(args, "--out") ?? Path.Combine(Path.GetTempPath(), $"nqm-bench-throughput-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        string dll = BenchSupport.Arg(args, "--nqm-dll") ?? Path.Combine(root, "src", "NqmValidate.Cli", "bin", "Release", "net10.0", "nqm.dll");
        if (!File.Exists(dll)) { Console.Error.WriteLine($"{dll} missing: build the CLI first (scripts/nqm --help)."); return 2; }
        var spec = SpecLoader.Load(specPath);
        int trials = SweepPlan.Create(spec).Chains.Sum(c => c.Studies.Sum(s => s.Trials.Count));
        Console.WriteLine($"sweep-throughput: {spec.Name}, {trials} trials, {spec.Jobs} jobs × {spec.Threads} thread(s), stack {stack}, " +
                          $"{repeats} repeat(s); {Environment.ProcessorCount} cores, load average {BenchSupport.LoadAverage()}");

        var runs = modes.ToDictionary(m => m, _ => new List<(double Wall, long Steps, double BareSeconds, string Dir)>());
        var bare = BareRates(spec);
        for (int r = 0; r < repeats; r++)
        foreach (string mode in r % 2 == 0 ? modes : modes.Reverse())
        {
            string dir = Path.Combine(outRoot, $"{mode}-{r}");
            var modeSpec = spec with { TrialProcesses = mode == "per-trial" ? "per-trial" : "worker", Stack = mode == "stacked" ? stack : 1 };
            // worker-glibc: workers with glibc's default allocator settings (a no-op tunable keeps SetTrialEnvironment's out).
            Environment.SetEnvironmentVariable("GLIBC_TUNABLES", mode == "worker-glibc" ? "glibc.malloc.check=0" : null);
            var runner = TrialHosting.Create(modeSpec.TrialProcessMode, "dotnet", [dll]);
            var clock = Stopwatch.StartNew();
            SweepSummary summary;
            try { summary = new SweepRunner(runner).RunAsync(new SweepOptions(modeSpec, dir, Shard.All)).GetAwaiter().GetResult(); }
            finally { (runner as IDisposable)?.Dispose(); }
            double wall = clock.Elapsed.TotalSeconds;
            if (!summary.Complete) { Console.Error.WriteLine($"{dir}: sweep did not complete"); return 1; }
            var (steps, bareSeconds) = Trained(dir, bare);
            runs[mode].Add((wall, steps, bareSeconds, dir));
            Console.WriteLine(FormattableString.Invariant(
                $"  {mode,-9} run {r}: {wall,7:F1} s wall, {steps,8} steps trained, {steps / wall,7:F0} model-steps/s, efficiency {bareSeconds / (wall * spec.Jobs):F2} (load {BenchSupport.LoadAverage()}) -> {dir}"));
        }

        Console.WriteLine($"medians over {repeats} repeat(s):");
        Console.WriteLine($"{"mode",-9} {"wall s",8} {"steps",9} {"model-steps/s",14} {"vs per-trial: wall",19} {"steps/s",8} {"efficiency",11}");
        var baseline = runs.GetValueOrDefault("per-trial");
        foreach (var (mode, list) in runs)
        {
            double wall = Measure.Median(list.Select(x => x.Wall)), rate = Measure.Median(list.Select(x => x.Steps / x.Wall));
            double efficiency = Measure.Median(list.Select(x => x.BareSeconds / (x.Wall * spec.Jobs)));
            string vs = baseline is { Count: > 0 }
                ? FormattableString.Invariant($"{Measure.Median(baseline.Select(x => x.Wall)) / wall,18:F2}x {rate / Measure.Median(baseline.Select(x => x.Steps / x.Wall)),7:F2}x")
                : "";
            Console.WriteLine(FormattableString.Invariant($"{mode,-9} {wall,8:F1} {Measure.Median(list.Select(x => (double)x.Steps)),9:F0} {rate,14:F0} {vs} {efficiency,11:F2}"));
        }
        // Steps-to-target per study: stacked against alone (workers; per-trial is the same bit for bit).
        if (runs.TryGetValue("stacked", out var s) && runs.TryGetValue(runs.ContainsKey("worker") ? "worker" : "per-trial", out var a) && s.Count > 0 && a.Count > 0)
        {
            var alone = StepsFile.Read(Path.Combine(a[0].Dir, "steps.csv")).Rows;
            var stacked = StepsFile.Read(Path.Combine(s[0].Dir, "steps.csv")).Rows;
            Console.WriteLine("steps-to-target, alone vs stacked (log2 ratio); steps trained alone vs stacked:");
            var logs = new List<double>();
            foreach (var (x, y) in alone.Zip(stacked))
            {
                double? l = x.StepsToTarget is { } p && y.StepsToTarget is { } q ? Math.Log2((double)q / p) : null;
                if (l is { } v) logs.Add(Math.Abs(v));
                Console.WriteLine(FormattableString.Invariant($"  {x.Optimizer,-9} B={x.BatchSize,5}: {x.StepsToTarget,6} vs {y.StepsToTarget,6} ({l,6:F3}); trained {x.StepsTrained,7} vs {y.StepsTrained,7}"));
            }
            if (logs.Count > 0) Console.WriteLine(FormattableString.Invariant($"  median |log2| {Measure.Median(logs):F3}, max {logs.Max():F3}"));
        }
        Console.WriteLine($"load average at the end {BenchSupport.LoadAverage()}");
        return 0;
    }

    /// <summary>Bare-loop examples/s at each batch size of the spec (the spec's model, one thread, SGD).</summary>
    static Dictionary<int, double> BareRates(ExperimentSpec spec)
    {
        TorchRuntime.Initialize(spec.Threads);
        using var data = FashionMnist.Load(spec.Workload?.Data.Dir);
        var rates = new Dictionary<int, double>();
        string model = spec.Workload!.Model!.Name;
        foreach (int b in spec.BatchSizes!)
        {
            int steps = Math.Max(20, 20_000 / b);
            TrainingBenchmark.Bare(new TrainingBenchmark.Case(model, b, steps), data); // warm-up
            rates[b] = Measure.Median(Enumerable.Range(0, 3).Select(_ => TrainingBenchmark.Bare(new TrainingBenchmark.Case(model, b, steps), data)));
            Console.WriteLine(FormattableString.Invariant($"  bare loop B={b}: {rates[b]:F0} examples/s"));
        }
        return rates;
    }

    /// <summary>Steps trained by every trial of a sweep directory, and what their examples cost in the bare loop.</summary>
    static (long Steps, double BareSeconds) Trained(string dir, Dictionary<int, double> bare)
    {
        long steps = 0;
        double seconds = 0;
        foreach (var study in Directory.GetDirectories(Path.Combine(dir, "trials")))
        foreach (var trial in Directory.GetDirectories(study, "t*"))
        {
            var record = TrialJson.Read<TrialRecord>(Path.Combine(trial, "trial.json"));
            steps += record.StepsRun;
            seconds += (double)record.ExamplesSeen / bare[record.Config.BatchSize];
        }
        return (steps, seconds);
    }
}
