using System.Text.Json;
using NqmValidate.Formats;
using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>One study of a sweep (optimizer × batch size): measured steps-to-target and the best trial's hyperparameters
/// (the validation's view of a steps.csv row: steps as numbers the NQM's predictions are compared with).</summary>
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
    double? StepsMax,
    double? Beta1 = null)
{
    public static MeasuredStudy From(StepsRow row) => new(
        row.Optimizer, row.BatchSize, row.StepsToTarget, row.LearningRate, row.Hyperparameter(HyperparameterColumns.Momentum),
        row.TrialsRun, row.TrialsReached, row.TrialsDiverged, row.StepsMin, row.StepsMax, row.Hyperparameter(HyperparameterColumns.Beta1));
}

/// <summary>One trial of a sweep, as listed in trials.csv (the validation's view of a trials.csv row).</summary>
public sealed record MeasuredTrial(
    string Optimizer,
    int BatchSize,
    double LearningRate,
    double? Momentum,
    string Status,
    double? StepsToTarget,
    double? StepsRun,
    double? InitialLoss,
    double? FinalLoss,
    string? Study = null,
    string? Trial = null)
{
    public static MeasuredTrial From(TrialsRow row) => new(
        row.Optimizer, row.BatchSize, row.LearningRate, row.Hyperparameter(HyperparameterColumns.Momentum), row.Status,
        row.StepsToTarget, row.StepsRun, row.InitialLoss, row.FinalLoss, row.Study, row.Trial);
}

/// <summary>
/// What a sweep measured: steps.csv and trials.csv of its directory, and steps-by-target.csv when its spec had looser
/// targets (docs/formats.md); <c>ByTarget</c> holds steps-by-target.csv's rows (empty: the sweep measured its one target only).
/// </summary>
public sealed record SweepResults(string Directory, IReadOnlyList<MeasuredStudy> Studies, IReadOnlyList<MeasuredTrial> Trials,
    IReadOnlyList<TargetStepsRow>? ByTarget = null)
{
    public static SweepResults Load(string directory)
    {
        try
        {
            var studies = StepsFile.Read(Path.Combine(directory, StepsFile.FileName)).Rows.Select(MeasuredStudy.From).ToList();
            string trialsPath = Path.Combine(directory, TrialsFile.FileName);
            var trials = !File.Exists(trialsPath) ? [] : TrialsFile.Read(trialsPath).Rows.Select(MeasuredTrial.From).ToList();
            string byTargetPath = Path.Combine(directory, TargetStepsFile.FileName);
            var byTarget = File.Exists(byTargetPath) ? TargetStepsFile.Read(byTargetPath) : [];
            return new SweepResults(directory, studies, trials, byTarget);
        }
        catch (TableFileException e) { throw new RunFileException(e.Message, e); }
    }

    /// <summary>Per optimizer, the measured S(B) curve at every target of steps-by-target.csv (none without that file).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<(double TargetLoss, ScalingPoints Curve)>> CurvesByTarget() =>
        (ByTarget ?? []).GroupBy(r => r.Optimizer).ToDictionary(g => g.Key, g => (IReadOnlyList<(double, ScalingPoints)>)g
            .GroupBy(r => r.Target).OrderByDescending(t => t.Key)
            .Select(t => (t.Key, ScalingPoints.From(t.Select(r => ((double)r.BatchSize, (double?)r.StepsToTarget))))).ToList());

    /// <summary>The fit point: the largest batch size at which an SGD study reached the target (its best trial's curve is fitted).</summary>
    public int? FitBatchSize => Studies.Where(s => s.Optimizer == "sgd" && s.StepsToTarget is not null).Select(s => (int?)s.BatchSize).Max();

    /// <summary>The smallest learning rate that diverged in a study: the measured edge of stability (no steps-to-target data used).</summary>
    public double? SmallestDivergingLearningRate(string optimizer, int batchSize) =>
        Trials.Where(t => t.Optimizer == optimizer && t.BatchSize == batchSize && t.Status == "diverged")
              .Select(t => (double?)t.LearningRate).Min();

    /// <summary>
    /// The training-loss curve of the best trial of one study (the trial whose steps-to-target is the study's),
    /// read from DIR/trials/&lt;study&gt;/&lt;trial&gt;/curve.csv; the points with a train_loss evaluation.
    /// </summary>
    public LossCurve BestTrialCurve(string optimizer, int batchSize)
    {
        var study = Studies.FirstOrDefault(s => s.Optimizer == optimizer && s.BatchSize == batchSize)
            ?? throw new RunFileException($"{Directory}/steps.csv: no {optimizer} study at batch size {batchSize}.");
        var candidates = Trials.Where(t => t.Optimizer == optimizer && t.BatchSize == batchSize && t.Status == "reached"
                                           && t.StepsToTarget == study.StepsToTarget && t.Study is not null && t.Trial is not null)
            .OrderBy(t => t.Study, StringComparer.Ordinal).ThenBy(t => t.Trial, StringComparer.Ordinal).ToArray();
        if (candidates.Length == 0)
            throw new RunFileException($"{Directory}/trials.csv: no reached {optimizer} trial at batch size {batchSize} with the study's {study.StepsToTarget} steps (and study/trial columns).");
        var paths = candidates.Select(t => Path.Combine(Directory, "trials", t.Study!, t.Trial!, "curve.csv")).ToArray();
        int found = Array.FindIndex(paths, File.Exists);
        if (found < 0)
            throw new RunFileException($"{paths[0]}: file not found; the floor and initial-condition fit read the best {optimizer} trial's loss curve at the largest batch size " +
                                       "(re-run that trial with `nqm train` into that directory, or set fit.floor to a number and fit.initial_condition to isotropic).");
        var rows = CsvFiles.ReadRows(paths[found], "step", "train_loss");
        var points = rows.Select((r, i) => (r, i)).Where(x => !string.IsNullOrWhiteSpace(x.r["train_loss"]))
            .Select(x => new LossCurvePoint(CsvFiles.RequiredDouble(x.r, "step", paths[found], x.i), CsvFiles.RequiredDouble(x.r, "train_loss", paths[found], x.i)))
            .OrderBy(p => p.Step).ToArray();
        if (points.Length < 4 || points[0].Step != 0)
            throw new RunFileException($"{paths[found]}: needs the step-0 training loss and at least 3 later evaluations, found {points.Length} evaluations.");
        var trial = candidates[found];
        return new LossCurve(paths[found], optimizer, batchSize, trial.LearningRate, points);
    }
}

/// <summary>One evaluation of a trial's training loss (curve.csv).</summary>
public sealed record LossCurvePoint(double Step, double Loss);

/// <summary>The training-loss curve of one trial, with the hyperparameters it ran at.</summary>
public sealed record LossCurve(string Path, string Optimizer, int BatchSize, double LearningRate, IReadOnlyList<LossCurvePoint> Points);

/// <summary>One geometric bin of the measured diagonal spectrum (spectrum.csv, layer = total).</summary>
public sealed record MeasuredBin(double H, double C, double Count, double? GradMeanSq, double? SecondMoment);

/// <summary>A top eigenpair summary from eigen.csv: eigenvalue, and where measured the noise variance vᵀΣv and (gᵀv)² along it.</summary>
public sealed record MeasuredEigen(string Operator, int Index, double Eigenvalue, double? NoiseVariance, double? MeanGradProjectionSq);

/// <summary>The scalars of summary.json the fit needs.</summary>
public sealed record CurvatureSummary(
    double? InitialLoss,
    double? GradientNoiseScale,
    double? GradientNoiseScaleTwoBatch,
    double? ParameterCount,
    double? TraceGgnDiagonal,
    double? TraceNoise,
    double? TopHessianEigenvalue,
    double? TopGgnEigenvalue,
    double? Examples = null,
    string? Checkpoint = null)
{
    /// <summary>tr(PΣ) under the checkpoint's optimizer's own preconditioner (summary.json preconditioned.trace_noise); null without one.</summary>
    public double? PreconditionedTraceNoise { get; init; }
    /// <summary>The preconditioned simple noise scale tr(PΣ)/gᵀPg (McCandlish's B_simple for a preconditioned optimizer).</summary>
    public double? PreconditionedBSimple { get; init; }
    /// <summary>Where P came from (e.g. "adam trial's own state at step 139 (B = 16)").</summary>
    public string? PreconditionerSource { get; init; }
}

/// <summary>What the curvature stage measured (docs/formats.md, Curvature).</summary>
public sealed record CurvatureResults(
    string Directory,
    IReadOnlyList<MeasuredBin> Bins,
    IReadOnlyList<MeasuredEigen> Eigen,
    IReadOnlyList<DensityRow> Density,
    CurvatureSummary Summary,
    string? Name = null)
{
    /// <summary>
    /// The checkpoint's label: <see cref="Name"/> when given (a trajectory's checkpoint: sgd-b16-r0/loss-1), else its
    /// directory name (init, warmup-200, ...), as `nqm curvature` names it.
    /// </summary>
    public string Label => Name ?? System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(Directory));

    /// <summary>
    /// The checkpoint directory given and, when it is one of several written by one `nqm curvature` run
    /// (DIR/init, DIR/warmup-200, ...), its sibling checkpoints: the given one first.
    /// </summary>
    public static IReadOnlyList<CurvatureResults> LoadWithSiblings(string directory)
    {
        var given = Load(directory);
        var parent = System.IO.Path.GetDirectoryName(System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(directory)));
        var list = new List<CurvatureResults> { given };
        if (parent is null || File.Exists(System.IO.Path.Combine(parent, "spectrum.csv"))) return list;
        foreach (var sibling in System.IO.Directory.GetDirectories(parent).Order(StringComparer.Ordinal))
            if (System.IO.Path.GetFullPath(sibling) != System.IO.Path.GetFullPath(directory).TrimEnd('/')
                && File.Exists(System.IO.Path.Combine(sibling, "spectrum.csv")) && File.Exists(System.IO.Path.Combine(sibling, "summary.json")))
                list.Add(Load(sibling));
        return list;
    }

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
        string densityPath = Path.Combine(directory, DensityFile.FileName);
        IReadOnlyList<DensityRow> density;
        try { density = !File.Exists(densityPath) ? [] : DensityFile.Read(densityPath); }
        catch (TableFileException e) { throw new RunFileException(e.Message, e); }
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
                First(root, "top_eigenvalues", "ggn"),
                At(root, "examples"),
                root.TryGetProperty("checkpoint", out var cp) && cp.ValueKind == JsonValueKind.String ? cp.GetString() : null)
            {
                PreconditionedTraceNoise = At(root, "preconditioned", "trace_noise"),
                PreconditionedBSimple = At(root, "preconditioned", "b_simple"),
                PreconditionerSource = root.TryGetProperty("preconditioned", out var pc) && pc.ValueKind == JsonValueKind.Object
                    && pc.TryGetProperty("source", out var ps) && ps.ValueKind == JsonValueKind.String ? ps.GetString() : null,
            };
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
