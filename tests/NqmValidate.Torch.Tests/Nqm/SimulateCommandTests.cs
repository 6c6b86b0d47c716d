using System.Globalization;
using NqmValidate.Cli;
using NqmValidate.Cli.Commands;

namespace NqmValidate.Torch.Tests.Nqm;

/// <summary>`nqm simulate`: the SGD model's default per spectrum, and the issue's command end to end (pure NQM, no LibTorch use).</summary>
public class SimulateCommandTests
{
    static readonly long[] TablePlusOne = { 1507368, 379859, 95760, 25881, 10610, 8118, 7448, 7310, 7277, 7269 };

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "nqm-sim-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    static SimulateOptions Parse(params string[] args) => SimulateCommand.ToOptions(NqmApp.BuildRoot().Parse(["simulate", .. args]));

    [Fact]
    public void ThePaperSpectrumDefaultsToNotebookCompatAndACsvToTheExactModel()
    {
        Assert.True(Parse("--out", "x").ResolvedNotebookCompat);
        Assert.True(Parse("--spectrum", "paper", "--out", "x").ResolvedNotebookCompat);
        Assert.False(Parse("--spectrum", "paper", "--exact-model", "--out", "x").ResolvedNotebookCompat);
        Assert.False(Parse("--spectrum", "paper", "--notebook-compat", "false", "--out", "x").ResolvedNotebookCompat);
        Assert.False(Parse("--spectrum", "run/spectrum.csv", "--out", "x").ResolvedNotebookCompat);
        Assert.True(Parse("--spectrum", "run/spectrum.csv", "--notebook-compat", "--out", "x").ResolvedNotebookCompat);
        Assert.True(Parse("--spectrum", "run/spectrum.csv", "--notebook-compat", "true", "--out", "x").ResolvedNotebookCompat);
        Assert.Throws<NqmValidate.Nqm.NqmArgumentException>(() => Parse("--exact-model", "--notebook-compat", "true", "--out", "x"));
    }

    [Fact]
    public async Task TheIssueCommandWritesTheTablePlusOne()
    {
        string dir = TempDir();
        try
        {
            var opts = Parse("--spectrum", "paper", "--target", "0.01", "--optimizers", "sgd", "--precond-powers", "0",
                "--batch-sizes", "2^2..2^20:x4", "--search", "grid", "--out", dir);
            var result = SimulateCommand.RunStudy(opts, threads: 1);
            string printed = SimulateCommand.Describe(result, 0);
            Assert.Contains("model: notebook-compat", printed);
            foreach (long s in TablePlusOne) Assert.Contains($" {s} ", printed);

            int code = await NqmApp.RunAsync(["simulate", "--spectrum", "paper", "--target", "0.01", "--optimizers", "sgd", "--precond-powers", "0",
                "--batch-sizes", "2^2..2^20:x4", "--search", "grid", "--threads", "1", "--out", dir]);
            Assert.Equal(ExitCodes.Ok, code);
            var steps = File.ReadAllLines(Path.Combine(dir, "steps.csv")).Skip(1).Select(l => long.Parse(l.Split(',')[3], CultureInfo.InvariantCulture));
            Assert.Equal(TablePlusOne, steps);
        }
        finally { Directory.Delete(dir, true); }
    }
}
