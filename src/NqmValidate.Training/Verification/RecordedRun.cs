using System.Text.Json;
using NqmValidate.Common;
using NqmValidate.Formats;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Verification;

/// <summary>A run directory that cannot be verified as given; the message names the file and the fault.</summary>
public sealed class VerifyInputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A finished run as <c>nqm verify</c> reads it: a sweep directory (trials.csv, spec.json, trials/…), or a validate
/// run directory holding one in sweep/ (its validation/provenance.json then gives the spec and the machine when the
/// sweep directory keeps neither, as in the committed runs under experiments/results/, which keep only the tables).
/// </summary>
public sealed class RecordedRun
{
    public string Root { get; }
    public string SweepDirectory { get; }
    public IReadOnlyList<TrialsRow> Rows { get; }
    /// <summary>The plan of the spec the sweep ran (null when neither spec.json nor provenance.json is there).</summary>
    public SweepPlan? Plan { get; }
    /// <summary>Where the spec came from (for messages).</summary>
    public string? SpecSource { get; }
    /// <summary>provenance.json's machine (validate runs made since it is recorded), else null.</summary>
    public MachineProvenance? ProvenanceMachine { get; }
    /// <summary>provenance.json's versions, else null.</summary>
    public VersionInfo? ProvenanceVersions { get; }

    RecordedRun(string root, string sweepDir, IReadOnlyList<TrialsRow> rows, SweepPlan? plan, string? specSource,
        MachineProvenance? machine, VersionInfo? versions)
    {
        (Root, SweepDirectory, Rows, Plan, SpecSource, ProvenanceMachine, ProvenanceVersions) =
            (root, sweepDir, rows, plan, specSource, machine, versions);
    }

    public string TrialDirectory(TrialsRow row) => Path.Combine(SweepDirectory, "trials", row.Study, row.Trial);

    /// <summary>Reads a run directory (a sweep directory or a validate run with sweep/).</summary>
    public static RecordedRun Open(string directory)
    {
        string root = Path.GetFullPath(directory);
        if (!Directory.Exists(root)) throw new VerifyInputException($"{directory}: no such directory.");
        string sweep = File.Exists(Path.Combine(root, TrialsFile.FileName)) ? root : Path.Combine(root, "sweep");
        string trialsCsv = Path.Combine(sweep, TrialsFile.FileName);
        if (!File.Exists(trialsCsv))
            throw new VerifyInputException($"{directory}: not a run directory (neither {Path.Combine(root, TrialsFile.FileName)} nor {trialsCsv} exists).");
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

    static IReadOnlyList<TrialsRow> ReadTrialsCsv(string path)
    {
        try { return TrialsFile.Read(path).Rows; }
        catch (TableFileException e) { throw new VerifyInputException(e.Message, e); }
    }
}
