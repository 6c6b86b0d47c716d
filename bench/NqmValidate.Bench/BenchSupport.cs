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

    /// <summary>
    /// Runs this benchmark again in a child process with a trial process's environment (threads, GC, glibc's allocator
    /// settings: <see cref="Training.Sweeps.ProcessTrialRunner.SetTrialEnvironment"/>; a GLIBC_TUNABLES of the caller's is
    /// kept, as for trials) unless this is that child already, so that an
    /// in-process measurement of training sees what a sweep's trial sees. Returns the child's exit code, or null when
    /// this process is the one to measure in.
    /// </summary>
    public static int? InTrialEnvironment(string benchmark, string[] args, int threads = 1)
    {
        const string Marker = "NQM_BENCH_TRIAL_ENVIRONMENT";
        if (Environment.GetEnvironmentVariable(Marker) == "1") return null;
        var info = new System.Diagnostics.ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        info.Environment[Marker] = "1";
        if (!Environment.ProcessPath!.EndsWith("nqm-bench", StringComparison.Ordinal)) info.ArgumentList.Add(typeof(BenchSupport).Assembly.Location);
        info.ArgumentList.Add(benchmark);
        foreach (var a in args) info.ArgumentList.Add(a);
        Training.Sweeps.ProcessTrialRunner.SetTrialEnvironment(info, threads);
        using var child = System.Diagnostics.Process.Start(info)!;
        child.WaitForExit();
        return child.ExitCode;
    }

    /// <summary>The 1, 5 and 15 minute load averages (/proc/loadavg), or "unknown".</summary>
    public static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }
}
