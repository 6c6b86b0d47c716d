using System.Globalization;
using System.Text.Json;
using CsvHelper;
using NqmValidate.Common;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Verification;

/// <summary>A run directory that cannot be verified as given; the message names the file and the fault.</summary>
public sealed class VerifyInputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One row of a sweep's trials.csv (docs/formats.md): how the trial counted in its study.</summary>
public sealed record TrialsCsvRow(
    string Study, string Optimizer, int BatchSize, string Trial, long Seed, double LearningRate, string Status,
    long? StepsToTarget, long StepsRun, double? InitialLoss, double? FinalLoss, long? StepCap, int Replicate);

/// <summary>
/// A finished run as <c>nqm verify</c> reads it: a sweep directory (trials.csv, spec.json, trials/…), or a validate
/// run directory holding one in sweep/ (its validation/provenance.json then gives the spec and the machine when the
/// sweep directory keeps neither, as in the committed runs under experiments/results/, which keep only the tables).
/// </summary>
public sealed class RecordedRun
{
    public string Root { get; }
    public string SweepDirectory { get; }
    public IReadOnlyList<TrialsCsvRow> Rows { get; }
    /// <summary>The plan of the spec the sweep ran (null when neither spec.json nor provenance.json is there).</summary>
    public SweepPlan? Plan { get; }
    /// <summary>Where the spec came from (for messages).</summary>
    public string? SpecSource { get; }
    /// <summary>provenance.json's machine (validate runs made since it is recorded), else null.</summary>
    public MachineProvenance? ProvenanceMachine { get; }
    /// <summary>provenance.json's versions, else null.</summary>
    public VersionInfo? ProvenanceVersions { get; }

    RecordedRun(string root, string sweepDir, IReadOnlyList<TrialsCsvRow> rows, SweepPlan? plan, string? specSource,
        MachineProvenance? machine, VersionInfo? versions)
    {
        (Root, SweepDirectory, Rows, Plan, SpecSource, ProvenanceMachine, ProvenanceVersions) =
            (root, sweepDir, rows, plan, specSource, machine, versions);
    }

    public string TrialDirectory(TrialsCsvRow row) => Path.Combine(SweepDirectory, "trials", row.Study, row.Trial);

    /// <summary>Reads a run directory (a sweep directory or a validate run with sweep/).</summary>
    public static RecordedRun Open(string directory)
    {
        string root = Path.GetFullPath(directory);
        if (!Directory.Exists(root)) throw new VerifyInputException($"{directory}: no such directory.");
        string sweep = File.Exists(Path.Combine(root, "trials.csv")) ? root : Path.Combine(root, "sweep");
        string trialsCsv = Path.Combine(sweep, "trials.csv");
        if (!File.Exists(trialsCsv))
            throw new VerifyInputException($"{directory}: not a run directory (neither {Path.Combine(root, "trials.csv")} nor {trialsCsv} exists).");
        var rows = ReadTrialsCsv(trialsCsv);
        if (rows.Count == 0) throw new VerifyInputException($"{trialsCsv}: no trials.");

        string provenancePath = Path.Combine(root, "validation", "provenance.json");
        JsonElement? provenance = null;
        if (File.Exists(provenancePath))
        {
            try { provenance = JsonDocument.Parse(File.ReadAllText(provenancePath)).RootElement; }
            catch (JsonException e) { throw new VerifyInputException($"{provenancePath}: not valid JSON: {e.Message}", e); }
        }

        SweepPlan? plan = null;
        string? specSource = null;
        string specJson = Path.Combine(sweep, "spec.json");
        try
        {
            if (File.Exists(specJson))
            {
                plan = SweepPlan.Create(SpecLoader.Load(specJson));
                specSource = specJson;
            }
            else if (provenance is { } p && p.TryGetProperty("spec", out var specNode))
            {
                // provenance.json keeps the spec file as given; the sweep ran it with the resolved thread count.
                var spec = SpecLoader.Parse(specNode.GetRawText(), $"{provenancePath} (spec)");
                if (p.TryGetProperty("resolved_threads", out var t) && t.ValueKind == JsonValueKind.Number)
                    spec = spec with { Threads = t.GetInt32() };
                plan = SweepPlan.Create(spec);
                specSource = $"{provenancePath} (spec)";
            }
        }
        catch (SpecException e)
        {
            throw new VerifyInputException($"the run's spec cannot be read by this nqm: {e.Message}", e);
        }

        return new RecordedRun(root, sweep, rows, plan, specSource,
            provenance is { } q ? Optional<MachineProvenance>(q, "machine", provenancePath) : null,
            provenance is { } v ? Optional<VersionInfo>(v, "versions", provenancePath) : null);
    }

    static T? Optional<T>(JsonElement root, string name, string source) where T : class
    {
        if (!root.TryGetProperty(name, out var node) || node.ValueKind == JsonValueKind.Null) return null;
        try { return node.Deserialize<T>(TrialJson.Options); }
        catch (JsonException e) { throw new VerifyInputException($"{source}: `{name}` unreadable: {e.Message}", e); }
    }

    static List<TrialsCsvRow> ReadTrialsCsv(string path)
    {
        try
        {
            using var reader = new StreamReader(path);
            using var csv = new CsvReader(reader, CultureInfo.InvariantCulture);
            var rows = new List<TrialsCsvRow>();
            if (!csv.Read()) return rows;
            csv.ReadHeader();
            foreach (var column in new[] { "study", "optimizer", "batch_size", "trial", "seed", "learning_rate", "status", "steps_run" })
                if (!csv.HeaderRecord!.Contains(column)) throw new VerifyInputException($"{path}: column `{column}` missing.");
            while (csv.Read())
            {
                string? S(string name) => csv.TryGetField(name, out string? s) && s is { Length: > 0 } ? s : null;
                double? D(string name) => S(name) is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : null;
                long? L(string name) => S(name) is { } s ? long.Parse(s, CultureInfo.InvariantCulture) : null;
                rows.Add(new TrialsCsvRow(S("study")!, S("optimizer")!, (int)L("batch_size")!.Value, S("trial")!, L("seed")!.Value,
                    D("learning_rate")!.Value, S("status")!, L("steps_to_target"), L("steps_run") ?? 0, D("initial_loss"), D("final_loss"),
                    L("step_cap"), (int)(L("replicate") ?? 0)));
            }
            return rows;
        }
        catch (Exception e) when (e is CsvHelperException or FormatException or InvalidOperationException or OverflowException)
        {
            throw new VerifyInputException($"{path}: unreadable: {e.Message}", e);
        }
    }
}
