using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// The NQM of Adam from the spectrum measured under its own preconditioner (variant eigen-P, NQM counterpart
/// precond-own): heavy ball on P^½GP^½, only for the optimizer whose trial was measured, and its baseline noise scale.
/// </summary>
public class PreconditionedVariantTests
{
    static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Counterparts = new Dictionary<string, IReadOnlyList<string>>
    {
        ["sgd"] = ["sgd"], ["momentum"] = ["momentum"], ["adam"] = ["precond-p0.5", "precond-measured", "precond-own"],
    };

    [Fact]
    public void WithPEqualToOneAdamsOwnPreconditionerNqmIsHeavyBallOnThePlainSpectrumAndItsBaselineUsesTheOwnNoiseScale()
    {
        using var host = new ValidatorTests();
        var (sweep, curvature) = host.WriteRun();
        // Momentum and Adam studies (their measured steps are not what this test looks at).
        File.AppendAllLines(Path.Combine(sweep, "steps.csv"), new[] { 4, 16, 64, 256, 1024 }.SelectMany(b => new[]
            { $"momentum,{b},{1000 / b + 5},0.01,0.9,5,5,0", $"adam,{b},{800 / b + 5},0.001,,5,5,0" }));
        // An Adam trajectory checkpoint measured under a preconditioner P = 1: its preconditioned rows repeat the plain
        // ones, so the eigen-P variant's spectrum is the eigen variant's, and Adam's own-P NQM must be heavy ball on it.
        string adam = Path.Combine(Path.GetDirectoryName(curvature)!, "trajectories", "adam-b16-r0", "loss-0.5");
        Directory.CreateDirectory(adam);
        File.Copy(Path.Combine(curvature, "spectrum.csv"), Path.Combine(adam, "spectrum.csv"));
        foreach (var file in new[] { "eigen.csv", "density.csv" })
        {
            var lines = File.ReadAllLines(Path.Combine(curvature, file));
            File.WriteAllLines(Path.Combine(adam, file), lines.Concat(lines.Skip(1).Select(l => "ggn-preconditioned" + l[3..])));
        }
        using (var plain = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(curvature, "summary.json"))))
        {
            var root = plain.RootElement;
            double traceNoise = root.GetProperty("traces").GetProperty("noise_variance").GetDouble();
            var adamSummary = new Dictionary<string, object>
            {
                ["checkpoint"] = "loss-0.5 (step 40)", ["examples"] = root.GetProperty("examples").GetDouble(), ["initial_loss"] = 0.49,
                ["parameters"] = root.GetProperty("parameters").GetDouble(), ["traces"] = new Dictionary<string, double> { ["noise_variance"] = traceNoise },
                ["b_simple"] = new Dictionary<string, object> { ["per_example_variance"] = new Dictionary<string, double> { ["b_simple"] = 40 } },
                ["preconditioned"] = new Dictionary<string, object> { ["source"] = "adam trial's own state at step 40 (B = 16)", ["trace_noise"] = traceNoise, ["b_simple"] = 77.0 },
            };
            File.WriteAllText(Path.Combine(adam, "summary.json"), System.Text.Json.JsonSerializer.Serialize(adamSummary));
        }
        var checkpoints = new[] { CurvatureResults.Load(curvature), CurvatureResults.Load(adam) with { Name = "adam-b16-r0/loss-0.5" } };
        var options = new FitOptions { Sensitivity = false, EosMargin = 0, EdgeOfStability = false, Checkpoint = "adam-b16-r0/loss-0.5" };
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), checkpoints, 0.5, options, Counterparts));

        var own = result.Predictions.Where(p => p.Variant == "eigen-P/measured-c").ToList();
        Assert.Equal(5, own.Count);
        Assert.All(own, p => Assert.Equal(("adam", "precond-own"), (p.Optimizer, p.NqmOptimizer))); // nobody else's, and only as itself
        Assert.DoesNotContain(result.Predictions, p => p.NqmOptimizer == "precond-own" && p.Variant != "eigen-P/measured-c" && p.Variant != "eigen-P/c=h");
        var heavyBall = result.Predictions.Where(p => p.Variant == "eigen/measured-c" && p.Optimizer == "momentum").ToDictionary(p => p.BatchSize);
        foreach (var p in own)
        {
            Assert.True(p.StepsZeroShot is > 0, $"B = {p.BatchSize}: no prediction");
            Assert.Equal(heavyBall[p.BatchSize].StepsZeroShot, p.StepsZeroShot);
        }
        var baseline = result.Fit.Baselines.Single(b => b.Optimizer == "adam");
        Assert.Equal(77.0, baseline.BNoise);
        Assert.Contains("own P", baseline.Source);
        // In the sensitivity table, Adam's own-P curve has its S(B) fit (from its precond-own predictions: its only counterpart there).
        var withSensitivity = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), checkpoints, 0.5, options with { Sensitivity = true }, Counterparts));
        var ownRows = withSensitivity.Sensitivity.Where(r => r.Checkpoint == "adam-b16-r0/loss-0.5" && r.Variant == "eigen-P/measured-c" && r.Optimizer == "adam").ToList();
        Assert.NotEmpty(ownRows);
        Assert.All(ownRows, r => Assert.NotEqual("no fit", r.PredictedBNoiseLabel));
        // The plain checkpoint has no such measurement: no eigen-P variant there.
        Assert.Null(NqmVariantBuilder.EigenPreconditioned(checkpoints[0], tiedNoise: false));
    }
}
