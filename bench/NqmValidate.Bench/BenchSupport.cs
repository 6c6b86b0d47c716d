namespace NqmValidate.Bench;

/// <summary>What several benchmarks need: their options, the repository they run in, and the load they ran under.</summary>
static class BenchSupport
{
    /// <summary>The value after <paramref name="name"/> on the command line, or null.</summary>
    public static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>The repository root: the first folder above the benchmark holding NqmValidate.sln.</summary>
    public static string RepoRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "NqmValidate.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? throw new InvalidOperationException("run from inside the repository (NqmValidate.sln not found above the benchmark).");
    }

    /// <summary>The 1, 5 and 15 minute load averages (/proc/loadavg), or "unknown".</summary>
    public static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }
}
