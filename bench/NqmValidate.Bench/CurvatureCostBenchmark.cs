using System.Globalization;
using NqmValidate.Curvature;
using NqmValidate.Curvature.Operators;
using NqmValidate.Curvature.PerExample;
using NqmValidate.Training.Models;
using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// Cost of the curvature diagonals relative to the plain gradient over the same examples (issue 5):
/// MC Fisher diagonal + noise variance ≤ 3×, exact GGN diagonal ≤ (C + 2)×, for the MLP and the simple CNN,
/// and the fast path ≥ 20× faster than the per-example loop on the MLP. Every ratio is a ratio of medians
/// measured in the same run, the measurements interleaved so that machine load hits all of them alike.
/// Inputs are random 28×28 images with random labels: the cost does not depend on the pixel values.
/// Args: [examples=2048] [repeats=5] [threads=1] [models=mlp,cnn].
/// </summary>
public sealed class CurvatureCostBenchmark : IBenchmark
{
    public string Name => "curvature-cost";
    public string Description => "MC Fisher/GGN diagonals vs the plain gradient; fast path vs per-example loop";

    const int Classes = 10, Chunk = 512;

    public int Run(string[] args)
    {
        int examples = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 2048;
        int repeats = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
        var models = args.Length > 3 ? args[3].Split(',') : ["mlp", "cnn"];
        TorchRuntime.Initialize(threads);
        Console.Out.Flush();
        Console.WriteLine($"curvature-cost: {examples} examples, chunks of {Chunk}, {repeats} repeats, {threads} thread(s); medians in seconds");
        bool ok = true;
        foreach (var name in models)
        {
            var model = ModelRegistry.Create(new ModelSpec(name), 1);
            var gen = new Generator(2);
            var x = randn([examples, 1, 28, 28], generator: gen);
            var y = randint(0, Classes, [examples], generator: gen);
            var problem = new CurvatureProblem(model, x, y, LossKind.CrossEntropy, Chunk);
            var mcOptions = new DiagonalOptions { ChunkSize = Chunk, ExactGgn = false, McSamples = 1 };
            var ggnOptions = new DiagonalOptions { ChunkSize = Chunk, ExactGgn = true, McSamples = 0 };
            var v = randn(problem.Dimension, dtype: ScalarType.Float64, generator: gen);
            var hessian = new HessianOperator(problem);
            var ggn = new GgnOperator(problem);

            // Warm-up: first calls allocate and JIT.
            Gradient(problem);
            Diagonals.Compute(model, x, y, mcOptions);

            var times = new Dictionary<string, List<double>>();
            if (Environment.GetEnvironmentVariable("CURV_PROFILE") == "1")
            {
                for (int r = 0; r < 3; r++)
                {
                    foreach (var (label, groups) in new (string, Func<Tensor, Tensor, IReadOnlyList<SeedGroup>>)[] {
                        ("forward only", (z, yy) => []),
                        ("truth", (z, yy) => [new SeedGroup("t", [OutputLoss.Gradient(LossKind.CrossEntropy, z, yy)], true)]),
                        ("truth nosum", (z, yy) => [new SeedGroup("t", [OutputLoss.Gradient(LossKind.CrossEntropy, z, yy)], false)]),
                        ("truth+mc", (z, yy) => [new SeedGroup("t", [OutputLoss.Gradient(LossKind.CrossEntropy, z, yy)], true), new SeedGroup("m", [OutputLoss.Gradient(LossKind.CrossEntropy, z, yy)], false)]) })
                    {
                        var engine = new PerExampleGradients(model);
                        double t = Measure.Seconds(() => { foreach (var (s0, l) in problem.Chunks()) { var yy = y.narrow(0, s0, l); engine.AccumulateChunk(x.narrow(0, s0, l), z => groups(z, yy)); } });
                        double read = Measure.Seconds(() => { foreach (var p in engine.Parameters) { engine.SumOfSquares("t", p.Name); engine.Sum("t", p.Name); } });
                        engine.Dispose();
                        Console.WriteLine($"  profile {label,-14} {t:F4} s, read {read:F4} s, gradient {Measure.Seconds(() => Gradient(problem)):F4} s");
                    }
                }
            }
            void Time(string key, Action action) => (times.TryGetValue(key, out var l) ? l : times[key] = []).Add(Measure.Seconds(action));
            for (int r = 0; r < repeats; r++)
            {
                Time("gradient", () => Gradient(problem));
                Time("mc_fisher+variance", () => Diagonals.Compute(model, x, y, mcOptions));
                Time("exact_ggn", () => Diagonals.Compute(model, x, y, ggnOptions));
                if (name != "mlp") continue; // operator products are informative only; skip them where a repeat is minutes
                Time("hessian_vector", () => hessian.Multiply(v));
                Time("ggn_vector", () => ggn.Multiply(v));
            }
            double baseline = Measure.Median(times["gradient"]);
            Console.WriteLine($"\n{name} ({problem.Dimension:N0} parameters)");
            Console.WriteLine($"  {"quantity",-22} {"median s",10} {"× gradient",12}  bound");
            foreach (var (key, list) in times)
            {
                double median = Measure.Median(list), ratio = median / baseline;
                string bound = key switch { "mc_fisher+variance" => "≤ 3", "exact_ggn" => $"≤ {Classes + 2}", _ => "" };
                bool pass = key switch { "mc_fisher+variance" => ratio <= 3, "exact_ggn" => ratio <= Classes + 2, _ => true };
                ok &= pass;
                Console.WriteLine($"  {key,-22} {median,10:F4} {ratio,12:F2}  {bound}{(bound.Length > 0 ? (pass ? " ok" : " MISSED") : "")}");
            }

            if (name == "mlp")
            {
                // Fast path vs the per-example loop, same quantity (MC Fisher + variance), on a subset for the loop's sake.
                int loopExamples = Math.Min(examples, 512);
                var xs = x.narrow(0, 0, loopExamples);
                var ys = y.narrow(0, 0, loopExamples);
                var fast = new List<double>();
                var loop = new List<double>();
                for (int r = 0; r < Math.Max(3, repeats / 2); r++)
                {
                    fast.Add(Measure.Seconds(() => Diagonals.Compute(model, xs, ys, mcOptions)));
                    loop.Add(Measure.Seconds(() => Diagonals.Compute(model, xs, ys, mcOptions with { Paths = PathPolicy.ForceLoop })));
                }
                double speedup = Measure.Median(loop) / Measure.Median(fast);
                ok &= speedup >= 20;
                Console.WriteLine($"  fast path vs per-example loop on {loopExamples} examples: {Measure.Median(fast):F4} s vs {Measure.Median(loop):F4} s, speed-up {speedup:F1}× (bound ≥ 20{(speedup >= 20 ? " ok" : " MISSED")})");
            }
            model.Dispose();
        }
        return ok ? 0 : 1;
    }

    /// <summary>The baseline: gradient of the mean loss over the examples, chunk by chunk, as training computes it.</summary>
    static void Gradient(CurvatureProblem problem)
    {
        problem.Model.zero_grad();
        foreach (var (start, length) in problem.Chunks())
        {
            using var scope = NewDisposeScope();
            var loss = nn.functional.cross_entropy(problem.Model.call(problem.Inputs.narrow(0, start, length)), problem.Targets.narrow(0, start, length),
                reduction: nn.Reduction.Sum) / problem.Examples;
            loss.backward();
        }
    }
}
