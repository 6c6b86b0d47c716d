using NqmValidate.Training.Sweeps;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// scripts/nqm gives the CLI's own process (`nqm train`, `curvature`, `validate`, `fit`) the allocator settings of a trial
/// process, so the value there is a copy of <see cref="ProcessTrialRunner.MallocTunables"/>: this keeps the two equal.
/// </summary>
public class LauncherEnvironmentTests
{
    [Fact]
    public void TheLauncherExportsTheTrialProcessesMallocTunablesUnlessTheUserSetsThem()
    {
        string launcher = File.ReadAllText(Path.Combine(RepoRoot(), "scripts", "nqm"));
        // `:-` also replaces an empty value, as SetTrialEnvironment does (string.IsNullOrEmpty).
        Assert.Contains($"export GLIBC_TUNABLES=\"${{GLIBC_TUNABLES:-{ProcessTrialRunner.MallocTunables}}}\"\n", launcher);
        // Set before the CLI starts: the export precedes the line that runs it.
        Assert.True(launcher.IndexOf("export GLIBC_TUNABLES=", StringComparison.Ordinal)
            < launcher.IndexOf("exec dotnet \"$dll\"", StringComparison.Ordinal));
    }

    static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NqmValidate.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("NqmValidate.sln not found above " + AppContext.BaseDirectory);
    }
}
