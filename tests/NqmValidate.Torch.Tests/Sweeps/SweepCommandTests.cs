using NqmValidate.Cli;
using NqmValidate.Cli.Commands;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>The `nqm sweep` command tree: overrides, bad input, the Slurm script (no trials run).</summary>
public class SweepCommandTests
{
    static string WriteSpec(string json)
    {
        string dir = SweepTestKit.TempDir("cli");
        string path = Path.Combine(dir, "spec.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void FlagsOverrideTheSpecAndAreValidatedAgain()
    {
        string spec = WriteSpec(SweepTestKit.SmallSpecJson);
        var parse = NqmApp.BuildRoot().Parse(["sweep", "--spec", spec, "--out", "x", "--jobs", "5", "--no-prune", "--order", "canonical", "--threads", "2"]);
        Assert.Empty(parse.Errors);
        var resolved = SweepCommand.Resolve(SweepCommand.Map(parse));
        Assert.Equal((5, 2, false, "canonical"), (resolved.Jobs, resolved.Threads, resolved.Prune, resolved.Order));
        var bad = NqmApp.BuildRoot().Parse(["sweep", "--spec", spec, "--out", "x", "--order", "random"]);
        var e = Assert.Throws<NqmValidate.Common.SpecException>(() => SweepCommand.Resolve(SweepCommand.Map(bad)));
        Assert.Contains("order: must be one of `predicted`, `canonical`", e.Message);
        Assert.Contains("with command-line overrides", e.Message);
    }

    [Fact]
    public async Task ABadSpecExitsWithCode2()
    {
        string spec = WriteSpec(SweepTestKit.SmallSpecJson.Replace("\"jobs\": 3", "\"jobs\": 3, \"jbos\": 1"));
        int code = await NqmApp.RunAsync(["sweep", "--spec", spec, "--out", SweepTestKit.TempDir("bad")]);
        Assert.Equal(ExitCodes.BadInput, code);
    }

    [Fact]
    public async Task EmitSlurmWritesAnArrayScriptWithOneTaskPerChainAndItsLogFolder()
    {
        string spec = WriteSpec(SweepTestKit.SmallSpecJson);
        string outDir = SweepTestKit.TempDir("emit");
        string script = Path.Combine(outDir, "sweep.sbatch");
        int code = await NqmApp.RunAsync(["sweep", "--spec", spec, "--out", outDir, "--emit-slurm", script, "--gpu"]);
        Assert.Equal(ExitCodes.Ok, code);
        string text = File.ReadAllText(script);
        Assert.Contains("#SBATCH --array=0-1", text); // sgd and momentum chains
        Assert.Contains("--device cuda", text);
        Assert.True(Directory.Exists(Path.Combine(outDir, "slurm")));
        Assert.False(File.Exists(Path.Combine(outDir, "spec.json")), "emitting a script must not start a sweep");
    }
}
