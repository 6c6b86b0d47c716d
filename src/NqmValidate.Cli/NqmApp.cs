using System.CommandLine;
using System.Text.RegularExpressions;
using NqmValidate.Cli.Commands;

namespace NqmValidate.Cli;

/// <summary>The `nqm` command tree. Each subcommand lives in Commands/ and maps options to a library call.</summary>
public static partial class NqmApp
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
        yield return ReplicatesCommand.Create();
        yield return WorkerCommand.Create();
    }

    /// <summary>
    /// Parses and runs. What a user typed wrong exits 2 with one line naming it (and, for the command
    /// line, the usage line; never the whole help); an unexpected error exits 1 with one line and the
    /// path of a log holding the trace.
    /// </summary>
    public static Task<int> RunAsync(string[] args) => RunAsync(BuildRoot(), args);

    /// <summary>Runs <paramref name="args"/> against a given command tree (tests add commands to <see cref="BuildRoot"/>).</summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        string name = CommandPath(parse);
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine($"{name}: {string.Join("; ", parse.Errors.Select(e => Plain(e.Message).TrimEnd('.')).Distinct())}.");
            Console.Error.WriteLine(Usage(parse));
            return ExitCodes.BadInput;
        }
        if (OutputProblem(parse) is { } problem)
        {
            Console.Error.WriteLine($"{name}: {problem}");
            return ExitCodes.BadInput;
        }
        try
        {
            // Commands that run long work (train, sweep, validate) handle SIGINT/SIGTERM themselves and stop
            // cleanly; System.CommandLine's own handler would end the process after a timeout, before the
            // interrupted trial has written its files (seen as exit 143 under load). Exceptions come here,
            // not to its default handler (which prints the stack trace).
            return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is UnauthorizedAccessException or FileNotFoundException or DirectoryNotFoundException)
        {
            // A path the user gave that cannot be read or written: their input, not our failure.
            Console.Error.WriteLine($"{name}: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{name}: failed: {OneLine(e.Message)} (trace: {WriteCrashLog(parse, args, e)})");
            return ExitCodes.Failure;
        }
    }

    static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            names.Insert(0, r.Command is RootCommand ? "nqm" : r.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>"usage: nqm sweep --spec &lt;spec&gt; [options]   (nqm sweep --help lists them)".</summary>
    static string Usage(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        string path = CommandPath(parse);
        if (command is RootCommand)
            return $"usage: nqm <command> [options]   (commands: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}; nqm --help)";
        var required = command.Options.Where(o => o.Required).Select(o => $"{o.Name} <{o.Name.TrimStart('-')}>");
        var arguments = command.Arguments.Select(a => a.Name);
        return $"usage: {string.Join(' ', new[] { path }.Concat(arguments).Concat(required))} [options]   ({path} --help lists them)";
    }

    [GeneratedRegex(@"as expected type '(?<type>[^']+)'")]
    private static partial Regex ExpectedType();

    /// <summary>System.CommandLine's messages without .NET type names, on one line.</summary>
    public static string Plain(string message)
    {
        message = ExpectedType().Replace(message, m => "as " + Common.JsonErrors.Expected(m.Groups["type"].Value)
            .Replace("an object { … }", "a value of the right kind").Replace(" (in range)", ""));
        return OneLine(message);
    }

    static string OneLine(string text) => string.Join(' ', text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>
    /// An --out that can never work, found before any work starts: an existing file where a
    /// directory is expected, or a directory below a file.
    /// </summary>
    static string? OutputProblem(ParseResult parse)
    {
        var option = parse.CommandResult.Command.Options.FirstOrDefault(o => o.Name == "--out");
        if (option is null || parse.GetResult(option) is not { Implicit: false } result || result.Tokens.Count == 0) return null;
        string given = result.Tokens[0].Value;
        string full;
        try { full = Path.GetFullPath(given); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { return $"--out: '{given}' is not a usable path ({e.Message})."; }
        for (string? dir = full; !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if (Directory.Exists(dir)) return null;
            if (File.Exists(dir))
                return dir == full ? $"--out: '{given}' is a file; expected a directory." : $"--out: '{given}' cannot be created: '{dir}' is a file.";
        }
        return null;
    }

    /// <summary>Writes the trace of an unexpected error to a log file and returns its path.</summary>
    /// <remarks>In --out when it exists (the user's run keeps its own evidence), else in the temporary folder.</remarks>
    static string WriteCrashLog(ParseResult parse, string[] args, Exception e)
    {
        var option = parse.CommandResult.Command.Options.FirstOrDefault(o => o.Name == "--out");
        string? outDir = option is not null && parse.GetResult(option) is { Tokens.Count: > 0 } r ? Path.GetFullPath(r.Tokens[0].Value) : null;
        string folder = outDir is not null && Directory.Exists(outDir) ? outDir : Path.GetTempPath();
        return WriteCrashLog(folder, args, e);
    }

    /// <summary>Writes the trace of an unexpected error to a log file in <paramref name="folder"/> and returns its path.</summary>
    internal static string WriteCrashLog(string folder, IEnumerable<string> args, Exception e)
    {
        string path = Path.Combine(folder, $"nqm-error-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log");
        try
        {
            File.WriteAllText(path, $"nqm {string.Join(' ', args)}\n{DateTime.UtcNow:O}\n\n{e}\n");
            return path;
        }
        catch (Exception) { return "no log: " + e.GetType().Name; }
    }
}
