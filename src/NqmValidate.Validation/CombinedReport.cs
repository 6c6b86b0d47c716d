using System.Globalization;
using System.Text.Json;
using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// One run of a combined view: its validation directory, the workload's name (the spec's `name` from provenance.json or
/// the sweep's spec.json beside it; else the run's folder), and the files its report reads.
/// </summary>
internal sealed record CombinedRun(string Directory, string Name, ReportFiles Files);

/// <summary>
/// The combined view over several runs (issue #13 item 5, `nqm report RUN1 RUN2 … --combined OUT`): one page that puts every
/// run's verdicts, per-optimizer errors and critical batch sizes side by side, one column per run. Like
/// <see cref="ValidationReport"/> it reads only the runs' files (verdicts.csv, errors.csv, scaling.csv, fit.json), so every
/// cell is traceable to a file of one run; a claim a run did not judge (an older run without (f)–(k)) shows "—".
/// </summary>
public static class CombinedReport
{
    /// <summary>The file name (without extension) the combined page is written under: OUT/combined.md and OUT/combined.html.</summary>
    public const string BaseName = "combined";

    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static ReportDocument Build(IReadOnlyList<string> validationDirectories)
    {
        if (validationDirectories.Count == 0) throw new ArgumentException("no run to combine", nameof(validationDirectories));
        var runs = Runs(validationDirectories);
        var doc = new ReportDocument("Does the NQM predict batch-size scaling? Every run side by side");
        IEnumerable<ReportBlock>[] sections = [Introduction(runs), Verdicts(runs), Errors(runs), CriticalBatchSizes(runs)];
        foreach (var block in sections.SelectMany(s => s)) doc.Add(block);
        return doc;
    }

    static List<CombinedRun> Runs(IReadOnlyList<string> directories)
    {
        var runs = directories.Select(d => (Dir: d, Name: WorkloadName(d), Files: ReportFiles.Read(d))).ToList();
        // Two runs of one spec (a re-run, a variant of the fit) get their folder's name beside the spec's, so columns stay apart.
        return runs.Select(r => new CombinedRun(r.Dir, runs.Count(o => o.Name == r.Name) > 1 ? $"{r.Name} ({RunFolder(r.Dir)})" : r.Name, r.Files)).ToList();
    }

    /// <summary>The workload's name: the spec's `name` as provenance.json recorded it, else the sweep's spec.json (../sweep/spec.json), else the run's folder.</summary>
    internal static string WorkloadName(string validationDirectory)
    {
        string full = Path.GetFullPath(validationDirectory);
        foreach (var (path, key) in new[] { (Path.Combine(full, ValidationFileNames.Provenance), "spec"), (Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(full)) ?? full, "sweep", "spec.json"), (string?)null) })
        {
            if (!File.Exists(path)) continue;
            try
            {
                using var json = JsonDocument.Parse(File.ReadAllText(path));
                var spec = key is null ? json.RootElement : json.RootElement.TryGetProperty(key, out var s) ? s : default;
                if (spec.ValueKind == JsonValueKind.Object && spec.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && name.GetString() is { Length: > 0 } n)
                    return n;
            }
            catch (JsonException) { } // an unreadable file names nothing; the folder does
        }
        return RunFolder(validationDirectory);
    }

    /// <summary>The run's folder: the parent of a `validation` folder, else the folder itself.</summary>
    static string RunFolder(string validationDirectory)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(validationDirectory));
        string leaf = Path.GetFileName(full);
        return leaf == "validation" ? Path.GetFileName(Path.GetDirectoryName(full) ?? full) : leaf;
    }

    static IEnumerable<ReportBlock> Introduction(IReadOnlyList<CombinedRun> runs)
    {
        yield return new Paragraph("Each column is one run: its verdicts (measured, and in brackets what its primary recipe's NQM predicts), its per-optimizer errors and its critical " +
            "batch sizes, copied from the run's own files. Each run keeps its own pre-registered primary recipe; a claim a run did not judge shows —.");
        yield return new Table(["run", "validation directory", "primary recipe (checkpoint, floor, s0, variant, calibration)"],
            // Relative to where the command ran (a committed page then names the runs by their place in the repository).
            runs.Select(r => (IReadOnlyList<string>)[r.Name, Path.GetRelativePath(Environment.CurrentDirectory, r.Directory),
                $"{r.Files.Recipe.Checkpoint}, {r.Files.Recipe.Floor}, {r.Files.Recipe.InitialCondition}, {r.Files.Recipe.Variant}, {r.Files.Recipe.Calibration}"]).ToList(),
            ValidationFileNames.Fit);
    }

    /// <summary>One row per claim (the claim text names the optimizer or trajectory of per-optimizer claims), in the order the runs list them.</summary>
    static IEnumerable<ReportBlock> Verdicts(IReadOnlyList<CombinedRun> runs)
    {
        yield return new Heading(1, "Verdicts");
        var claims = runs.SelectMany(r => r.Files.Verdicts.Select(v => (v.Id, v.Claim))).Distinct()
            .OrderBy(c => c.Id, StringComparer.Ordinal).ToList(); // (a)…(k): OrderBy is stable, so each id keeps its runs' order
        yield return new Table(["claim", .. runs.Select(r => r.Name)],
            claims.Select(c => (IReadOnlyList<string>)[c.Claim, .. runs.Select(r => r.Files.Verdicts.FirstOrDefault(v => v.Claim == c.Claim) is { } v
                ? v.Predicted == "—" ? v.Measured : $"{v.Measured} (NQM: {v.Predicted})" : "—")]).ToList(),
            ValidationFileNames.Verdicts);
        yield return new Paragraph("Each run's rules and evidence are in its own report; the rules are the same in every run of the same version.");
    }

    /// <summary>Per optimizer: the primary recipe's median |log2(predicted/measured)| under its calibration scheme, and the McCandlish baseline's under the same scheme.</summary>
    static IEnumerable<ReportBlock> Errors(IReadOnlyList<CombinedRun> runs)
    {
        yield return new Heading(1, "Prediction error per optimizer: median |log2(predicted / measured)|");
        var optimizers = runs.SelectMany(r => r.Files.Optimizers).Distinct().ToList();
        string Cell(ErrorRow? e, string scheme) => e is null || e.Points == 0 ? "—" : $"{Num(e.MedianAbsLog2, "F2")} (n={e.Points}, {scheme})";
        var rows = new List<IReadOnlyList<string>>();
        foreach (var o in optimizers)
        {
            rows.Add([$"{o}: NQM error, primary recipe", .. runs.Select(r => Cell(r.Files.Errors.FirstOrDefault(e => r.Files.IsPrimary(e.Variant) && e.Optimizer == o && e.Calibration == r.Files.Scheme), r.Files.Scheme))]);
            rows.Add([$"{o}: McCandlish baseline error", .. runs.Select(r => Cell(r.Files.Errors.FirstOrDefault(e => e.Variant == "mccandlish" && e.Optimizer == o && e.Calibration == r.Files.Scheme), r.Files.Scheme))]);
        }
        yield return new Table(["optimizer: predictor", .. runs.Select(r => r.Name)], rows, ValidationFileNames.Errors);
        yield return new Paragraph("0 = exact; 1 = off by a factor of 2; n = scored points. Both predictors are calibrated by the run's primary scheme on each optimizer's own points.");
    }

    /// <summary>Per optimizer: the measured critical batch size and the primary recipe's predicted one (labels where the guard rejects a fit).</summary>
    static IEnumerable<ReportBlock> CriticalBatchSizes(IReadOnlyList<CombinedRun> runs)
    {
        yield return new Heading(1, "Critical batch size B_noise: measured and NQM-predicted");
        var optimizers = runs.SelectMany(r => r.Files.Optimizers).Distinct().ToList();
        static ScalingRow? Sc(CombinedRun r, string source, string o) => r.Files.Scaling.FirstOrDefault(s => s.Source == source && s.Optimizer == o);
        var rows = new List<IReadOnlyList<string>>();
        foreach (var o in optimizers)
        {
            rows.Add([$"{o}: B_noise measured", .. runs.Select(r => Sc(r, "measured", o)?.BNoiseLabel ?? "—")]);
            rows.Add([$"{o}: B_noise NQM, primary recipe", .. runs.Select(r => ValidationReport.PrimaryScaling(r.Files.Scaling, r.Files.Primary, o)?.BNoiseLabel ?? "—")]);
        }
        yield return new Table(["optimizer: curve", .. runs.Select(r => r.Name)], rows, ValidationFileNames.Scaling);
        yield return new Paragraph($"B_noise is a number only when the S(B) fit's knee lies within the run's measured batch sizes and its RMS log2 residual is at most {ScalingFitResult.MaxRmsLog2Residual}; " +
            "otherwise the label says what the curve shows.");
    }

    static string Num(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, Inv) : "";
}
