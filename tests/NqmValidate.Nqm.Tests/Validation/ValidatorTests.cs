using System.Globalization;
using NqmValidate.Nqm;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// Fit → predict → compare → report on run files whose "measured" steps were produced by an NQM with
/// the same spectrum: the zero-shot prediction must then reproduce them (a self-consistency oracle for
/// the floor, target, initial-condition and batch-size plumbing), and the report must build from the files.
/// </summary>
public class ValidatorTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "nqm-validator-" + Guid.NewGuid().ToString("N")[..8]);
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public void Dispose() { try { if (Environment.GetEnvironmentVariable("NQM_KEEP_TEST_OUTPUT") is null) Directory.Delete(_root, true); } catch (IOException) { } }

    const double InitialLoss = 2.3, TargetLoss = 0.4;
    static readonly int[] BatchSizes = [4, 16, 64, 256, 1024];

    (string sweep, string curvature) WriteRun()
    {
        // A 50-bin power-law spectrum with noise c = 2h (not tied 1:1, so c = h and measured c differ).
        var bins = Enumerable.Range(1, 50).Select(i => (h: Math.Pow(i, -1.2), count: (double)i)).ToArray();
        string curvature = Path.Combine(_root, "curvature"), sweep = Path.Combine(_root, "sweep");
        Directory.CreateDirectory(curvature); Directory.CreateDirectory(sweep);
        File.WriteAllLines(Path.Combine(curvature, "spectrum.csv"),
            ["layer,h,c,count,s0,grad_mean_sq,second_moment", .. bins.Select(b => string.Create(Inv, $"total,{b.h:R},{2 * b.h:R},{b.count},1,0,{2 * b.h:R}")),
             "fc1,1,1,1,1,0,1"]);
        File.WriteAllText(Path.Combine(curvature, "summary.json"), """{"initial_loss": 2.3, "parameters": 1275, "b_simple": {"per_example_variance": {"b_simple": 40.0}}}""");

        double s0 = 2 * InitialLoss / bins.Sum(b => b.count * b.h);
        var spectrum = new Spectrum(bins.Select(b => new SpectrumRow(b.h, 2 * b.h, s0, b.count)));
        var lines = new List<string> { "optimizer,batch_size,steps_to_target,learning_rate,momentum,trials_run,trials_reached,trials_diverged" };
        foreach (int b in BatchSizes)
        {
            var r = HyperparameterSearch.Optimize(spectrum, OptimizerKind.Sgd, b, TargetLoss, new SearchOptions { Mode = SearchMode.Continuous });
            lines.Add(string.Create(Inv, $"sgd,{b},{r.Steps},{r.LearningRate:R},,5,5,0"));
        }
        File.WriteAllLines(Path.Combine(sweep, "steps.csv"), lines);
        File.WriteAllLines(Path.Combine(sweep, "trials.csv"),
            ["study,optimizer,batch_size,trial,seed,learning_rate,momentum,status,steps_to_target,steps_run,initial_loss,final_loss",
             .. BatchSizes.Select(b => $"sgd-{b},sgd,{b},0,1,0.1,,reached,10,10,2.3,0.39")]);
        return (sweep, curvature);
    }

    [Fact]
    public void ZeroShotReproducesStepsMeasuredOnTheSameNqm()
    {
        var (sweep, curvature) = WriteRun();
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.Load(curvature), TargetLoss,
            new FitOptions { PrimaryVariant = "diagonal/measured-c" }));

        var rows = result.Comparison.Where(c => c.Variant == "diagonal/measured-c").ToArray();
        Assert.Equal(BatchSizes.Length, rows.Length);
        foreach (var row in rows)
            Assert.True(Math.Abs(row.Log2ZeroShot!.Value) < 0.05, $"B={row.BatchSize}: log2 zero-shot {row.Log2ZeroShot}");
        // c = h halves the noise: at the smallest batch size (noise-dominated) it must predict fewer steps.
        var tied = result.Comparison.Single(c => c.Variant == "diagonal/c=h" && c.BatchSize == 4);
        Assert.True(tied.Log2ZeroShot < -0.5, $"c = h at B=4: log2 {tied.Log2ZeroShot}");
        // One-point calibration on the smallest batch size: factor ≈ 1 and the point is marked, not scored.
        Assert.InRange(result.Fit.TimeScale["diagonal/measured-c"]!.Value, 0.97, 1.03);
        Assert.Single(rows, r => r.CalibrationPoint);
        var onePoint = result.Errors.Single(e => e.Variant == "diagonal/measured-c" && e.Predictor == "one-point");
        Assert.Equal(BatchSizes.Length - 1, onePoint.Points);
        // Baseline: S_min from the calibration point with B_noise = 40 from summary.json.
        var baseline = rows.Single(r => r.BatchSize == 1024).Baseline!.Value;
        double sMin = rows.Single(r => r.BatchSize == 4).MeasuredSteps!.Value / (1 + 40.0 / 4);
        Assert.Equal(sMin * (1 + 40.0 / 1024), baseline, 6);
        Assert.Equal(InitialLoss - 0, result.Fit.InitialExcess, 9);
    }

    [Fact]
    public void BaselineIsScoredForAdamWhenThePrimaryVariantHasTwoAdamMappings()
    {
        var (sweep, curvature) = WriteRun();
        File.AppendAllLines(Path.Combine(sweep, "steps.csv"), BatchSizes.Select(b => $"adam,{b},{400 / b + 20},0.001,,5,5,0"));
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.Load(curvature), TargetLoss,
            new FitOptions { PrimaryVariant = "diagonal/measured-c" }));
        var adamBaseline = result.Errors.Single(e => e.Variant == "mccandlish" && e.Optimizer == "adam");
        Assert.Equal(BatchSizes.Length, adamBaseline.Points);
        Assert.Contains(result.Comparison, c => c.Variant == "diagonal/measured-c [precond-measured]" && c.Optimizer == "adam");
    }

    [Fact]
    public void ReportIsBuiltFromTheWrittenFilesAlone()
    {
        var (sweep, curvature) = WriteRun();
        string outDir = Path.Combine(_root, "validation");
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.Load(curvature), TargetLoss, new FitOptions()));
        Validator.Write(result, outDir);
        Directory.Delete(sweep, true); // the report must not need the inputs
        Directory.Delete(curvature, true);
        var doc = ValidationReport.Build(outDir);
        doc.Save(outDir);
        string html = File.ReadAllText(Path.Combine(outDir, "report.html"));
        Assert.Contains("data:image/png;base64,", html);
        Assert.True(html.Split("<table").Length - 1 >= 4, "verdict, error, scaling and comparison tables");
        Assert.True(File.Exists(Path.Combine(outDir, "steps-sgd.png")));
        Assert.Contains("(a) sgd: perfect scaling, then diminishing returns", File.ReadAllText(Path.Combine(outDir, "report.md")));
        Assert.Equal(3, ValidationReport.Summary(outDir).Count);
    }

    [Fact]
    public void MissingColumnNamesTheFileAndTheColumn()
    {
        var (sweep, curvature) = WriteRun();
        File.WriteAllLines(Path.Combine(curvature, "spectrum.csv"), ["layer,h,count", "total,1,1"]);
        var e = Assert.Throws<NqmValidate.Reports.RunFileException>(() => CurvatureResults.Load(curvature));
        Assert.Contains("spectrum.csv", e.Message);
        Assert.Contains("missing column(s) c", e.Message);
    }

    [Fact]
    public void UnknownFitFieldIsAnError()
    {
        var json = System.Text.Json.JsonDocument.Parse("""{"floor": "zero", "flour": 1}""").RootElement;
        var e = Assert.Throws<SpecException>(() => FitOptions.Parse(json, "spec.json"));
        Assert.Contains("flour", e.Message);
        var bad = System.Text.Json.JsonDocument.Parse("""{"search": "random"}""").RootElement;
        Assert.Contains("grid, continuous", Assert.Throws<SpecException>(() => FitOptions.Parse(bad, "spec.json")).Message);
    }
}
