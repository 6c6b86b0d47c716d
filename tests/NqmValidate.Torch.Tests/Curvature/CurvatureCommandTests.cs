using System.Globalization;
using System.Text.Json;
using NqmValidate.Cli;
using NqmValidate.Cli.Commands;
using NqmValidate.Curvature;
using NqmValidate.Curvature.Output;
using NqmValidate.Training.Data;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>`nqm curvature`: flags over spec over defaults, bad input, and one end-to-end run on real Fashion-MNIST.</summary>
public class CurvatureCommandTests
{
    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "nqm-curv-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    static CurvatureRunRequest Parse(params string[] args) =>
        CurvatureCommand.ToRequest(NqmApp.BuildRoot().Parse(["curvature", .. args]));

    [Fact]
    public void FlagsOverrideTheSpecWhichOverridesTheDefaults()
    {
        string dir = TempDir();
        string spec = Path.Combine(dir, "exp.json");
        File.WriteAllText(spec, """
            // an experiment spec: only seed, workload and curvature matter to this stage
            {
              "name": "x", "seed": 5, "batch_sizes": [16],
              "workload": { "model": { "name": "mlp", "hidden_widths": [32, 16] }, "data": { "dir": "/data/fm" } },
              "curvature": { "examples": 256, "checkpoint": ["init", "warmup:20"], "top_k": 3, "warmup": { "learning_rate": 0.05, "batch_size": 64 } }
            }
            """);
        var r = Parse("--spec", spec, "--out", dir, "--top-k", "4");
        Assert.Equal("mlp", r.Model.Name);
        Assert.Equal([32, 16], r.Model.HiddenWidths!);
        Assert.Equal("/data/fm", r.DataDir);
        Assert.Equal(256, r.Settings.Examples);
        Assert.Equal(4, r.Settings.TopK);
        Assert.Equal([0L, 20L], r.Checkpoints.Select(c => c.Steps).ToArray());
        Assert.Equal(0.05, r.Optimizer.LearningRate);
        Assert.Equal(64, r.BatchSize);
        Assert.Equal(5, r.Seed);

        var defaults = Parse("--out", dir);
        // Protocol v2's floor for the measurement (#10 item 5): ≥ 16,384 examples, SLQ ≥ 20 probes × ≥ 80 steps.
        Assert.Equal(16384, defaults.Settings.Examples);
        Assert.Equal((20, 80), (defaults.Settings.SlqProbes, defaults.Settings.SlqSteps));
        Assert.Equal("init", defaults.Checkpoints.Single().ToString());
        Assert.Equal(128, defaults.BatchSize);
    }

    [Fact]
    public void EveryExperimentSpecInTheRepositoryGivesAModelAndValidSettings()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NqmValidate.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        var specs = Directory.GetFiles(Path.Combine(dir!.FullName, "experiments"), "*.json");
        Assert.NotEmpty(specs);
        foreach (var spec in specs)
        {
            using (var doc = JsonDocument.Parse(File.ReadAllText(spec), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }))
                if (!doc.RootElement.TryGetProperty("workload", out _))
                {
                    // Not an experiment spec (e.g. an NQM-only spec): --spec must refuse it by name.
                    var e = Assert.Throws<CurvatureInputException>(() => CurvatureSpecFile.Load(spec));
                    Assert.Contains("workload.model", e.Message);
                    continue;
                }
            var values = CurvatureSpecFile.Load(spec);
            Assert.NotNull(values.Model);
            NqmValidate.Training.Models.ModelRegistry.Resolve(values.Model!);
            (values.Settings ?? new CurvatureSettings()).Validate();
        }
    }

    [Fact]
    public void BadInputNamesTheFileAndTheField()
    {
        string dir = TempDir();
        string spec = Path.Combine(dir, "exp.json");
        File.WriteAllText(spec, """{ "workload": { "model": { "name": "mlp" } }, "curvature": { "exampels": 10 } }""");
        var e = Assert.Throws<CurvatureInputException>(() => Parse("--spec", spec, "--out", dir));
        Assert.Contains("curvature.exampels", e.Message);
        Assert.Contains(spec, e.Message);
        Assert.Throws<CurvatureInputException>(() => Parse("--out", dir, "--checkpoint", "warmup:ten"));
        Assert.Equal(ExitCodes.BadInput, NqmApp.RunAsync(["curvature", "--out", dir, "--examples", "1", "--quiet"]).Result);
    }

    [Fact]
    public void EndToEndOnFashionMnistWritesEveryFileAtTwoCheckpoints()
    {
        string data = FashionMnist.ResolveDirectory(null);
        Assert.True(File.Exists(Path.Combine(data, FashionMnist.TrainImages + ".gz")) || File.Exists(Path.Combine(data, FashionMnist.TrainImages)),
            $"Fashion-MNIST not found in {data}. {FashionMnist.InstallHint}");
        string outDir = TempDir();
        int code = NqmApp.RunAsync(["curvature", "--hidden-widths", "16", "--examples", "96", "--chunk-size", "40",
            "--checkpoint", "init,warmup:5", "--batch-size", "16", "--top-k", "2", "--lanczos-steps", "6", "--hutchinson-probes", "3",
            "--slq-probes", "1", "--slq-steps", "5", "--small-batch", "8", "--parameters-bin", "--out", outDir, "--quiet"]).Result;
        Assert.Equal(ExitCodes.Ok, code);
        long parameters = 784 * 16 + 16 + 16 * 10 + 10;
        foreach (var label in new[] { "init", "warmup-5" })
        {
            string dir = Path.Combine(outDir, label);
            foreach (var f in new[] { "spectrum.csv", "eigen.csv", "density.csv", "summary.json", "parameters.bin", "c_vs_h.png", "h_c_distribution.png", "eigenvalues.png", "density.png" })
                Assert.True(File.Exists(Path.Combine(dir, f)), $"{label}/{f} missing");
            var lines = File.ReadAllLines(Path.Combine(dir, "spectrum.csv"));
            Assert.Equal("layer,h,c,count,s0,grad_mean_sq,second_moment,h_lo,h_hi", lines[0]);
            var total = lines.Skip(1).Select(l => l.Split(',')).Where(c => c[0] == "total").ToList();
            using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")));
            long zero = summary.RootElement.GetProperty("zero_curvature_parameters").GetInt64();
            Assert.Equal(parameters, total.Sum(c => long.Parse(c[3], CultureInfo.InvariantCulture)) + zero);
            Assert.Equal(label == "init" ? "init" : "warmup:5", summary.RootElement.GetProperty("checkpoint").GetString());
            Assert.True(summary.RootElement.GetProperty("b_simple").GetProperty("two_batch").GetProperty("b_simple").ValueKind == JsonValueKind.Number);
            var (names, arrays) = CurvatureFiles.ReadParameters(Path.Combine(dir, "parameters.bin"));
            Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], names.ToArray());
            Assert.Equal(CurvatureFiles.ParameterArrays, arrays.Keys.ToArray());
            Assert.All(arrays.Values, a => Assert.Equal(parameters, a.Length));
            // The binned h is the mean of parameters.bin's h_ggn over each bin: the totals agree.
            double binned = total.Sum(c => double.Parse(c[1], CultureInfo.InvariantCulture) * long.Parse(c[3], CultureInfo.InvariantCulture));
            Assert.Equal(arrays["h_ggn"].Where(h => h > 0).Sum(), binned, 1e-9 * binned);
            double weights = File.ReadAllLines(Path.Combine(dir, "density.csv")).Skip(1).Select(l => l.Split(','))
                .Where(c => c[0] == "ggn").Sum(c => double.Parse(c[2], CultureInfo.InvariantCulture));
            Assert.Equal(1.0, weights, 1e-9);
            // Costs are stated in gradient passes over the same examples: every stage's ratio is its seconds over the
            // timed pass, and the total their sum.
            var root = summary.RootElement;
            double pass = root.GetProperty("gradient_pass_seconds").GetDouble();
            Assert.True(pass > 0);
            var ratios = root.GetProperty("cost_in_gradient_passes").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
            var seconds = root.GetProperty("seconds").EnumerateObject().Where(p => p.Name != "diagonals_inner").ToDictionary(p => p.Name, p => p.Value.GetDouble());
            foreach (var (stage, s) in seconds) Assert.Equal(s / pass, ratios[stage], 1e-9 * ratios[stage] + 1e-12);
            Assert.Equal(seconds.Values.Sum() / pass, ratios["total"], 1e-9 * ratios["total"]);
            var bulk = root.GetProperty("bulk_below").GetProperty("ggn");
            Assert.Equal(1e-3, bulk.GetProperty("threshold").GetDouble());
            Assert.InRange(bulk.GetProperty("fraction").GetDouble(), 0.0, 1.0);
        }
    }
}
