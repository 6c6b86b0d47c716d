using System.Text.Json;
using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>One study of a sweep (optimizer × batch size): measured steps-to-target and the best trial's hyperparameters.</summary>
public sealed record MeasuredStudy(
    string Optimizer,
    int BatchSize,
    double? StepsToTarget,
    double? LearningRate,
    double? Momentum,
    int TrialsRun,
    int TrialsReached,
    int TrialsDiverged,
    double? StepsMin,
    double? StepsMax);

/// <summary>One trial of a sweep, as listed in trials.csv.</summary>
public sealed record MeasuredTrial(
    string Optimizer,
    int BatchSize,
    double LearningRate,
    double? Momentum,
    string Status,
    double? StepsToTarget,
    double? StepsRun,
    double? InitialLoss,
    double? FinalLoss);

/// <summary>What a sweep measured: steps.csv and trials.csv of its directory (docs/formats.md).</summary>
public sealed record SweepResults(string Directory, IReadOnlyList<MeasuredStudy> Studies, IReadOnlyList<MeasuredTrial> Trials)
{
    public static SweepResults Load(string directory)
    {
        string stepsPath = Path.Combine(directory, "steps.csv");
        var studies = CsvFiles.ReadRows(stepsPath, "optimizer", "batch_size", "steps_to_target")
            .Select((r, i) => new MeasuredStudy(
                r["optimizer"],
                (int)CsvFiles.RequiredDouble(r, "batch_size", stepsPath, i),
                CsvFiles.OptionalDouble(r, "steps_to_target", stepsPath, i),
                CsvFiles.OptionalDouble(r, "learning_rate", stepsPath, i),
                CsvFiles.OptionalDouble(r, "momentum", stepsPath, i),
                (int)(CsvFiles.OptionalDouble(r, "trials_run", stepsPath, i) ?? 0),
                (int)(CsvFiles.OptionalDouble(r, "trials_reached", stepsPath, i) ?? 0),
                (int)(CsvFiles.OptionalDouble(r, "trials_diverged", stepsPath, i) ?? 0),
                CsvFiles.OptionalDouble(r, "steps_min", stepsPath, i),
                CsvFiles.OptionalDouble(r, "steps_max", stepsPath, i)))
            .ToList();
        string trialsPath = Path.Combine(directory, "trials.csv");
        var trials = !File.Exists(trialsPath) ? [] : CsvFiles.ReadRows(trialsPath, "optimizer", "batch_size", "learning_rate", "status")
            .Select((r, i) => new MeasuredTrial(
                r["optimizer"],
                (int)CsvFiles.RequiredDouble(r, "batch_size", trialsPath, i),
                CsvFiles.RequiredDouble(r, "learning_rate", trialsPath, i),
                CsvFiles.OptionalDouble(r, "momentum", trialsPath, i),
                r["status"],
                CsvFiles.OptionalDouble(r, "steps_to_target", trialsPath, i),
                CsvFiles.OptionalDouble(r, "steps_run", trialsPath, i),
                CsvFiles.OptionalDouble(r, "initial_loss", trialsPath, i),
                CsvFiles.OptionalDouble(r, "final_loss", trialsPath, i)))
            .ToList();
        return new SweepResults(directory, studies, trials);
    }

    /// <summary>The smallest learning rate that diverged in a study: the measured edge of stability (no steps-to-target data used).</summary>
    public double? SmallestDivergingLearningRate(string optimizer, int batchSize) =>
        Trials.Where(t => t.Optimizer == optimizer && t.BatchSize == batchSize && t.Status == "diverged")
              .Select(t => (double?)t.LearningRate).Min();
}

/// <summary>One geometric bin of the measured diagonal spectrum (spectrum.csv, layer = total).</summary>
public sealed record MeasuredBin(double H, double C, double Count, double? GradMeanSq, double? SecondMoment);

/// <summary>A top eigenpair summary from eigen.csv: eigenvalue, and where measured the noise variance vᵀΣv and (gᵀv)² along it.</summary>
public sealed record MeasuredEigen(string Operator, int Index, double Eigenvalue, double? NoiseVariance, double? MeanGradProjectionSq);

/// <summary>A node of the stochastic-Lanczos spectral density (density.csv); weights sum to 1 per operator.</summary>
public sealed record DensityNode(string Operator, double Eigenvalue, double Weight);

/// <summary>The scalars of summary.json the fit needs.</summary>
public sealed record CurvatureSummary(
    double? InitialLoss,
    double? GradientNoiseScale,
    double? GradientNoiseScaleTwoBatch,
    double? ParameterCount,
    double? TraceGgnDiagonal,
    double? TraceNoise,
    double? TopHessianEigenvalue,
    double? TopGgnEigenvalue);

/// <summary>What the curvature stage measured (docs/formats.md, Curvature).</summary>
public sealed record CurvatureResults(
    string Directory,
    IReadOnlyList<MeasuredBin> Bins,
    IReadOnlyList<MeasuredEigen> Eigen,
    IReadOnlyList<DensityNode> Density,
    CurvatureSummary Summary)
{
    public static CurvatureResults Load(string directory)
    {
        string spectrumPath = Path.Combine(directory, "spectrum.csv");
        var rows = CsvFiles.ReadRows(spectrumPath, "h", "c", "count");
        bool hasLayer = rows.Count > 0 && rows[0].ContainsKey("layer");
        var bins = rows.Select((r, i) => (r, i))
            .Where(x => !hasLayer || x.r["layer"] == "total")
            .Select(x => new MeasuredBin(
                CsvFiles.RequiredDouble(x.r, "h", spectrumPath, x.i),
                CsvFiles.RequiredDouble(x.r, "c", spectrumPath, x.i),
                CsvFiles.RequiredDouble(x.r, "count", spectrumPath, x.i),
                CsvFiles.OptionalDouble(x.r, "grad_mean_sq", spectrumPath, x.i),
                CsvFiles.OptionalDouble(x.r, "second_moment", spectrumPath, x.i)))
            .ToList();
        if (bins.Count == 0) throw new RunFileException($"{spectrumPath}: no rows with layer = total.");

        string eigenPath = Path.Combine(directory, "eigen.csv");
        var eigen = !File.Exists(eigenPath) ? [] : CsvFiles.ReadRows(eigenPath, "operator", "index", "eigenvalue")
            .Select((r, i) => new MeasuredEigen(r["operator"], (int)CsvFiles.RequiredDouble(r, "index", eigenPath, i),
                CsvFiles.RequiredDouble(r, "eigenvalue", eigenPath, i),
                CsvFiles.OptionalDouble(r, "noise_variance", eigenPath, i),
                CsvFiles.OptionalDouble(r, "mean_grad_projection_sq", eigenPath, i)))
            .ToList();
        string densityPath = Path.Combine(directory, "density.csv");
        var density = !File.Exists(densityPath) ? [] : CsvFiles.ReadRows(densityPath, "operator", "eigenvalue", "weight")
            .Select((r, i) => new DensityNode(r["operator"], CsvFiles.RequiredDouble(r, "eigenvalue", densityPath, i),
                CsvFiles.RequiredDouble(r, "weight", densityPath, i)))
            .ToList();
        return new CurvatureResults(directory, bins, eigen, density, LoadSummary(Path.Combine(directory, "summary.json")));
    }

    static CurvatureSummary LoadSummary(string path)
    {
        if (!File.Exists(path)) throw new RunFileException($"{path}: file not found.");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            return new CurvatureSummary(
                At(root, "initial_loss"),
                At(root, "b_simple", "per_example_variance", "b_simple"),
                At(root, "b_simple", "two_batch", "b_simple"),
                At(root, "parameters"),
                At(root, "traces", "ggn_diagonal"),
                At(root, "traces", "noise_variance"),
                First(root, "top_eigenvalues", "hessian"),
                First(root, "top_eigenvalues", "ggn"));
        }
        catch (JsonException e)
        {
            throw new RunFileException($"{path}: not valid JSON ({e.Message}).", e);
        }
    }

    // summary.json keys as documented in docs/formats.md (Curvature); an absent key gives null.
    static double? At(JsonElement element, params string[] path)
    {
        foreach (var key in path)
        {
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(key, out element)) return null;
        }
        return element.ValueKind == JsonValueKind.Number ? element.GetDouble() : null;
    }

    static double? First(JsonElement element, params string[] path)
    {
        foreach (var key in path)
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(key, out element)) return null;
        return element.ValueKind == JsonValueKind.Array && element.GetArrayLength() > 0 && element[0].ValueKind == JsonValueKind.Number
            ? element[0].GetDouble() : null;
    }
}
