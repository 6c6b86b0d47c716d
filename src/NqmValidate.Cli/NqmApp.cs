using System.CommandLine;
using NqmValidate.Cli.Commands;

namespace NqmValidate.Cli;

/// <summary>The `nqm` command tree. Each subcommand lives in Commands/ and maps options to a library call.</summary>
public static class NqmApp
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "NqmValidate: measure how steps-to-target scale with batch size on real networks, " +
            "fit a Noisy Quadratic Model to their curvature and noise, and compare.");
        foreach (var command in Commands()) root.Subcommands.Add(command);
        return root;
    }

    static IEnumerable<Command> Commands()
    {
        yield return DoctorCommand.Create();
        yield return TrainCommand.Create();
        yield return CurvatureCommand.Create();
        yield return SweepCommand.Create();
        yield return MergeCommand.Create();
        yield return StatusCommand.Create();
        yield return SimulateCommand.Create();
        yield return FitCommand.Create();
        yield return ReportCommand.Create();
        yield return ValidateCommand.Create();
        yield return VerifyCommand.Create();
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var parse = BuildRoot().Parse(args);
        // Commands that run long work (train, sweep, validate) handle SIGINT/SIGTERM themselves and stop
        // cleanly; System.CommandLine's own handler would end the process after a timeout, before the
        // interrupted trial has written its files (seen as exit 143 under load).
        return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }
}
