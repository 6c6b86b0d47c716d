namespace NqmValidate.Bench;

/// <summary>One benchmark: measures a target and a baseline in the same run and prints their ratio.</summary>
public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    /// <summary>Runs and prints results; returns a process exit code.</summary>
    int Run(string[] args);
}

/// <summary>Timing helpers shared by the benchmarks.</summary>
public static class Measure
{
    /// <summary>Median of a sample.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) throw new ArgumentException("empty sample", nameof(values));
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
    }

    /// <summary>Wall seconds of one call.</summary>
    public static double Seconds(Action action)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        action();
        return sw.Elapsed.TotalSeconds;
    }
}
