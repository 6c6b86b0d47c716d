using System.Globalization;
using NqmValidate.Reports;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// The combined view (`nqm report RUN1 RUN2 --combined OUT`) on the two committed MLP runs: every cell must be the run's
/// own file's value, in the run's column.
/// </summary>
public class CombinedReportTests : IDisposable
{
    readonly string _out = Path.Combine(Path.GetTempPath(), "nqm-combined-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { try { if (Environment.GetEnvironmentVariable("NQM_KEEP_TEST_OUTPUT") is null) Directory.Delete(_out, true); } catch (IOException) { } }

    static string Results(string run) => Path.Combine(CommittedRuns.Run(run), "validation");

    static readonly string[] Runs = ["fmnist-mlp", "fmnist-mlp-quick"];

    /// <summary>The cells of the markdown table row that starts with <paramref name="first"/> (escaped pipes are not separators).</summary>
    static string[] Row(string markdown, string first)
    {
        string line = Assert.Single(markdown.Split('\n'), l => l.StartsWith("| " + first + " |", StringComparison.Ordinal));
        return line.Trim().Trim('|').Replace("\\|", "\u0001").Split(" | ").Select(c => c.Trim().Replace("\u0001", "|")).ToArray();
    }

    [Fact]
    public void EveryRunsVerdictsErrorsAndCriticalBatchSizesStandInItsOwnColumn()
    {
        var doc = CombinedReport.Build(Runs.Select(Results).ToList());
        Directory.CreateDirectory(_out);
        doc.Save(_out, CombinedReport.BaseName);
        string md = File.ReadAllText(Path.Combine(_out, "combined.md"));
        Assert.True(File.Exists(Path.Combine(_out, "combined.html")));

        // One column per run, named by the spec's name (provenance.json).
        Assert.Equal(["claim", "fmnist-mlp", "fmnist-mlp-quick"], Row(md, "claim"));
        var verdicts = Runs.Select(r => CsvFiles.Read<VerdictRow>(Path.Combine(Results(r), ValidationFileNames.Verdicts))).ToArray();
        // Every claim either run judged is a row; each cell is that run's measured verdict and its NQM's, or — when the run did not judge it.
        var claims = verdicts.SelectMany(v => v.Select(x => x.Claim)).Distinct().ToList();
        Assert.Contains("(c) momentum reaches a larger critical batch size than sgd", claims);
        foreach (var claim in claims)
        {
            var cells = Row(md, claim);
            for (int i = 0; i < Runs.Length; i++)
            {
                var v = verdicts[i].FirstOrDefault(x => x.Claim == claim);
                string expected = v is null ? "—" : v.Predicted == "—" ? v.Measured : $"{v.Measured} (NQM: {v.Predicted})";
                Assert.True(expected == cells[i + 1], $"{claim}, {Runs[i]}: expected '{expected}', found '{cells[i + 1]}'");
            }
        }
        // Real content, not only consistency: the quick run's (b) is inconclusive measured and holds as its NQM predicts; the full run's holds both ways.
        Assert.Equal(["(b) momentum ≈ SGD below the critical batch size", "holds (NQM: holds)", "inconclusive (NQM: holds)"], Row(md, "(b) momentum ≈ SGD below the critical batch size"));

        // Errors: the primary recipe's and the baseline's median |log2| under each run's scheme, from its errors.csv.
        var sgdNqm = Row(md, "sgd: NQM error, primary recipe");
        var sgdBaseline = Row(md, "sgd: McCandlish baseline error");
        for (int i = 0; i < Runs.Length; i++)
        {
            var errors = CsvFiles.Read<ErrorRow>(Path.Combine(Results(Runs[i]), ValidationFileNames.Errors));
            var e = errors.Single(x => x.Variant == "eigen/measured-c" && x.Optimizer == "sgd" && x.Calibration == "one-point-smallest");
            var b = errors.Single(x => x.Variant == "mccandlish" && x.Optimizer == "sgd" && x.Calibration == "one-point-smallest");
            Assert.Equal($"{e.MedianAbsLog2!.Value.ToString("F2", CultureInfo.InvariantCulture)} (n={e.Points}, one-point-smallest)", sgdNqm[i + 1]);
            Assert.Equal($"{b.MedianAbsLog2!.Value.ToString("F2", CultureInfo.InvariantCulture)} (n={b.Points}, one-point-smallest)", sgdBaseline[i + 1]);
        }
        // Critical batch sizes: measured SGD 185 (full) and 57.2 (quick), as their scaling.csv's labels.
        Assert.Equal(["sgd: B_noise measured", "185", "57.2"], Row(md, "sgd: B_noise measured"));
        Assert.Equal(["adam: B_noise measured", "1000", "162"], Row(md, "adam: B_noise measured"));
        Assert.Equal(["adam: B_noise NQM, primary recipe", "> 2048 (no plateau in the measured range)", "473"], Row(md, "adam: B_noise NQM, primary recipe"));
    }

    [Fact]
    public void TwoRunsOfOneSpecAreToldApartByTheirFolder()
    {
        // The quick run and its Adam-preconditioner re-fit share the spec's name.
        var doc = CombinedReport.Build([Results("fmnist-mlp-quick"), Results("fmnist-mlp-quick-adam-p")]);
        Assert.Equal(["claim", "fmnist-mlp-quick (fmnist-mlp-quick)", "fmnist-mlp-quick (fmnist-mlp-quick-adam-p)"], Row(doc.ToMarkdown(), "claim"));
    }

    /// <summary>K-FAC's primary NQM is its first counterpart (the damped power-1 preconditioner), as verdict (e) scores it.</summary>
    [Fact]
    public void KfacsColumnsAreItsPrimaryCounterpartsErrorAndCriticalBatchSize()
    {
        string md = CombinedReport.Build([Results("fmnist-cnn-quick")]).ToMarkdown();
        var errors = CsvFiles.Read<ErrorRow>(Path.Combine(Results("fmnist-cnn-quick"), ValidationFileNames.Errors));
        var e = errors.Single(x => x.Variant == "eigen/measured-c [precond-p1-d0.1]" && x.Optimizer == "kfac" && x.Calibration == "one-point-smallest");
        Assert.Equal(["kfac: NQM error, primary recipe", $"{e.MedianAbsLog2!.Value.ToString("F2", CultureInfo.InvariantCulture)} (n={e.Points}, one-point-smallest)"],
            Row(md, "kfac: NQM error, primary recipe"));
        var verdicts = CsvFiles.Read<VerdictRow>(Path.Combine(Results("fmnist-cnn-quick"), ValidationFileNames.Verdicts));
        Assert.Contains($"NQM = {e.MedianAbsLog2.Value:F2}", verdicts.Single(v => v.Claim.StartsWith("(e) kfac")).MeasuredEvidence);
        Assert.Equal(["kfac: B_noise NQM, primary recipe", "204"], Row(md, "kfac: B_noise NQM, primary recipe"));
    }
}
