using NqmValidate.Torch.Tests.Sweeps;

namespace NqmValidate.Torch.Tests.Reliability;

/// <summary>`nqm report` over several runs: `--combined OUT` writes one page; without it each run's report is rebuilt as before.</summary>
[Collection("console")]
public class ReportCommandTests
{
    static string Committed(string run)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NqmValidate.sln"))) dir = dir.Parent;
        return Path.Combine(dir!.FullName, "experiments", "results", run);
    }

    [Fact]
    public async Task CombinedWritesOnePageOverTheRunFoldersGivenAndLeavesTheirReportsAlone()
    {
        string outDir = Path.Combine(SweepTestKit.TempDir("report-combined"), "both");
        string quickReport = Path.Combine(Committed("fmnist-mlp-quick"), "validation", "report.md");
        var before = File.GetLastWriteTimeUtc(quickReport);
        // Run folders (their validation/ inside) and a validation folder itself are both accepted.
        var r = await CliHarness.Run("report", Committed("fmnist-mlp"), Path.Combine(Committed("fmnist-mlp-quick"), "validation"), "--combined", outDir);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(Path.Combine(outDir, "combined.html"), r.Out.Trim());
        string md = File.ReadAllText(Path.Combine(outDir, "combined.md"));
        Assert.Contains("| claim | fmnist-mlp | fmnist-mlp-quick |", md);
        Assert.True(File.Exists(Path.Combine(outDir, "combined.html")));
        Assert.Equal(before, File.GetLastWriteTimeUtc(quickReport));
    }

    [Fact]
    public async Task AMissingRunIsAnInputError()
    {
        string outDir = SweepTestKit.TempDir("report-combined-missing");
        var r = await CliHarness.Run("report", Committed("fmnist-mlp"), Path.Combine(outDir, "no-such-run"), "--combined", outDir);
        Assert.Equal(2, r.Code);
        Assert.False(File.Exists(Path.Combine(outDir, "combined.md")));
    }
}
