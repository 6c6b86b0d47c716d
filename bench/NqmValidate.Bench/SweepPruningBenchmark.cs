using System.Diagnostics;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Bench;

/// <summary>
/// The sweep with best-so-far pruning and predicted trial order against the same sweep as a
/// plain exhaustive search (every trial to its budget, canonical order), in the same run:
/// steps trained (deterministic, the primary measure), wall time, and whether steps.csv's
/// results (optimizer, batch size, steps_to_target, learning rate, momentum) are identical.
/// Uses real `nqm train` processes; build the CLI first (scripts/nqm --help).
/// </summary>
public sealed class SweepPruningBenchmark : IBenchmark
{
    public string Name => "sweep-pruning";
    public string Description => "sweep with pruning + ordering vs exhaustive search: trained steps, wall time, same steps.csv [--spec FILE] [--out DIR] [--repeats N] [--nqm-dll PATH]";

    public int Run(string[] args)
    {
        string spec = BenchSupport.Arg(args, "--spec") ?? Path.Combine(BenchSupport.RepoRoot(), "experiments", "fmnist-mlp-quick.json");
        string outRoot = BenchSupport.Arg(args, "--out") ?? Path.Combine(Path.GetTempPath(), $"nqm-bench-sweep-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        int repeats = int.Parse(BenchSupport.Arg(args, "--repeats") ?? "1");
        // --nqm-dll: a copy of the CLI's output, so that rebuilding the repository during a long
        // benchmark cannot swap the native libraries under a starting trial.
        string dll = BenchSupport.Arg(args, "--nqm-dll") ?? Path.Combine(BenchSupport.RepoRoot(), "src", "NqmValidate.Cli", "bin", "Release", "net10.0", "nqm.dll");
        if (!File.Exists(dll)) { Console.Error.WriteLine($"{dll} missing: build the CLI first (scripts/nqm --help)."); return 2; }
        var baseSpec = SpecLoader.Load(spec);
        var runner = new SweepRunner(new ProcessTrialRunner("dotnet", [dll]));

        var pruned = new List<(double Wall, long Steps, string Dir)>();
        var exhaustive = new List<(double Wall, long Steps, string Dir)>();
        for (int r = 0; r < repeats; r++)
        {
            // Alternate which goes first so that drifting machine load does not favour one.
            foreach (bool prune in r % 2 == 0 ? new[] { true, false } : [false, true])
            {
                string dir = Path.Combine(outRoot, $"{(prune ? "pruned" : "exhaustive")}-{r}");
                var s = prune ? baseSpec : baseSpec with { Prune = false, Order = "canonical" };
                var clock = Stopwatch.StartNew();
                var summary = runner.RunAsync(new SweepOptions(s, dir, Shard.All)).GetAwaiter().GetResult();
                double wall = clock.Elapsed.TotalSeconds;
                if (!summary.Complete) { Console.Error.WriteLine($"{dir}: sweep did not complete"); return 1; }
                (prune ? pruned : exhaustive).Add((wall, summary.StepsTrained, dir));
                Console.WriteLine($"  {(prune ? "pruned    " : "exhaustive")} run {r}: {wall,7:F1} s wall, {summary.StepsTrained,9} steps trained, {summary.TrialsRunNow} trials -> {dir}");
            }
        }
        bool same = pruned.Concat(exhaustive).Select(x => Key(x.Dir)).Distinct().Count() == 1;
        double stepsRatio = (double)exhaustive[0].Steps / pruned[0].Steps;
        double wallRatio = Measure.Median(exhaustive.Select(x => x.Wall)) / Measure.Median(pruned.Select(x => x.Wall));
        Console.WriteLine($"sweep-pruning ({baseSpec.Name}, {repeats} repeat(s), medians): " +
                          $"exhaustive/pruned trained steps = {stepsRatio:F2}x, wall = {wallRatio:F2}x " +
                          $"({Measure.Median(exhaustive.Select(x => x.Wall)):F0} s vs {Measure.Median(pruned.Select(x => x.Wall)):F0} s); " +
                          $"steps.csv results identical: {(same ? "yes" : "NO")}");
        return same ? 0 : 1;
    }

    /// <summary>The result columns of steps.csv (counts of pruned trials legitimately differ).</summary>
    static string Key(string dir) =>
        string.Join("\n", File.ReadAllLines(Path.Combine(dir, "steps.csv")).Select(l => string.Join(",", l.Split(',').Take(5))));
}
