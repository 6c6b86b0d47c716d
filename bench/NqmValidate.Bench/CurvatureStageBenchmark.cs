using System.Globalization;
using NqmValidate.Curvature;
using NqmValidate.Curvature.Operators;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// The whole curvature stage of an experiment (default: the quick one, experiments/fmnist-mlp-quick.json, checkpoints
/// init and warmup:200, as `nqm validate` runs it: plots on, its thread count) with the settings it had before the
/// protocol-v2 defaults (2,048 examples, SLQ 4 probes × 40 steps) and with today's defaults, alternating, in one run:
/// wall seconds of each, their medians, the ratio new/old, and where each configuration's time went (summary.json's
/// seconds per estimator, in gradient passes). `matvec` instead times operator products over real examples: one vector
/// at a time against several per forward pass, per vector in gradient passes.
/// Args: [repeats=3] [--spec FILE] [--threads 2] [--only old|new] [--keep DIR]
///    or matvec [examples=16384] [vectors=5] [repeats=3] [--threads 1] [--chunk 512].
/// </summary>
public sealed class CurvatureStageBenchmark : IBenchmark
{
    public string Name => "curvature-stage";
    public string Description => "curvature stage of the quick experiment: pre-v2 settings vs today's defaults; `matvec`: batched products";

    /// <summary>What the stage measured before protocol v2 (#10 item 5) raised the defaults.</summary>
    public static CurvatureSettings OldDefaults(CurvatureSettings s) => s with { Examples = 2048, SlqProbes = 4, SlqSteps = 40 };

    public int Run(string[] args)
    {
        if (args.Length > 0 && args[0] == "matvec") return MatVec(args[1..]);
        var positional = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        int repeats = positional.Length > 0 ? int.Parse(positional[0], CultureInfo.InvariantCulture) : 3;
        string spec = BenchSupport.Arg(args, "--spec") ?? Path.Combine(BenchSupport.RepoRoot(), "experiments", "fmnist-mlp-quick.json");
        int threads = int.Parse(BenchSupport.Arg(args, "--threads") ?? "2", CultureInfo.InvariantCulture);
        string? only = BenchSupport.Arg(args, "--only");
        string root = BenchSupport.Arg(args, "--keep") ?? Path.Combine(Path.GetTempPath(), $"nqm-bench-curvature-stage-{Environment.ProcessId}");

        var values = CurvatureSpecFile.Load(spec);
        var template = values.ToRequest(root) with { Threads = threads };
        var configurations = new (string Name, CurvatureSettings Settings)[]
        {
            ("old", OldDefaults(template.Settings)), ("new", template.Settings),
        }.Where(c => only is null || c.Name == only).ToArray();
        Console.WriteLine($"curvature-stage: {spec}, checkpoints {string.Join(", ", template.Checkpoints)}, {threads} thread(s), {repeats} repeat(s), alternating");
        foreach (var (name, s) in configurations)
            Console.WriteLine($"  {name}: {s.Examples} examples, chunks of {s.ChunkSize}, operators {string.Join(",", s.Operators)}, Hutchinson {s.HutchinsonProbes}, " +
                              $"top {s.TopK}, SLQ {s.SlqProbes} × {s.SlqSteps}");
        var wall = configurations.ToDictionary(c => c.Name, _ => new List<double>());
        var profiles = configurations.ToDictionary(c => c.Name, _ => new List<IReadOnlyList<CheckpointResult>>());
        for (int r = 0; r < repeats; r++)
        {
            foreach (var (name, settings) in r % 2 == 0 ? configurations : configurations.Reverse())
            {
                string before = BenchSupport.LoadAverage();
                IReadOnlyList<CheckpointResult> results = [];
                double seconds = Measure.Seconds(() => results = CurvatureRun.Execute(template with
                {
                    Settings = settings, OutDir = Path.Combine(root, $"{name}-{r}"),
                }));
                wall[name].Add(seconds);
                profiles[name].Add(results);
                Console.WriteLine($"  run {r + 1} {name}: {seconds / 60:F2} min (load {before} → {BenchSupport.LoadAverage()})");
                Console.Out.Flush();
            }
        }
        foreach (var (name, _) in configurations)
        {
            Console.WriteLine($"{name}: median {Measure.Median(wall[name]) / 60:F2} min over {wall[name].Count}; " +
                              $"last run's cost per checkpoint (gradient pass = 1 over the same examples):");
            foreach (var c in profiles[name][^1])
            {
                var rep = c.Report;
                var parts = string.Join(", ", rep.Seconds.Where(kv => kv.Key != "diagonals_inner")
                    .Select(kv => $"{kv.Key} {kv.Value:F1} s ({kv.Value / rep.GradientPassSeconds:F0})"));
                Console.WriteLine($"    {c.Checkpoint}: gradient pass {rep.GradientPassSeconds:F3} s, total {rep.Seconds.Where(kv => kv.Key != "diagonals_inner").Sum(kv => kv.Value):F1} s " +
                                  $"({rep.CostInGradientPasses:F0} passes); {parts}");
            }
        }
        if (wall.ContainsKey("old") && wall.ContainsKey("new"))
            Console.WriteLine($"ratio new/old (medians): {Measure.Median(wall["new"]) / Measure.Median(wall["old"]):F2}; load now {BenchSupport.LoadAverage()}");
        if (BenchSupport.Arg(args, "--keep") is null) Directory.Delete(root, recursive: true);
        return 0;
    }

    /// <summary>GGN and Hessian products over the first N training examples of Fashion-MNIST at initialisation.</summary>
    static int MatVec(string[] args)
    {
        var positional = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
        int examples = positional.Length > 0 ? int.Parse(positional[0], CultureInfo.InvariantCulture) : 16384;
        int vectors = positional.Length > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : 5;
        int repeats = positional.Length > 2 ? int.Parse(positional[2], CultureInfo.InvariantCulture) : 3;
        int threads = int.Parse(BenchSupport.Arg(args, "--threads") ?? "1", CultureInfo.InvariantCulture);
        int chunk = int.Parse(BenchSupport.Arg(args, "--chunk") ?? "512", CultureInfo.InvariantCulture);
        TorchRuntime.Initialize(threads);
        using var data = FashionMnist.Load(null);
        var model = ModelRegistry.Create(new ModelSpec(), 1);
        model.eval();
        var problem = new CurvatureProblem(model, data.Train.Images.narrow(0, 0, examples), data.Train.Labels.narrow(0, 0, examples), LossKind.CrossEntropy, chunk);
        var gen = new Generator(3);
        var vs = Enumerable.Range(0, vectors).Select(_ => randn(problem.Dimension, dtype: ScalarType.Float64, generator: gen)).ToList();
        var parameters = problem.Parameters();
        void Gradient()
        {
            foreach (var (start, length) in problem.Chunks())
            {
                using var scope = NewDisposeScope();
                var loss = OutputLoss.PerExample(problem.Loss, model.call(problem.Inputs.narrow(0, start, length)), problem.Targets.narrow(0, start, length)).sum() / examples;
                torch.autograd.grad([loss], parameters);
            }
        }
        Console.WriteLine($"curvature-stage matvec: MLP at init, {examples} examples, chunks of {chunk}, {vectors} vectors, {repeats} repeats, {threads} thread(s); load {BenchSupport.LoadAverage()}");
        Gradient();
        var times = new Dictionary<string, List<double>>();
        void Add(string key, double s) { if (!times.TryGetValue(key, out var l)) times[key] = l = []; l.Add(s); }
        for (int r = 0; r < repeats; r++)
        {
            Add("gradient", Measure.Seconds(Gradient));
            foreach (ICurvatureOperator op in new ICurvatureOperator[] { new GgnOperator(problem), new HessianOperator(problem) })
            {
                Add($"{op.Name} one at a time", Measure.Seconds(() => { foreach (var v in vs) { using var s = NewDisposeScope(); op.Multiply(v); } }) / vectors);
                Add($"{op.Name} {vectors} per pass", Measure.Seconds(() => { using var s = NewDisposeScope(); op.MultiplyMany(vs); }) / vectors);
            }
        }
        double g = Measure.Median(times["gradient"]);
        foreach (var (key, list) in times)
            Console.WriteLine($"  {key,-24} {Measure.Median(list):F3} s per vector ({Measure.Median(list) / g:F2} gradient passes)");
        Console.WriteLine($"load {BenchSupport.LoadAverage()}");
        return 0;
    }
}
