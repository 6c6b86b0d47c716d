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
/// The simple CNN's MC Fisher + variance taken apart, as curvature-profile does for the MLP: forward, output-gradient
/// backward passes, the convolutions' patches (nn.functional.unfold against sliding-window views), the per-example
/// products of one seed over the full chunk and in sub-batches, the fully connected products, and the engine on one
/// chunk. Medians of interleaved repeats. Args: [chunk=512] [repeats=5] [threads=1] [regex selecting steps].
/// </summary>
public sealed class CurvatureCnnProfileBenchmark : IBenchmark
{
    public string Name => "curvature-profile-cnn";
    public string Description => "pieces of the simple CNN's MC Fisher + variance, timed against the gradient of one chunk";

    public int Run(string[] args)
    {
        int chunk = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 512;
        int repeats = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
        var filter = args.Length > 3 ? new System.Text.RegularExpressions.Regex(args[3]) : null;
        TorchRuntime.Initialize(threads);
        var model = ModelRegistry.Create(new ModelSpec("cnn"), 1);
        var gen = new Generator(2);
        var x = randn([chunk, 1, 28, 28], generator: gen);
        var y = randint(0, 10, [chunk], generator: gen);
        var layers = model.named_modules().Where(m => m.module is Linear or Conv2d).Select(m => (nn.Module<Tensor, Tensor>)m.module).ToList();
        var inputs = new Tensor?[layers.Count];
        var outputs = new Tensor?[layers.Count];
        bool capture = false;
        for (int i = 0; i < layers.Count; i++)
        {
            int k = i;
            layers[i].register_forward_hook((_, inp, outp) =>
            {
                if (capture) { inputs[k] = inp.alias(); outputs[k] = outp.alias(); }
                return outp;
            });
        }
        Tensor Forward() { capture = true; try { return model.call(x); } finally { capture = false; } }
        List<Tensor> Outputs() => outputs.Select(o => o!).ToList();
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
        Tensor Unfold(int i) => nn.functional.unfold(xs[i], (5, 5), padding: (2, 2));
        var fcSq = new[] { xs[2].square(), xs[3].square() };

        Tensor ViewPatches(int layer, int s0, int b)
        {
            var xp = nn.functional.pad(xs[layer].narrow(0, s0, b), [2, 2, 2, 2]);
            long cin = xp.shape[1], h = xs[layer].shape[2];
            // (b, Cin, H, W, kh, kw) sliding windows → (b, Cin, kh, kw, H, W) → (b, Cin·kh·kw, H·W)
            return xp.unfold(2, 5, 1).unfold(3, 5, 1).permute(0, 1, 4, 5, 2, 3).reshape(b, cin * 25, h * h);
        }
        void SubBatchedView(int layer, int sub)
        {
            var acc = zeros(gys[layer].shape[1], xs[layer].shape[1] * 25);
            var accSum = zeros(gys[layer].shape[1], xs[layer].shape[1] * 25);
            for (int s0 = 0; s0 < chunk; s0 += sub)
            {
                using var sc = NewDisposeScope();
                int b = Math.Min(sub, chunk - s0);
                var p = ViewPatches(layer, s0, b);
                var w = gys[layer].narrow(0, s0, b).reshape(b, gys[layer].shape[1], -1).bmm(p.transpose(1, 2));
                accSum.add_(w.sum(0L));
                acc.add_(w.pow_(2).sum(0L));
            }
        }
        var steps = new (string Name, Action Body)[]
        {
            ("gradient (fwd+bwd)", () =>
            {
                model.zero_grad();
                nn.functional.cross_entropy(model.call(x), y, reduction: nn.Reduction.Sum).backward();
            }),
            ("forward, hooks capturing", () => Forward()),
            ("fwd + 2 bwd to outputs", () =>
            {
                var z = Forward();
                torch.autograd.grad([z], Outputs(), [seedTruth], retain_graph: true);
                torch.autograd.grad([z], Outputs(), [seedMc]);
            }),
            ("unfold (nn.functional) conv1+conv2", () => { Unfold(0); Unfold(1); }),
            ("view patches conv1+conv2", () => { ViewPatches(0, 0, chunk); ViewPatches(1, 0, chunk); }),
            ("conv2 per seed, full batch (old)", () =>
            {
                var w = gys[1].reshape(chunk, gys[1].shape[1], -1).bmm(Unfold(1).transpose(1, 2));
                w.sum(0L);
                w.square().sum(0L);
            }),
            ("conv2 per seed, sub-batches of 16", () => SubBatchedView(1, 16)),
            ("conv1 per seed, sub-batches of 16", () => SubBatchedView(0, 16)),
            ("fc1+fc2: 3 products each", () => { for (int i = 2; i < 4; i++) { gys[i].t().mm(fcSq[i - 2]); gys[i].t().mm(fcSq[i - 2]); gys[i].t().mm(xs[i]); } }),
            ("engine chunk (truth+mc)", () =>
            {
                using var engine = new PerExampleGradients(model);
                engine.AccumulateChunk(x, z => [
                    new SeedGroup("truth", [OutputLoss.Gradient(LossKind.CrossEntropy, z, y)], true),
                    new SeedGroup("mc", [OutputLoss.SampledGradient(LossKind.CrossEntropy, z, sampler)], false)]);
            }),
        };
        if (filter is not null) steps = steps.Where((st, i) => i == 0 || filter.IsMatch(st.Name)).ToArray();
        var times = steps.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < repeats + 1; r++)
            for (int s = 0; s < steps.Length; s++)
            {
                using var scope = NewDisposeScope();
                double t = Measure.Seconds(steps[s].Body);
                if (r >= 1) times[s].Add(t);
            }
        double baseline = Measure.Median(times[0]);
        Console.WriteLine($"curvature-profile-cnn: chunk {chunk}, {repeats} repeats, {threads} thread(s); medians; load {File.ReadAllText("/proc/loadavg").Trim()}");
        for (int s = 0; s < steps.Length; s++)
        {
            double m = Measure.Median(times[s]);
            Console.WriteLine($"  {steps[s].Name,-34} {m * 1e3,9:F1} ms {m / baseline,7:F2}× gradient chunk");
        }
        return 0;
    }
}
