using NqmValidate.Cli;

namespace NqmValidate.Torch.Tests.Reliability;

/// <summary>
/// Tests that read what `nqm` prints swap Console.Out/Error, which is process-wide: they run in
/// this collection, alone (xunit runs a collection with parallelization disabled after the others).
/// </summary>
[CollectionDefinition("console", DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>Runs `nqm` in-process and captures its output.</summary>
public static class CliHarness
{
    public sealed record Outcome(int Code, string Out, string Err)
    {
        /// <summary>stderr's non-empty lines.</summary>
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        public override string ToString() => $"exit {Code}\nstdout: {Out}\nstderr: {Err}";
    }

    public static Task<Outcome> Run(params string[] args) => Run(NqmApp.BuildRoot(), args);

    public static async Task<Outcome> Run(System.CommandLine.RootCommand root, params string[] args)
    {
        var (stdout, stderr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = await NqmApp.RunAsync(root, args);
            return new Outcome(code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(stdout);
            Console.SetError(stderr);
        }
    }

    /// <summary>Every file under <paramref name="root"/> (relative paths).</summary>
    public static HashSet<string> Files(string root) =>
        Directory.Exists(root)
            ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f)).ToHashSet()
            : [];

    /// <summary>The crash logs `nqm` writes to the temporary folder when it has no --out.</summary>
    public static HashSet<string> TempCrashLogs() => Directory.EnumerateFiles(Path.GetTempPath(), "nqm-error-*.log").ToHashSet();
}
