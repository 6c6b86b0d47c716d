using System.Text.Json;
using System.Text.Json.Nodes;
using NqmValidate.Cli;
using NqmValidate.Torch.Tests.Sweeps;
using Xunit.Abstractions;

namespace NqmValidate.Torch.Tests.Reliability;

/// <summary>
/// #14's fuzz-style test: generated bad experiment specs and bad command lines, run in-process.
/// Each must exit 2 with a one-line message (plus the usage line for command-line errors), write
/// no file outside its --out, and leave no half-written result (nothing at all in --out, since
/// every fault is found before work starts).
/// </summary>
[Collection("console")]
public class FuzzTests(ITestOutputHelper output)
{
    /// <summary>Every JSON path of a node (objects and leaves), e.g. ["workload", "model", "name"].</summary>
    static IEnumerable<(JsonNode Parent, object Key, JsonNode? Value)> Walk(JsonNode node)
    {
        if (node is JsonObject o)
            foreach (var (k, v) in o.ToList())
            {
                yield return (o, k, v);
                if (v is not null) foreach (var x in Walk(v)) yield return x;
            }
        else if (node is JsonArray a)
            for (int i = 0; i < a.Count; i++)
            {
                yield return (a, i, a[i]);
                if (a[i] is not null) foreach (var x in Walk(a[i]!)) yield return x;
            }
    }

    static string With(JsonNode root, Func<JsonNode, bool> change)
    {
        var copy = root.DeepClone();
        return change(copy) ? copy.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : "";
    }

    static void Set(JsonNode parent, object key, JsonNode? value)
    {
        if (parent is JsonObject o) o[(string)key] = value;
        else ((JsonArray)parent)[(int)key] = value;
    }

    /// <summary>Specs that are invalid by construction: each breaks one thing the validation must catch.</summary>
    public static List<(string Label, string Json)> BadSpecs()
    {
        var root = JsonNode.Parse(SweepTestKit.SmallSpecJson)!;
        var specs = new List<(string, string)>();
        var paths = Walk(root).Select((x, i) => i).ToList();
        for (int index = 0; index < paths.Count; index++)
        {
            int at = index;
            (JsonNode, object, JsonNode?) Pick(JsonNode copy) => Walk(copy).ElementAt(at);
            var (_, key, value) = Walk(root).ElementAt(at);
            string label = $"{key}";
            // 1. The wrong JSON type.
            specs.Add(($"{label}: wrong type", With(root, c =>
            {
                var (p, k, v) = Pick(c);
                Set(p, k, v switch
                {
                    JsonObject => new JsonArray(1, 2),
                    JsonArray => JsonValue.Create("list?"),
                    JsonValue jv when jv.GetValueKind() == JsonValueKind.String => new JsonArray("x"),
                    _ => JsonValue.Create("not a number"),
                });
                return true;
            })));
            // 2. An unknown key in every object.
            if (value is JsonObject)
                specs.Add(($"{label}: unknown key", With(root, c => { ((JsonObject)Pick(c).Item3!)["surprise_key"] = 1; return true; })));
            // 3. Out-of-range numbers, empty and path-like strings.
            if (value is JsonValue number && number.GetValueKind() == JsonValueKind.Number)
            {
                specs.Add(($"{label}: -1", With(root, c => { var (p, k, _) = Pick(c); Set(p, k, JsonValue.Create(-1)); return true; })));
                specs.Add(($"{label}: 1e999", With(root, c => { var (p, k, _) = Pick(c); Set(p, k, JsonValue.Create(double.MaxValue)); return true; }).Replace("1.7976931348623157E+308", "1e999")));
            }
            if (value is JsonValue text && text.GetValueKind() == JsonValueKind.String)
                foreach (var s in new[] { "", "../../escaped", "/abs/path", "bad\nname", "$(touch PWNED)" })
                    specs.Add(($"{label}: \"{s}\"", With(root, c => { var (p, k, _) = Pick(c); Set(p, k, JsonValue.Create(s)); return true; })));
        }
        // 4. Each required section missing.
        foreach (var key in new[] { "name", "workload", "batch_sizes", "optimizers", "budget" })
            specs.Add(($"no {key}", With(root, c => ((JsonObject)c).Remove(key))));
        // 5. Truncated text (malformed JSON), a duplicated key, not an object at all.
        string full = SweepTestKit.SmallSpecJson.Trim();
        for (int cut = 1; cut < full.Length - 1; cut += 23) specs.Add(($"cut at {cut}", full[..cut]));
        specs.Add(("duplicate key", full.Replace("\"seed\": 7,", "\"seed\": 7, \"seed\": 8,")));
        specs.Add(("null", "null"));
        specs.Add(("array", "[1, 2]"));
        specs.Add(("empty", ""));
        specs.Add(("batch above the data set", full.Replace("[16, 64, 256]", "[16, 55001]")));
        specs.Add(("missing data dir", full.Replace("\"model\":", "\"data\": { \"dir\": \"/no/such/fashion-mnist\" }, \"model\":")));
        return specs;
    }

    /// <summary>Bad command lines: type errors for every typed option, unknown options, missing values, and known semantic faults.</summary>
    static List<string[]> BadCommandLines(string spec, string sweepDir, string textFile)
    {
        var lines = new List<string[]>();
        var root = NqmApp.BuildRoot();
        string[] Required(System.CommandLine.Command c) =>
        [
            .. c.Arguments.SelectMany(a => new[] { a.Name == "DIR" ? sweepDir : sweepDir }),
            .. c.Options.Where(o => o.Required && o.Name != "--out").SelectMany(o => new[]
                { o.Name, o.Name == "--spec" ? spec : o.Name == "--target-loss" ? "1" : sweepDir }),
        ];
        foreach (var c in root.Subcommands)
        {
            lines.Add([c.Name, .. Required(c), "--no-such-option", "1", "--out", "OUT"]);
            lines.Add([c.Name, .. Required(c), "--out"]); // --out without its value (or an unknown --out)
            foreach (var o in c.Options.Where(o => o.Name != "--out"))
            {
                var t = Nullable.GetUnderlyingType(o.ValueType) ?? o.ValueType;
                if (t == typeof(int) || t == typeof(long) || t == typeof(double) || t == typeof(ulong))
                {
                    lines.Add([c.Name, .. Required(c).Where((_, i) => true), o.Name, "twelve", "--out", "OUT"]);
                    lines.Add([c.Name, .. Required(c), o.Name, "1e999x", "--out", "OUT"]);
                }
                if (t == typeof(bool))
                    lines.Add([c.Name, .. Required(c), o.Name, "perhaps", "--out", "OUT"]);
            }
            if (c.Options.Any(o => o.Required && o.Name != "--out") || c.Arguments.Count > 0)
                lines.Add([c.Name, "--out", "OUT"]); // a required option or argument missing
        }
        foreach (var (o, v) in new[] { ("--target", "0"), ("--target", "-1"), ("--target", "NaN"), ("--target", "Infinity"), ("--pieces", "0"), ("--pieces", "-3"),
                     ("--threads", "0"), ("--batch-sizes", "4,4"), ("--batch-sizes", "1..1e9:+1e-9"), ("--batch-sizes", "0,4"), ("--batch-sizes", "4..2:x1"),
                     ("--precond-powers", "2"), ("--precond-powers", "x"), ("--search", "magic"), ("--optimizers", "adamw"), ("--spectrum", "/no/such.csv"),
                     ("--spectrum", textFile), ("--spec", textFile), ("--spec", "/no/such.json") })
            lines.Add(["simulate", o, v, "--out", "OUT"]);
        lines.Add(["fit", "--sweep", sweepDir, "--curvature", sweepDir, "--target-loss", "0.3", "--out", "OUT"]);
        lines.Add(["fit", "--sweep", sweepDir, "--curvature", sweepDir, "--target-loss", "-1", "--out", "OUT"]);
        lines.Add(["fit", "--sweep", sweepDir, "--curvature", sweepDir, "--target-loss", "1", "--fit-options", textFile, "--out", "OUT"]);
        lines.Add(["sweep", "--spec", spec, "--out", "OUT", "--shard", "3/2"]);
        lines.Add(["sweep", "--spec", spec, "--out", "OUT", "--order", "random"]);
        lines.Add(["sweep", "--spec", spec, "--out", "OUT", "--jobs", "0"]);
        lines.Add(["sweep", "--spec", spec, "--out", "OUT", "--device", "tpu"]);
        lines.Add(["sweep", "--spec", spec, "--out", "OUT", "--data-dir", "/no/such/data"]);
        lines.Add(["sweep", "--spec", textFile, "--out", "OUT"]);
        lines.Add(["merge", "--out", "OUT", "/no/such/sweep"]);
        lines.Add(["report", "OUT"]);
        lines.Add(["train", "--model", "mlp", "--learning-rate", "0.1", "--target-loss", "1", "--optimizer", "rmsprop", "--out", "OUT"]);
        lines.Add(["train", "--model", "transformer", "--learning-rate", "0.1", "--target-loss", "1", "--out", "OUT"]);
        lines.Add(["train", "--model", "mlp", "--learning-rate", "0.1", "--target-loss", "1", "--target-error", "0.1", "--out", "OUT"]);
        lines.Add(["curvature", "--examples", "1", "--out", "OUT"]);
        lines.Add(["curvature", "--spec", textFile, "--out", "OUT"]);
        lines.Add(["validate", "--spec", textFile, "--out", "OUT"]);
        return lines;
    }

    [Fact]
    public async Task HundredsOfBadSpecsAndCommandLinesExitTwoWithOneLineAndWriteNothing()
    {
        string sandbox = SweepTestKit.TempDir("fuzz");
        string inputs = Path.Combine(sandbox, "inputs");
        Directory.CreateDirectory(inputs);
        string good = Path.Combine(inputs, "good.json");
        File.WriteAllText(good, SweepTestKit.SmallSpecJson);
        string textFile = Path.Combine(inputs, "notes.txt");
        File.WriteAllText(textFile, "h,c,count\n-1,1,1\nthis is not json nor a spectrum\n");
        string sweepDir = Path.Combine(inputs, "sweep");
        new NqmValidate.Training.Sweeps.ResultsStore(sweepDir).Open(SweepTestKit.SmallSpec());
        var inputFiles = CliHarness.Files(inputs);
        var crashLogs = CliHarness.TempCrashLogs();

        var cases = new List<(string Label, string[] Args, bool CommandLine)>();
        int n = 0;
        foreach (var (label, json) in BadSpecs())
        {
            string path = Path.Combine(inputs, $"spec-{n++}.json");
            File.WriteAllText(path, json);
            cases.Add(($"spec {label}", ["sweep", "--spec", path, "--out", "OUT", "--progress", "none"], false));
            if (n % 5 == 0) cases.Add(($"validate spec {label}", ["validate", "--spec", path, "--out", "OUT"], false));
        }
        inputFiles = CliHarness.Files(inputs);
        foreach (var args in BadCommandLines(good, sweepDir, textFile))
            cases.Add((string.Join(' ', args), args, true));

        var codes = new Dictionary<int, int>();
        var failures = new List<string>();
        int i = 0;
        foreach (var (label, template, _) in cases)
        {
            string outDir = Path.Combine(sandbox, "runs", $"case-{i++}", "out");
            var args = template.Select(a => a == "OUT" ? outDir : a).ToArray();
            var r = await CliHarness.Run(args);
            codes[r.Code] = codes.GetValueOrDefault(r.Code) + 1;
            var lines = r.ErrLines;
            bool oneLine = lines.Length == 1 || (lines.Length == 2 && lines[1].StartsWith("usage: ", StringComparison.Ordinal));
            var outside = CliHarness.Files(sandbox).Where(f => !f.StartsWith("inputs/", StringComparison.Ordinal) || !inputFiles.Contains(f[7..]))
                .Where(f => !f.StartsWith(Path.GetRelativePath(sandbox, outDir) + "/", StringComparison.Ordinal)).ToList();
            var written = CliHarness.Files(outDir);
            if (r.Code != 2 || !oneLine || outside.Count > 0 || written.Count > 0
                || r.Err.Contains("   at ", StringComparison.Ordinal) || r.Err.Contains("System.", StringComparison.Ordinal))
                failures.Add($"{label}: exit {r.Code}; stderr {lines.Length} line(s): {string.Join(" | ", lines.Take(3))}" +
                             (outside.Count > 0 ? $"; wrote outside --out: {string.Join(", ", outside.Take(3))}" : "") +
                             (written.Count > 0 ? $"; wrote in --out: {string.Join(", ", written.Take(3))}" : ""));
            if (Directory.Exists(Path.GetDirectoryName(outDir))) Directory.Delete(Path.GetDirectoryName(outDir)!, true);
        }
        var newLogs = CliHarness.TempCrashLogs().Except(crashLogs).ToList();
        int specCases = cases.Count(c => !c.CommandLine), cliCases = cases.Count(c => c.CommandLine);
        output.WriteLine($"fuzz: {cases.Count} cases ({specCases} bad specs, {cliCases} bad command lines); exit codes: " +
                         string.Join(", ", codes.OrderBy(c => c.Key).Select(c => $"{c.Key} × {c.Value}")));
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases failed:\n" + string.Join("\n", failures.Take(40)));
        Assert.Empty(newLogs);
        Assert.InRange(cases.Count, 300, 2000);
    }
}
