using System.Globalization;
using NqmValidate.Curvature;
using NqmValidate.Curvature.PerExample;
using NqmValidate.Training.Models;
using NqmValidate.Training.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// Where the MC Fisher + noise variance of the MLP (784-256-256-10) spends its time: the pieces of one chunk (forward,
/// output-gradient backward passes, seeds, squares, weight-sized products) timed one by one at the real shapes, the
/// engine over four chunks with and without the read-out, against the plain gradient of the same chunk. Medians of
/// interleaved repeats, with minor page faults and gen-2 collections per call (first touches of fresh memory are what
/// allocations cost on a loaded machine). Args: [chunk=512] [repeats=21] [threads=1] [regex selecting steps].
/// </summary>
public sealed class CurvatureProfileBenchmark : IBenchmark
{
    public string Name => "curvature-profile";
    public string Description => "pieces of the MLP's MC Fisher + variance, timed against the gradient of one chunk";

    public int Run(string[] args)
    {
        int chunk = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 512;
        int repeats = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 21;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
        var filter = args.Length > 3 ? new System.Text.RegularExpressions.Regex(args[3]) : null;
        TorchRuntime.Initialize(threads);
        var model = ModelRegistry.Create(new ModelSpec("mlp"), 1);
        var gen = new Generator(2);
        const int Chunks = 4;
        var xAll = randn([Chunks * chunk, 1, 28, 28], generator: gen);
        var yAll = randint(0, 10, [Chunks * chunk], generator: gen);
        var x = xAll.narrow(0, 0, chunk);
        var y = yAll.narrow(0, 0, chunk);
        var linears = model.named_modules().Where(m => m.module is Linear).Select(m => (Linear)m.module).ToList();

        // Hooks as the engine sets them: keep input and output of every Linear (only while capturing).
        var inputs = new Tensor?[linears.Count];
        var outputs = new Tensor?[linears.Count];
        bool capture = false;
        var removeHooks = new List<Action>();
        for (int i = 0; i < linears.Count; i++)
        {
            int k = i;
            var remover = linears[i].register_forward_hook((_, inp, outp) =>
            {
                if (capture) { inputs[k] = inp.alias(); outputs[k] = outp.alias(); }
                return outp;
            });
            removeHooks.Add(remover.remove);
        }
        Tensor Forward() { capture = true; try { return model.call(x); } finally { capture = false; } }
        List<Tensor> Outputs() => outputs.Select(o => o!).ToList();

        // Fixed tensors at the real shapes for the isolated pieces.
        Tensor z0;
        List<Tensor> xs, gys;
        using (no_grad())
        {
            z0 = Forward();
            xs = inputs.Select(t => t!.clone()).ToList();
            gys = outputs.Select(t => randn_like(t!)).ToList();
        }
        var sampler = new Generator(1);
        var seedTruth = OutputLoss.Gradient(LossKind.CrossEntropy, z0, y);
        var seedMc = OutputLoss.SampledGradient(LossKind.CrossEntropy, z0, new Generator(5));
        var xsq = xs.Select(t => t.square()).ToList();
        var mcOptions = new DiagonalOptions { ChunkSize = chunk, ExactGgn = false, McSamples = 1 };
        IReadOnlyList<SeedGroup> Seeds(Tensor z, Tensor targets) =>
        [
            new SeedGroup("truth", [OutputLoss.Gradient(LossKind.CrossEntropy, z, targets)], true),
            new SeedGroup("mc", [OutputLoss.SampledGradient(LossKind.CrossEntropy, z, sampler)], false),
        ];

        var steps = new (string Name, Action Body)[]
        {
            ("gradient (fwd+bwd)", () =>
            {
                model.zero_grad();
                nn.functional.cross_entropy(model.call(x), y, reduction: nn.Reduction.Sum).backward();
            }),
            ("forward, hooks capturing", () => Forward()),
            ("fwd + 1 bwd to outputs", () => torch.autograd.grad([Forward()], Outputs(), [seedTruth], retain_graph: true)),
            ("fwd + 2 bwd to outputs", () =>
            {
                var z = Forward();
                torch.autograd.grad([z], Outputs(), [seedTruth], retain_graph: true);
                torch.autograd.grad([z], Outputs(), [seedMc]);
            }),
            ("seeds: loss, truth, sampled", () =>
            {
                OutputLoss.PerExample(LossKind.CrossEntropy, z0, y).sum();
                OutputLoss.Gradient(LossKind.CrossEntropy, z0, y);
                OutputLoss.SampledGradient(LossKind.CrossEntropy, z0, sampler);
            }),
            ("x² all layers", () => { foreach (var t in xs) t.square(); }),
            ("gy² ×2 all layers", () => { foreach (var g in gys) { g.square(); g.square(); } }),
            ("products: 2× (gy²)ᵀx² all layers", () => { for (int i = 0; i < xs.Count; i++) { gys[i].t().mm(xsq[i]); gys[i].t().mm(xsq[i]); } }),
            ("products: gyᵀx all layers", () => { for (int i = 0; i < xs.Count; i++) gys[i].t().mm(xs[i]); }),
            ($"{Chunks} chunks: gradient", () =>
            {
                model.zero_grad();
                for (int c = 0; c < Chunks; c++)
                {
                    using var scope = NewDisposeScope();
                    (nn.functional.cross_entropy(model.call(xAll.narrow(0, c * chunk, chunk)), yAll.narrow(0, c * chunk, chunk),
                        reduction: nn.Reduction.Sum) / (Chunks * chunk)).backward();
                }
            }),
            ($"{Chunks} chunks: engine, no read-out", () =>
            {
                using var engine = new PerExampleGradients(model);
                for (int c = 0; c < Chunks; c++)
                {
                    var targets = yAll.narrow(0, c * chunk, chunk);
                    engine.AccumulateChunk(xAll.narrow(0, c * chunk, chunk), z => Seeds(z, targets));
                }
            }),
            ("read-out alone (after 4 chunks)", () => { }),
            ($"{Chunks} chunks: Diagonals.Compute", () => Diagonals.Compute(model, xAll, yAll, mcOptions)),
        };
        // The read-out alone: timed inside a separate engine run, reported in place of the empty step above.
        var readOuts = new List<double>();
        int readOutStep = Array.FindIndex(steps, st => st.Name.StartsWith("read-out alone"));
        steps[readOutStep].Body = () =>
        {
            using var engine = new PerExampleGradients(model);
            for (int c = 0; c < Chunks; c++)
            {
                var targets = yAll.narrow(0, c * chunk, chunk);
                engine.AccumulateChunk(xAll.narrow(0, c * chunk, chunk), z => Seeds(z, targets));
            }
            var watch = System.Diagnostics.Stopwatch.StartNew();
            double inv = 1.0 / (Chunks * chunk);
            var diagonals = engine.Parameters.Select(p => new ParameterDiagonal(p.Name, p.Layer, p.Shape, p.Path, null,
                engine.SumOfSquares("mc", p.Name, inv), engine.Sum("truth", p.Name, inv), engine.SumOfSquares("truth", p.Name, inv))).ToList();
            readOuts.Add(watch.Elapsed.TotalSeconds);
        };
        if (filter is not null) steps = steps.Where((st, i) => i == 0 || filter.IsMatch(st.Name)).ToArray();

        var times = steps.Select(_ => new List<double>()).ToArray();
        var faults = new long[steps.Length];
        var collections = new int[steps.Length];
        for (int r = 0; r < repeats + 2; r++)
            for (int s = 0; s < steps.Length; s++)
            {
                using var scope = NewDisposeScope();
                long f0 = MinorFaults();
                int g0 = GC.CollectionCount(2);
                double t = Measure.Seconds(steps[s].Body);
                if (r < 2) continue; // warm-up rounds
                times[s].Add(t);
                faults[s] += MinorFaults() - f0;
                collections[s] += GC.CollectionCount(2) - g0;
            }
        foreach (var remove in removeHooks) remove();

        double baseline = Measure.Median(times[0]);
        Console.WriteLine($"curvature-profile: MLP, chunks of {chunk}, {repeats} repeats, {threads} thread(s); medians; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"  {"step",-34} {"ms",9} {"× gradient chunk",17} {"page faults",12} {"gen2 GCs",9}");
        for (int s = 0; s < steps.Length; s++)
        {
            double m = steps[s].Name.StartsWith("read-out alone") ? Measure.Median(readOuts.Skip(2)) : Measure.Median(times[s]);
            Console.WriteLine($"  {steps[s].Name,-34} {m * 1e3,9:F3} {m / baseline,17:F2} {faults[s] / repeats,12} {(double)collections[s] / repeats,9:F2}");
        }
        return 0;
    }

    /// <summary>Minor page faults of this process so far (/proc/self/stat, field 10).</summary>
    static long MinorFaults()
    {
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], CultureInfo.InvariantCulture);
    }
}
