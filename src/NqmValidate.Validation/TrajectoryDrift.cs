using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// One row of the curvature stage's trajectories/drift.csv (docs/formats.md): the spectrum at one checkpoint of one
/// measured trajectory (a sweep's best trial at a batch size). Overlaps compare the top-k GGN eigenspace with the
/// previous checkpoint's and the initial one's (‖V₁ᵀV₂‖²_F / k).
/// </summary>
public sealed record MeasuredDrift(
    string Trajectory, string Optimizer, int BatchSize, string Checkpoint, long Step, double Loss,
    double? LambdaMax, double? TraceGgn, double TraceSigma, double GradientNormSquared, double SimpleNoiseScale,
    double? OverlapPrevious, double? OverlapInitial, int TopK, double? CostGradientPasses = null);

/// <summary>The curvature measured along a sweep's trials (`curvature.trajectory`), found beside a curvature checkpoint.</summary>
public static class TrajectoryDrift
{
    public const string FolderName = "trajectories", FileName = "drift.csv";

    /// <summary>
    /// The trajectories folder of the curvature run that <paramref name="checkpointDir"/> belongs to: CURVATURE/trajectories,
    /// where the checkpoint is CURVATURE itself (one checkpoint) or CURVATURE/&lt;label&gt; (several); null when there is none.
    /// </summary>
    public static string? Folder(string checkpointDir)
    {
        string dir = Path.GetFullPath(checkpointDir);
        foreach (var candidate in new[] { Path.Combine(dir, FolderName), Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(dir)) ?? dir, FolderName) })
            if (File.Exists(Path.Combine(candidate, FileName))) return candidate;
        return null;
    }

    /// <summary>drift.csv's rows (none when the run measured no trajectory).</summary>
    public static IReadOnlyList<MeasuredDrift> Load(string checkpointDir) =>
        Folder(checkpointDir) is { } folder ? Read(Path.Combine(folder, FileName)) : [];

    /// <summary>Reads a drift.csv; columns added later (cost_gradient_passes) may be absent in older files.</summary>
    public static IReadOnlyList<MeasuredDrift> Read(string path) =>
        CsvFiles.ReadRows(path, "trajectory", "optimizer", "batch_size", "checkpoint", "step", "loss", "trace_sigma", "gradient_norm_squared", "simple_noise_scale", "top_k")
            .Select((r, i) => new MeasuredDrift(r["trajectory"], r["optimizer"], (int)CsvFiles.RequiredDouble(r, "batch_size", path, i), r["checkpoint"],
                (long)CsvFiles.RequiredDouble(r, "step", path, i), CsvFiles.RequiredDouble(r, "loss", path, i),
                CsvFiles.OptionalDouble(r, "lambda_max", path, i), CsvFiles.OptionalDouble(r, "trace_ggn", path, i),
                CsvFiles.RequiredDouble(r, "trace_sigma", path, i), CsvFiles.RequiredDouble(r, "gradient_norm_squared", path, i),
                CsvFiles.RequiredDouble(r, "simple_noise_scale", path, i), CsvFiles.OptionalDouble(r, "overlap_previous", path, i),
                CsvFiles.OptionalDouble(r, "overlap_initial", path, i), (int)CsvFiles.RequiredDouble(r, "top_k", path, i),
                r.ContainsKey("cost_gradient_passes") ? CsvFiles.OptionalDouble(r, "cost_gradient_passes", path, i) : null))
            .ToList();

    /// <summary>
    /// Every measured checkpoint of every trajectory as a curvature checkpoint the fit can use, labelled
    /// TRAJECTORY/CHECKPOINT (e.g. sgd-b16-r0/loss-1): the sensitivity table then covers the spectra of real trials.
    /// </summary>
    public static IReadOnlyList<CurvatureResults> Checkpoints(string checkpointDir)
    {
        if (Folder(checkpointDir) is not { } folder) return [];
        var list = new List<CurvatureResults>();
        foreach (var trajectory in Directory.GetDirectories(folder).Order(StringComparer.Ordinal))
            foreach (var checkpoint in Directory.GetDirectories(trajectory).Order(StringComparer.Ordinal))
                if (File.Exists(Path.Combine(checkpoint, "spectrum.csv")) && File.Exists(Path.Combine(checkpoint, "summary.json")))
                    list.Add(CurvatureResults.Load(checkpoint) with { Name = $"{Path.GetFileName(trajectory)}/{Path.GetFileName(checkpoint)}" });
        return list;
    }
}
