using System.Diagnostics;
using NqmValidate.Cli.Commands;
using NqmValidate.Nqm;
using NqmValidate.Torch.Tests.Sweeps;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Torch.Tests.Reliability;

/// <summary>#14 defects 3 and 4: user-supplied names stay inside --out; generated scripts quote what they interpolate.</summary>
[Collection("console")]
public class ScriptAndPathTests
{
    /// <summary>A directory name with a space, a single quote, a double quote and a command substitution.</summary>
    const string Nasty = "a b'c\"d$(touch PWNED)`touch PWNED2`";

    [Fact]
    public async Task TheSlurmScriptPassesAPathWithSpacesQuotesAndCommandSubstitutionAsData()
    {
        string root = SweepTestKit.TempDir("slurm");
        string outDir = Path.Combine(root, Nasty, "out");
        string specPath = Path.Combine(root, Nasty, "spec file.json");
        Directory.CreateDirectory(Path.GetDirectoryName(specPath)!);
        File.WriteAllText(specPath, SweepTestKit.SmallSpecJson);
        string scriptPath = Path.Combine(root, "job.sh");
        var emit = await CliHarness.Run("sweep", "--spec", specPath, "--out", outDir, "--emit-slurm", scriptPath, "--shards", "2");
        Assert.True(emit.Code == 0, emit.ToString());
        string script = File.ReadAllText(scriptPath);
        // sbatch reads #SBATCH arguments with double quotes and backslash escapes.
        Assert.Contains($"#SBATCH --output=\"{Path.Combine(outDir, "slurm").Replace("\"", "\\\"")}/%x-%A_%a.out\"", script);

        // Run the script body as Slurm would, with a stand-in `dotnet` that records its arguments.
        string bin = Path.Combine(root, "bin");
        Directory.CreateDirectory(bin);
        string argsFile = Path.Combine(root, "args.txt");
        File.WriteAllText(Path.Combine(bin, "dotnet"), $"#!/bin/bash\nprintf '%s\\n' \"$@\" > '{argsFile}'\n");
        File.SetUnixFileMode(Path.Combine(bin, "dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string work = Path.Combine(root, "work");
        Directory.CreateDirectory(work);
        var info = new ProcessStartInfo("bash", [scriptPath]) { WorkingDirectory = work, RedirectStandardError = true };
        info.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        info.Environment["SLURM_ARRAY_TASK_ID"] = "1";
        using var p = Process.Start(info)!;
        string err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, err);

        var args = File.ReadAllLines(argsFile);
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "nqm.dll"), args[0]);
        Assert.Equal("sweep", args[1]);
        Assert.Equal(specPath, args[Array.IndexOf(args, "--spec") + 1]);
        Assert.Equal(Path.Combine(outDir, "shards", "shard-1"), args[Array.IndexOf(args, "--out") + 1]);
        Assert.True(Directory.Exists(Path.Combine(outDir, "shards")));
        // Nothing was run from the path: no PWNED file anywhere the script could have made one.
        foreach (var where in new[] { work, root, Path.Combine(root, Nasty), outDir })
        {
            Assert.False(File.Exists(Path.Combine(where, "PWNED")), where);
            Assert.False(File.Exists(Path.Combine(where, "PWNED2")), where);
        }
    }

    [Theory]
    [InlineData("--partition", "gpu; rm -rf ~")]
    [InlineData("--time", "01:00:00 --wrap=x")]
    public async Task SlurmOptionsThatAreNotPlainTokensAreRefused(string option, string value)
    {
        string root = SweepTestKit.TempDir("slurm-bad");
        string spec = Path.Combine(root, "spec.json");
        File.WriteAllText(spec, SweepTestKit.SmallSpecJson);
        var r = await CliHarness.Run("sweep", "--spec", spec, "--out", Path.Combine(root, "out"), "--emit-slurm", Path.Combine(root, "job.sh"), option, value);
        Assert.Equal(2, r.Code);
        Assert.Single(r.ErrLines);
        Assert.Contains(option, r.Err);
        Assert.False(File.Exists(Path.Combine(root, "job.sh")));
    }

    static string SimulateSpec(params string[] names) =>
        "{ \"studies\": [" + string.Join(", ", names.Select(n => $"{{ \"name\": {System.Text.Json.JsonSerializer.Serialize(n)}, \"batch_sizes\": \"4,16,64\" }}")) + "] }";

    [Theory]
    [InlineData("../../escaped")]
    [InlineData("/tmp/nqm-absolute-escape")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("")]
    public async Task ASimulateStudyNameThatIsNotOnePlainSegmentIsRefusedAndNothingIsWritten(string name)
    {
        string root = SweepTestKit.TempDir("simpath");
        string outDir = Path.Combine(root, "x", "y", "out");
        string spec = Path.Combine(root, "spec.json");
        File.WriteAllText(spec, SimulateSpec("fine", name));
        var r = await CliHarness.Run("simulate", "--spec", spec, "--out", outDir);
        Assert.Equal(2, r.Code);
        Assert.Single(r.ErrLines);
        Assert.Contains("studies[1].name", r.Err);
        Assert.Equal(["spec.json"], CliHarness.Files(root));
        Assert.False(Directory.Exists("/tmp/nqm-absolute-escape"));
    }

    [Fact]
    public void DuplicateStudyNamesAreRefused()
    {
        var spec = System.Text.Json.JsonSerializer.Deserialize<SimulateSpec>(SimulateSpec("a", "b", "A"),
            new System.Text.Json.JsonSerializerOptions { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower })!;
        var e = Assert.Throws<NqmArgumentException>(() => SimulatePaper.Validate(spec, "spec.json"));
        Assert.Contains("studies[2].name: \"A\" is used by another study", e.Message);
    }
}
