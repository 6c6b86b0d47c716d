using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// The committed quick run (experiments/results/fmnist-mlp-quick) reproduced file for file: the fit on its sweep and
/// curvature files must write exactly the validation/*.csv and fit.json committed beside them, and the report built
/// from those files exactly its report.md. Every stage of <see cref="Validator"/> (fit, predict, calibrate, compare,
/// scaling, verdicts, sensitivity) and every section of <see cref="ValidationReport"/> feeds one of these files, so a
/// stage that changes its output by one digit fails here. The fit trial's longer curve is read from the committed
/// fit-curve.csv (what `nqm fit` wrote after replaying the trial), so no training runs.
/// A deliberate change of the fit's behaviour must re-fit the committed run (its README says how) in the same commit.
/// </summary>
public class CommittedRunTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "nqm-committed-run-" + Guid.NewGuid().ToString("N")[..8]);
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public void Dispose() { try { if (Environment.GetEnvironmentVariable("NQM_KEEP_TEST_OUTPUT") is null) Directory.Delete(_root, true); } catch (IOException) { } }

    static string Run() => CommittedRuns.Run("fmnist-mlp-quick");

    static string Committed(string name) => Path.Combine(Run(), "validation", name);

    /// <summary>The inputs `nqm fit` read for the committed run: its options (fit.json), the warmup-200 checkpoint and its sibling, and the longer fit curve.</summary>
    static ValidationInputs CommittedInputs(string fitCurvePath)
    {
        using var fit = JsonDocument.Parse(File.ReadAllText(Committed(ValidationFileNames.Fit)));
        var options = FitOptions.Parse(fit.RootElement.GetProperty("options").Clone(), Committed(ValidationFileNames.Fit));
        double target = fit.RootElement.GetProperty("target_loss").GetDouble();
        var sweep = SweepResults.Load(Path.Combine(Run(), "sweep"));
        var checkpoints = CurvatureResults.LoadWithSiblings(Path.Combine(Run(), "curvature", "warmup-200"));
        var points = File.ReadLines(Committed(ValidationFileNames.FitCurve)).Skip(1)
            .Select(line => line.Split(','))
            .Select(f => new LossCurvePoint(double.Parse(f[0], Inv), double.Parse(f[1], Inv))).ToList();
        var longer = sweep.BestTrialCurve("sgd", sweep.FitBatchSize!.Value) with { Path = fitCurvePath, Points = points };
        return new ValidationInputs(sweep, checkpoints, target, options, ValidatorTests.Counterparts) { LongerFitCurve = longer };
    }

    /// <summary>fit.json names the fit-curve.csv it read by its path, which is the run's folder at the time: the one part that may differ.</summary>
    static string WithoutFitCurvePath(string fitJson) => Regex.Replace(fitJson, "\"fit_curve\": \"[^\"]*fit-curve\\.csv ", "\"fit_curve\": \"FIT-CURVE ");

    [Fact]
    public void TheFitWritesTheCommittedValidationFilesByteForByte()
    {
        string outDir = Path.Combine(_root, "validation");
        var result = Validator.Run(CommittedInputs(Path.Combine(outDir, ValidationFileNames.FitCurve)));
        Validator.Write(result, outDir);
        string[] csvs = [ValidationFileNames.Measured, ValidationFileNames.Predictions, ValidationFileNames.Comparison, ValidationFileNames.Errors,
            ValidationFileNames.Scaling, ValidationFileNames.Verdicts, ValidationFileNames.Spectra, ValidationFileNames.Sensitivity];
        foreach (var name in csvs)
            Assert.True(File.ReadAllText(Committed(name)) == File.ReadAllText(Path.Combine(outDir, name)),
                $"{name} differs from the committed run's (NQM_KEEP_TEST_OUTPUT=1 keeps {outDir} to diff)");
        Assert.Equal(WithoutFitCurvePath(File.ReadAllText(Committed(ValidationFileNames.Fit))),
            WithoutFitCurvePath(File.ReadAllText(Path.Combine(outDir, ValidationFileNames.Fit))));
        // Not vacuous: the run has every table the stages produce, sensitivity included.
        Assert.Contains(result.Sensitivity, r => r.Primary);
        Assert.Contains(result.Verdicts, v => v.Id == "e");
    }

    [Fact]
    public void TheReportOfTheCommittedFilesIsTheCommittedReport()
    {
        string dir = Path.Combine(_root, "report");
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(Path.Combine(Run(), "validation")).Where(f => f.EndsWith(".csv") || f.EndsWith(".json")))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        ValidationReport.Build(dir).Save(dir);
        Assert.Equal(File.ReadAllText(Committed("report.md")), File.ReadAllText(Path.Combine(dir, "report.md")));
        // Not vacuous: every section of the quick run's report is there (all but the trajectory drift, which it did not measure; with the steps at each target).
        Assert.Equal(11, File.ReadAllLines(Path.Combine(dir, "report.md")).Count(l => l.StartsWith("## ")));
    }
}
