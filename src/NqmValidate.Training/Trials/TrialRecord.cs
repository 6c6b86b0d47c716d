using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;

namespace NqmValidate.Training.Trials;

/// <summary>
/// trial.json: what a trial was (the resolved <see cref="Config"/>) and how it ended. Readers (sweeps,
/// reports) rely on status, steps_to_target, steps_run, initial_loss and final_loss.
/// </summary>
public sealed record TrialRecord
{
    public int FormatVersion { get; init; } = 1;
    public TrialStatus Status { get; init; }
    /// <summary>The first evaluated step meeting the target (null unless reached).</summary>
    public long? StepsToTarget { get; init; }
    /// <summary>The largest evaluated step below steps_to_target known NOT to meet the target: the true first step lies in (lower, steps_to_target].</summary>
    public long? StepsLowerBound { get; init; }
    /// <summary>
    /// The first crossing of each of the config's looser targets (loosest first), found as <see cref="StepsToTarget"/>
    /// is: null steps = not met before the trial ended. Absent when the config has none.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<TargetCrossing>? LooserTargets { get; init; }
    public long StepsRun { get; init; }
    public long ExamplesSeen { get; init; }
    /// <summary>Training loss on the evaluation subset before the first update.</summary>
    public double? InitialLoss { get; init; }
    /// <summary>Training loss on the evaluation subset at steps_run (null if diverged or interrupted before it was evaluated).</summary>
    public double? FinalLoss { get; init; }
    public double? FinalValidationLoss { get; init; }
    public double? FinalValidationError { get; init; }
    public string? DivergenceReason { get; init; }
    /// <summary>For status crashed: the exception that stopped the trial.</summary>
    public string? Error { get; init; }
    public required TrialConfig Config { get; init; }
    public long ParameterCount { get; init; }
    public double WallSeconds { get; init; }
    public double LoadSeconds { get; init; }
    public double TrainSeconds { get; init; }
    public double EvalSeconds { get; init; }
    public int Evaluations { get; init; }
    public DateTime StartedUtc { get; init; }
    public string? GitCommit { get; init; }
    public bool? GitDirty { get; init; }
    public required VersionInfo Versions { get; init; }
    /// <summary>The machine the trial ran on, as far as its numerics depend on it (null in trial.json files from before it was recorded).</summary>
    public Runtime.MachineProvenance? Machine { get; init; }
    public string[]? CommandLine { get; init; }
}

/// <summary>Where a trial first met one threshold: the first evaluated step meeting it, and the largest evaluated step
/// before it known not to (the true first step lies in (lower, steps]); both null when it was not met.</summary>
public sealed record TargetCrossing(double Threshold, long? StepsToTarget, long? StepsLowerBound);

/// <summary>Versions that can change a trial's numbers.</summary>
public sealed record VersionInfo(string Nqm, string TorchSharp, string Dotnet, string Os, int ProcessorCount)
{
    public static VersionInfo Current() => new(
        InformationalVersion(typeof(VersionInfo).Assembly),
        InformationalVersion(typeof(TorchSharp.torch).Assembly),
        RuntimeInformation.FrameworkDescription,
        RuntimeInformation.OSDescription,
        Environment.ProcessorCount);

    static string InformationalVersion(Assembly assembly) =>
        assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? assembly.GetName().Version?.ToString() ?? "unknown";
}

/// <summary>The git commit of the source tree the running binary was built from (best effort: null outside a git checkout).</summary>
public static class GitInfo
{
    static readonly Lazy<(string? Commit, bool? Dirty)> Cached = new(Probe);

    public static (string? Commit, bool? Dirty) Current => Cached.Value;

    static (string? Commit, bool? Dirty) Probe()
    {
        string? commit = Git("rev-parse HEAD")?.Trim();
        if (string.IsNullOrEmpty(commit)) return (null, null);
        string? status = Git("status --porcelain --untracked-files=no");
        return (commit, status is null ? null : status.Trim().Length > 0);
    }

    static string? Git(string arguments)
    {
        try
        {
            var psi = new ProcessStartInfo("git", $"-C \"{AppContext.BaseDirectory}\" {arguments}")
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi);
            if (p is null) return null;
            string output = p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            if (!p.WaitForExit(10_000)) { p.Kill(); return null; }
            return p.ExitCode == 0 ? output : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException) { return null; }
    }
}
