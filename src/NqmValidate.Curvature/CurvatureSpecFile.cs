using System.Text.Json;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Curvature;

/// <summary>
/// Reads what the curvature stage needs from an experiment spec (experiments/*.json), and nothing else, so the
/// sweep's format can grow without touching this stage: <c>seed</c>, <c>workload.model</c> (name, hidden_widths,
/// width_multiplier, blocks_per_stage), <c>workload.data.dir</c>, and the optional <c>curvature</c> section, whose
/// keys this stage owns (unknown keys there are errors): checkpoint (string or list), examples, chunk_size,
/// mc_samples, exact_ggn, top_k, lanczos_steps, hutchinson_probes, slq_probes, slq_steps, operators, small_batch,
/// bins_per_decade, measure_seed, parameters_bin, seed, warmup { optimizer, learning_rate, momentum, batch_size } and
/// trajectory { levels, optimizers, batch_sizes }.
/// </summary>
public static class CurvatureSpecFile
{
    /// <summary>The values found; null = not given (the command's defaults apply).</summary>
    public sealed record Values
    {
        public ModelSpec? Model { get; init; }
        public string? DataDir { get; init; }
        public string? Checkpoint { get; init; }
        public OptimizerSpec? Optimizer { get; init; }
        public int? BatchSize { get; init; }
        public long? Seed { get; init; }
        public CurvatureSettings? Settings { get; init; }
        public bool ParametersBin { get; init; }
        /// <summary>The `trajectory` section: curvature along the sweep's best trials (null = none).</summary>
        public TrajectorySpec? Trajectory { get; init; }

        /// <summary>The spec's checkpoints (an error names `curvature.checkpoint`, not a flag), else init.</summary>
        IReadOnlyList<Checkpoint> SpecCheckpoints()
        {
            if (Checkpoint is null) return [new Curvature.Checkpoint(0)];
            try { return Curvature.Checkpoint.ParseList(Checkpoint); }
            catch (CurvatureInputException e) when (e.Message.StartsWith("--checkpoint", StringComparison.Ordinal))
            {
                throw new CurvatureInputException("spec curvature.checkpoint" + e.Message["--checkpoint".Length..]);
            }
        }

        /// <summary>The request these values give, every value not given at its default.</summary>
        public CurvatureRunRequest ToRequest(string outDir) => new()
        {
            Model = Model ?? new ModelSpec(),
            DataDir = DataDir,
            Checkpoints = SpecCheckpoints(),
            Optimizer = Optimizer ?? new OptimizerSpec(),
            BatchSize = BatchSize ?? 128,
            Seed = Seed ?? 0,
            Settings = Settings ?? new CurvatureSettings(),
            OutDir = outDir,
            ParametersBin = ParametersBin,
        };
    }

    /// <summary>
    /// The values of a loaded experiment spec: its typed workload and seed, and its `curvature` section (this
    /// stage's own keys). What `nqm validate` runs, from the same spec object its sweep ran.
    /// </summary>
    public static Values From(ExperimentSpec spec, string source)
    {
        if (spec.Workload?.Model is null)
            throw new CurvatureInputException($"{source}: workload.model: missing; the curvature stage needs the model.");
        var values = new Values { Model = SpecValidation.ToModelSpec(spec.Workload.Model), DataDir = spec.Workload.Data.Dir, Seed = spec.Seed };
        values = ReadSection(source, values, spec.Curvature, spec.Seed);
        values.Trajectory?.Validate(spec, $"{source}: curvature.trajectory");
        return values;
    }

    static readonly string[] CurvatureKeys =
    [
        "checkpoint", "examples", "chunk_size", "mc_samples", "exact_ggn", "top_k", "lanczos_steps", "hutchinson_probes",
        "slq_probes", "slq_steps", "operators", "small_batch", "bins_per_decade", "measure_seed", "parameters_bin", "seed", "warmup", "trajectory",
    ];
    static readonly string[] WarmupKeys = ["optimizer", "learning_rate", "momentum", "batch_size"];
    static readonly string[] TrajectoryKeys = ["levels", "optimizers", "batch_sizes"];

    public static Values Load(string path)
    {
        if (!File.Exists(path)) throw new CurvatureInputException($"{path}: spec file not found.");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new CurvatureInputException($"{path}: not valid JSON: {e.Message}"); }
        using (doc) return Read(path, doc.RootElement);
    }

    static Values Read(string path, JsonElement root)
    {
        string Where(string field) => $"{path}: {field}";
        if (root.ValueKind != JsonValueKind.Object) throw new CurvatureInputException(Where("the spec must be a JSON object."));
        var values = new Values();
        long? rootSeed = root.TryGetProperty("seed", out var seedElement) ? Long(seedElement, Where("seed")) : null;

        if (root.TryGetProperty("workload", out var workload) && workload.ValueKind == JsonValueKind.Object)
        {
            if (workload.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.Object)
            {
                var name = model.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : throw new CurvatureInputException(Where("workload.model.name: missing or not a string."));
                values = values with
                {
                    Model = new ModelSpec(name,
                        model.TryGetProperty("hidden_widths", out var h) ? h.EnumerateArray().Select(e => (int)Long(e, Where("workload.model.hidden_widths"))).ToArray() : null,
                        model.TryGetProperty("width_multiplier", out var w) ? Double(w, Where("workload.model.width_multiplier")) : null,
                        model.TryGetProperty("blocks_per_stage", out var b) ? (int)Long(b, Where("workload.model.blocks_per_stage")) : null),
                };
            }
            if (workload.TryGetProperty("data", out var data) && data.TryGetProperty("dir", out var dir) && dir.ValueKind == JsonValueKind.String)
                values = values with { DataDir = dir.GetString() };
        }
        if (values.Model is null)
            throw new CurvatureInputException(Where("workload.model: missing; --spec needs an experiment spec whose workload names the model (e.g. experiments/fmnist-mlp.json)."));
        values = values with { Seed = rootSeed };
        return ReadSection(path, values, root.TryGetProperty("curvature", out var c) ? c : null, rootSeed);
    }

    /// <summary>Reads the `curvature` section (null or absent: none) over <paramref name="values"/>.</summary>
    static Values ReadSection(string path, Values values, JsonElement? section, long? rootSeed)
    {
        if (section is not { } c || c.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return values;
        RequireObject(c, CurvatureKeys, path, "curvature");
        // Read in this order (settings, checkpoint, warmup, trajectory, seed): with several faults, the first one named stays the same.
        var settings = ReadSettings(c, path);
        string? checkpoint = ReadCheckpoint(c, path);
        var (optimizer, batch) = ReadWarmup(c, path);
        var trajectory = ReadTrajectory(c, path);
        return values with
        {
            Trajectory = trajectory,
            Settings = settings,
            Checkpoint = checkpoint,
            Optimizer = optimizer,
            BatchSize = batch,
            Seed = c.TryGetProperty("seed", out var cs) ? Long(cs, $"{path}: curvature.seed") : rootSeed,
            ParametersBin = SectionBool(c, "parameters_bin", path) ?? false,
        };
    }

    /// <summary>The measurement settings of the section; a key not given keeps its default.</summary>
    static CurvatureSettings ReadSettings(JsonElement c, string path)
    {
        var s = new CurvatureSettings();
        return s with
        {
            Examples = SectionInt(c, "examples", path) ?? s.Examples,
            ChunkSize = SectionInt(c, "chunk_size", path) ?? s.ChunkSize,
            McSamples = SectionInt(c, "mc_samples", path) ?? s.McSamples,
            ExactGgn = SectionBool(c, "exact_ggn", path) ?? s.ExactGgn,
            TopK = SectionInt(c, "top_k", path) ?? s.TopK,
            LanczosSteps = SectionInt(c, "lanczos_steps", path) ?? s.LanczosSteps,
            HutchinsonProbes = SectionInt(c, "hutchinson_probes", path) ?? s.HutchinsonProbes,
            SlqProbes = SectionInt(c, "slq_probes", path) ?? s.SlqProbes,
            SlqSteps = SectionInt(c, "slq_steps", path) ?? s.SlqSteps,
            SmallBatch = SectionInt(c, "small_batch", path) ?? s.SmallBatch,
            BinsPerDecade = SectionInt(c, "bins_per_decade", path) ?? s.BinsPerDecade,
            Seed = c.TryGetProperty("measure_seed", out var ms) ? (ulong)Long(ms, $"{path}: curvature.measure_seed") : s.Seed,
            Operators = c.TryGetProperty("operators", out var ops)
                ? ops.EnumerateArray().Select(o => o.GetString() ?? throw new CurvatureInputException($"{path}: curvature.operators: strings expected.")).ToArray()
                : s.Operators,
        };
    }

    /// <summary>`checkpoint`: a string or a list of them, joined with commas as the --checkpoint flag takes them.</summary>
    static string? ReadCheckpoint(JsonElement c, string path) =>
        !c.TryGetProperty("checkpoint", out var cp) ? null
        : cp.ValueKind switch
        {
            JsonValueKind.String => cp.GetString(),
            JsonValueKind.Array => string.Join(",", cp.EnumerateArray().Select(e => e.GetString())),
            _ => throw new CurvatureInputException($"{path}: curvature.checkpoint: a string (init, warmup:STEPS) or a list of them."),
        };

    /// <summary>`warmup`: the optimizer and batch size of the steps before a warmup checkpoint (null: not given).</summary>
    static (OptimizerSpec? Optimizer, int? BatchSize) ReadWarmup(JsonElement c, string path)
    {
        if (!c.TryGetProperty("warmup", out var warm)) return (null, null);
        RequireObject(warm, WarmupKeys, path, "curvature.warmup");
        var o = new OptimizerSpec();
        var optimizer = o with
        {
            Name = warm.TryGetProperty("optimizer", out var on) ? on.GetString() ?? o.Name : o.Name,
            LearningRate = warm.TryGetProperty("learning_rate", out var lr) ? Double(lr, $"{path}: curvature.warmup.learning_rate") : o.LearningRate,
        };
        if (warm.TryGetProperty("momentum", out var mo)) optimizer = optimizer.With("momentum", Double(mo, $"{path}: curvature.warmup.momentum"));
        int? batch = warm.TryGetProperty("batch_size", out var bs) ? (int)Long(bs, $"{path}: curvature.warmup.batch_size") : null;
        return (optimizer, batch);
    }

    /// <summary>`trajectory`: curvature along the sweep's best trials (null: not given).</summary>
    static TrajectorySpec? ReadTrajectory(JsonElement c, string path)
    {
        if (!c.TryGetProperty("trajectory", out var tr)) return null;
        RequireObject(tr, TrajectoryKeys, path, "curvature.trajectory");
        string Where(string key) => $"{path}: curvature.trajectory.{key}";
        IReadOnlyList<T>? List<T>(string key, Func<JsonElement, string, T> item) =>
            !tr.TryGetProperty(key, out var e) ? null
            : e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().Select(x => item(x, Where(key))).ToList()
            : throw new CurvatureInputException($"{Where(key)}: must be a list.");
        return new TrajectorySpec(
            List("levels", Double) ?? throw new CurvatureInputException($"{Where("levels")}: missing; give the training-loss levels to measure at (e.g. [1.0, 0.6])."),
            List("optimizers", (x, w) => x.ValueKind == JsonValueKind.String ? x.GetString()! : throw new CurvatureInputException($"{w}: optimizer names expected.")),
            List("batch_sizes", (x, w) => (int)Long(x, w)));
    }

    /// <summary>An integer key of the `curvature` section (null: not given).</summary>
    static int? SectionInt(JsonElement c, string key, string path) =>
        c.TryGetProperty(key, out var e) ? (int)Long(e, $"{path}: curvature.{key}") : null;

    /// <summary>A true/false key of the `curvature` section (null: not given).</summary>
    static bool? SectionBool(JsonElement c, string key, string path) =>
        c.TryGetProperty(key, out var e)
            ? e.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw new CurvatureInputException($"{path}: curvature.{key}: must be true or false.") }
            : null;

    /// <summary>The section at <paramref name="field"/> is a JSON object holding only <paramref name="keys"/>; else an error naming the field and the keys allowed.</summary>
    static void RequireObject(JsonElement section, string[] keys, string path, string field)
    {
        if (section.ValueKind != JsonValueKind.Object) throw new CurvatureInputException($"{path}: {field}: must be a JSON object.");
        foreach (var property in section.EnumerateObject())
            if (!keys.Contains(property.Name))
                throw new CurvatureInputException($"{path}: {field}.{property.Name}: unknown key; valid: {string.Join(", ", keys)}.");
    }

    static long Long(JsonElement e, string where) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) ? v : throw new CurvatureInputException($"{where}: must be an integer.");

    static double Double(JsonElement e, string where) =>
        e.ValueKind == JsonValueKind.Number ? e.GetDouble() : throw new CurvatureInputException($"{where}: must be a number.");
}
