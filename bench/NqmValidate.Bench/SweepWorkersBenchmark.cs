using System.Diagnostics;
using System.Globalization;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Bench;

/// <summary>
/// The same small sweep with a process per trial and with persistent trial workers, alternating in the same run: wall
/// time of each (median over repeats), the ratio worker / per-trial, the load average around the runs, and whether the
/// two modes wrote the same steps.csv and trials.csv (they must: same code, seeds and threads). Each worker-mode run
/// starts its workers afresh (their start-up and data loading count). Uses real `nqm` processes; build the CLI first.
/// </summary>
public sealed class SweepWorkersBenchmark : IBenchmark
{
    public string Name => "sweep-workers";
    public string Description => "process per trial vs persistent workers on the same small sweep: wall time, ratio, same tables [--spec FILE] [--out DIR] [--repeats N] [--nqm-dll PATH]";

    /// <summary>16 short MLP trials (2 optimizers × 2 batch sizes × 4 learning rates, at most 200 steps), 2 jobs × 1 thread.</summary>
    const string DefaultSpec = """
    {
      "name": "bench-workers",
      "seed": 11,
      "workload": {
        "model": { "name": "mlp", "hidden_widths": [256, 256] },
        "target": { "metric": "train_loss", "threshold": 0.7 }
      },
      "batch_sizes": [64, 256],
      "optimizers": [
        { "name": "sgd", "learning_rate": { "min": 0.01, "max": 1.0, "points": 4 } },
        { "name": "momentum", "learning_rate": { "min": 0.001, "max": 0.1, "points": 4 },
          "one_minus_momentum": { "min": 0.1, "max": 0.1 } }
      ],
      "budget": { "steps": 200 },
      "threads": 1,
      "jobs": 2
    }
    """;

    public int Run(string[] args)
    {
        string outRoot = BenchSupport.Arg(args, "--out") ?? Path.Combine(Path.GetTempPath(), $"nqm-bench-workers-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        int repeats = int.Parse(BenchSupport.Arg(args, "--repeats") ?? "3", CultureInfo.InvariantCulture);
        // --nqm-dll: a copy of the CLI's output, so that rebuilding the repository during the benchmark cannot swap the
        // native libraries under a starting trial.
        string dll = BenchSupport.Arg(args, "--nqm-dll") ?? Path.Combine(BenchSupport.RepoRoot(), "src", "NqmValidate.Cli", "bin", "Release", "net10.0", "nqm.dll");
        if (!File.Exists(dll)) { Console.Error.WriteLine($"{dll} missing: build the CLI first (scripts/nqm --help)."); return 2; }
        Directory.CreateDirectory(outRoot);
        string specPath = BenchSupport.Arg(args, "--spec") ?? Path.Combine(outRoot, "bench-workers.json");
        if (BenchSupport.Arg(args, "--spec") is null) File.WriteAllText(specPath, DefaultSpec);
        var spec = SpecLoader.Load(specPath);
        int trials = SweepPlan.Create(spec).Chains.Sum(c => c.Studies.Sum(s => s.Trials.Count));
        string loadBefore = BenchSupport.LoadAverage();
        Console.WriteLine($"sweep-workers: {spec.Name}, {trials} trials, {spec.Jobs} jobs × {spec.Threads} threads, {repeats} repeat(s); " +
                          $"{Environment.ProcessorCount} cores, load average {loadBefore}");

        var walls = new Dictionary<string, List<double>> { ["per-trial"] = [], ["worker"] = [] };
        var tables = new List<string>();
        for (int r = 0; r < repeats; r++)
        {
            // Alternate which goes first so that drifting machine load does not favour one.
            foreach (string mode in r % 2 == 0 ? new[] { "per-trial", "worker" } : ["worker", "per-trial"])
            {
                string dir = Path.Combine(outRoot, $"{mode}-{r}");
                var runner = TrialHosting.Create(mode, "dotnet", [dll]);
                var clock = Stopwatch.StartNew();
                SweepSummary summary;
                try { summary = new SweepRunner(runner).RunAsync(new SweepOptions(spec with { TrialProcesses = mode }, dir, Shard.All)).GetAwaiter().GetResult(); }
                finally { (runner as IDisposable)?.Dispose(); } // the workers' exit is part of the worker run's time
                double wall = clock.Elapsed.TotalSeconds;
                if (!summary.Complete) { Console.Error.WriteLine($"{dir}: sweep did not complete"); return 1; }
                walls[mode].Add(wall);
                tables.Add(File.ReadAllText(Path.Combine(dir, "steps.csv")) + File.ReadAllText(Path.Combine(dir, "trials.csv")));
                Console.WriteLine($"  {mode,-9} run {r}: {wall,7:F1} s wall, {summary.StepsTrained,7} steps trained, {summary.TrialsRunNow} trials " +
                                  $"(load {BenchSupport.LoadAverage()}) -> {dir}");
            }
        }
        bool same = tables.Distinct().Count() == 1;
        double perTrial = Measure.Median(walls["per-trial"]), worker = Measure.Median(walls["worker"]);
        Console.WriteLine($"sweep-workers ({spec.Name}, {trials} trials, {repeats} repeat(s), medians): per-trial {perTrial:F1} s, worker {worker:F1} s; " +
                          $"worker/per-trial = {worker / perTrial:F2} ({perTrial / worker:F2}x faster); load average {loadBefore} before, {BenchSupport.LoadAverage()} after; " +
                          $"steps.csv and trials.csv identical: {(same ? "yes" : "NO")}");
        return same ? 0 : 1;
    }
}
