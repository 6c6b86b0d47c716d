using System.Globalization;
using NqmValidate.Common;
using System.Text.Json;
using System.Text.Json.Serialization;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;

namespace NqmValidate.Training.Sweeps;

// The experiment spec (experiments/*.json): one workload, the optimizers with their search
// spaces, the batch sizes, the budget rule and how to run. Configuration is built as
// defaults (the initialisers below) -> spec file -> command-line overrides (`with`), and an
// unknown key anywhere is an error (JsonUnmappedMemberHandling.Disallow), as in init2winit.
// The optional `curvature` and `fit` sections belong to later stages: they are kept as raw
// JSON here and validated by the stages that read them.

/// <summary>A whole experiment: studies = optimizers × batch sizes × seeds.</summary>
public sealed record ExperimentSpec
{
    /// <summary>Short name (used for Slurm job names); letters, digits, '-', '_', '.'.</summary>
    public string Name { get; init; } = "";
    /// <summary>The experiment seed every study and trial seed derives from.</summary>
    public long Seed { get; init; } = 0;
    public WorkloadSpec? Workload { get; init; }
    public IReadOnlyList<int>? BatchSizes { get; init; }
    public IReadOnlyList<OptimizerSearch>? Optimizers { get; init; }
    /// <summary>Independent replicates of every study (different trial seeds, same search points).</summary>
    public int Seeds { get; init; } = 1;
    public BudgetSpec? Budget { get; init; }
    public EvaluationSpec Evaluation { get; init; } = new();
    /// <summary>Intra-op threads of each trial process.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Trials run at once (each in a trial worker or a process of its own).</summary>
    public int Jobs { get; init; } = 1;
    public string Device { get; init; } = "cpu";
    /// <summary>Stop a trial once it has trained as many steps as its study's best so far.</summary>
    public bool Prune { get; init; } = true;
    /// <summary>Trial order within a study: `predicted` (nearest the optimum predicted from the
    /// previous batch size first) or `canonical` (search-space order).</summary>
    public string Order { get; init; } = "predicted";
    /// <summary>How trials are hosted: `worker` (default: persistent worker processes that load the data once and run
    /// trials one after another) or `per-trial` (one `nqm train` process per trial). Results are the same bit for bit,
    /// so, like `jobs`, it is not part of the results key. Null means the default.</summary>
    public string? TrialProcesses { get; init; }
    /// <summary>
    /// Trials a worker trains at once as one stacked model (<see cref="Stacks.TrialStack"/>): a study's trials then run
    /// in waves of this many, whose step caps come from the earlier waves (<see cref="StudyResults"/>). 1 (the default)
    /// trains every trial alone. Only MLP workloads and the optimizers with a stacked rule (sgd, momentum, nesterov, adam)
    /// stack; other optimizers of the same sweep run alone. Stacked trials agree with trials alone within seed noise, not
    /// bit for bit, and a wave prunes later than one trial at a time, so the stack is part of the results key.
    /// </summary>
    public int Stack { get; init; } = 1;
    /// <summary>The trial hosting in effect: <see cref="TrialProcesses"/> or its default.</summary>
    [JsonIgnore]
    public string TrialProcessMode => TrialProcesses ?? SpecValidation.TrialProcessModes[0];
    /// <summary>Curvature-stage settings, validated by that stage.</summary>
    public JsonElement? Curvature { get; init; }
    /// <summary>Fit/validation-stage settings, validated by that stage.</summary>
    public JsonElement? Fit { get; init; }
}

public sealed record WorkloadSpec
{
    public DataSpec Data { get; init; } = new();
    public ModelSettings? Model { get; init; }
    public TargetSpec? Target { get; init; }
}

public sealed record DataSpec
{
    /// <summary>Folder with the Fashion-MNIST IDX files; null = the trial's default ($NQM_DATA_DIR or the Debian package's folder).</summary>
    public string? Dir { get; init; }
}

/// <summary>The model, in the trial's own terms (NqmValidate.Training.Models.ModelRegistry).</summary>
public sealed record ModelSettings
{
    /// <summary>A model registry name: mlp, cnn, cnn-narrow, cnn-wide, resnet, resnet-nonorm.</summary>
    public string Name { get; init; } = "";
    /// <summary>MLP hidden widths, e.g. [256, 256].</summary>
    public IReadOnlyList<int>? HiddenWidths { get; init; }
    /// <summary>CNN/ResNet width multiplier.</summary>
    public double? WidthMultiplier { get; init; }
    /// <summary>ResNet basic blocks per stage.</summary>
    public int? BlocksPerStage { get; init; }
}

public sealed record TargetSpec
{
    /// <summary>train_loss | validation_error.</summary>
    public string Metric { get; init; } = "";
    public double Threshold { get; init; }
    /// <summary>
    /// Looser targets on the same metric (above the threshold) whose first crossings every trial also records on its
    /// way to <see cref="Threshold"/>: one sweep then measures an S(B) curve per target (steps-by-target.csv, verdict (i)).
    /// </summary>
    public IReadOnlyList<double>? Looser { get; init; }
}

/// <summary>
/// An optimizer entry's learning-rate schedule: `constant`, or `linear` decay from the searched η to
/// η·final_fraction over `decay_steps` steps, then constant. A sweep's linear schedule must name its decay length:
/// defaulting it to the trial's max_steps (as `nqm train` does) would tie the learning rate at step t to the
/// trial's budget, which differs by batch size and is capped by pruning, so steps-to-target would depend on the
/// cap. With a fixed decay length the learning rate at step t is the same in every trial of the optimizer, and
/// steps-to-target stays independent of the cap.
/// </summary>
public sealed record ScheduleSpec
{
    /// <summary>constant | linear | piecewise.</summary>
    public string Kind { get; init; } = "constant";
    /// <summary>Steps of the linear decay (required for linear).</summary>
    public long? DecaySteps { get; init; }
    /// <summary>η at the end of the decay as a fraction of the initial η (default 0.01).</summary>
    public double? FinalFraction { get; init; }
    /// <summary>piecewise: steps per piece.</summary>
    public long? PieceSteps { get; init; }
    /// <summary>piecewise: η's multiplier in each piece (the last holds after the last piece).</summary>
    public IReadOnlyList<double>? Factors { get; init; }
}

/// <summary>
/// One optimizer family and its search space; each (optimizer, batch size, seed) is a study. Besides
/// `learning_rate`, the entry takes the family's own keys (<see cref="IOptimizerFamily"/>): a search
/// dimension as a log range (`"one_minus_momentum": { "min": 0.01, "max": 0.1, "points": 3 }`) or a
/// hyperparameter fixed to a number (`"beta2": 0.999`).
/// </summary>
public sealed record OptimizerSearch
{
    /// <summary>An optimizer family: sgd | momentum | nesterov | adam | ….</summary>
    public string Name { get; init; } = "";
    /// <summary>grid | halton.</summary>
    public string Search { get; init; } = "grid";
    /// <summary>Number of quasi-random points (halton only).</summary>
    public int? Trials { get; init; }
    public LogRange? LearningRate { get; init; }
    /// <summary>The learning-rate schedule every trial of this optimizer runs (absent: constant).</summary>
    public ScheduleSpec? Schedule { get; init; }
    /// <summary>The family's keys: search dimensions (JSON objects, log ranges) and fixed hyperparameters (numbers).</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Hyperparameters { get; init; }

    /// <summary>The family's search dimensions this entry searches, in the family's canonical order, with their ranges.</summary>
    public IReadOnlyList<(SearchDimension Dimension, LogRange Range)> Dimensions(IOptimizerFamily family) =>
        family.SearchDimensions
            .Where(d => Hyperparameters?.ContainsKey(d.Key) == true)
            .Select(d => (d, Hyperparameters![d.Key].Deserialize<LogRange>(SpecLoader.Options)!))
            .ToList();

    /// <summary>The hyperparameters this entry fixes to a number.</summary>
    public IReadOnlyList<(string Name, double Value)> Fixed(IOptimizerFamily family) =>
        family.Hyperparameters
            .Where(h => Hyperparameters?.TryGetValue(h.Name, out var v) == true && v.ValueKind == JsonValueKind.Number)
            .Select(h => (h.Name, Hyperparameters![h.Name].GetDouble()))
            .ToList();
}

/// <summary>A log-scale range [min, max]; `points` = grid points (grid search only). min = max fixes the value.</summary>
public sealed record LogRange
{
    public double Min { get; init; }
    public double Max { get; init; }
    public int? Points { get; init; }
}

/// <summary>The step budget of a trial: `steps` fixed, or `examples` / B clamped to [min_steps, max_steps].</summary>
public sealed record BudgetSpec
{
    public long? Steps { get; init; }
    public double? Examples { get; init; }
    public long MinSteps { get; init; } = 1;
    public long MaxSteps { get; init; } = long.MaxValue;

    /// <summary>The step budget of a trial at batch size <paramref name="batchSize"/>.</summary>
    public long StepsFor(int batchSize) =>
        Steps ?? Math.Clamp((long)Math.Ceiling(Examples!.Value / batchSize), MinSteps, MaxSteps);
}

/// <summary>How trials evaluate. (The trial's evaluation grid does not depend on max_steps, see docs/sweeps.md.)</summary>
public sealed record EvaluationSpec
{
    /// <summary>Size of the fixed training-set evaluation subset (train_loss targets); null = trial default.</summary>
    public int? EvalExamples { get; init; }
    /// <summary>Diverged when the loss exceeds this multiple of the initial loss; null = trial default.</summary>
    public double? DivergenceFactor { get; init; }
}

/// <summary>Loads and validates experiment specs.</summary>
public static class SpecLoader
{
    /// <summary>snake_case, comments allowed, unknown keys are errors.</summary>
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowDuplicateProperties = false,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads <paramref name="path"/>, validates it, and returns the spec.</summary>
    /// <exception cref="SpecException">missing file, malformed JSON, unknown key, invalid value.</exception>
    public static ExperimentSpec Load(string path)
    {
        if (!File.Exists(path)) throw new SpecException($"{path}: experiment spec not found.");
        return Parse(File.ReadAllText(path), path);
    }

    public static ExperimentSpec Parse(string json, string source)
    {
        ExperimentSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<ExperimentSpec>(json, Options);
        }
        catch (JsonException e)
        {
            // In the user's terms: the key, its line, what was expected, the keys allowed there.
            throw new SpecException(JsonErrors.Describe(e, source), e);
        }
        if (spec is null) throw new SpecException($"{source}: the spec is `null`; expected a JSON object.");
        SpecValidation.Validate(spec, source);
        return spec;
    }

    /// <summary>The canonical JSON of a resolved spec (what DIR/spec.json holds).</summary>
    public static string ToJson(ExperimentSpec spec) => JsonSerializer.Serialize(spec, Options);
}

/// <summary>Checks every field and reports all faults at once, each naming its field.</summary>
public static class SpecValidation
{
    public static string[] Optimizers => [.. OptimizerFamilies.Names];
    public static string[] Models => [.. ModelRegistry.Names];

    /// <summary>The trial's model spec for the spec's model section.</summary>
    public static ModelSpec ToModelSpec(ModelSettings m) => new(m.Name, m.HiddenWidths?.ToArray(), m.WidthMultiplier, m.BlocksPerStage);
    public static readonly string[] Metrics = ["train_loss", "validation_error"];
    public static readonly string[] Searches = ["grid", "halton"];
    public static readonly string[] Orders = ["predicted", "canonical"];
    public static readonly string[] Devices = ["cpu", "cuda"];
    /// <summary>Values of `trial_processes`; the first is the default.</summary>
    public static readonly string[] TrialProcessModes = ["worker", "per-trial"];

    public static void Validate(ExperimentSpec spec, string source)
    {
        var faults = Faults(spec);
        if (faults.Count > 0)
            throw new SpecException($"{source}: invalid experiment spec: " + string.Join(" ", faults)); // one line, every fault
    }

    /// <summary>A value as typed, quoted, with line breaks and control characters escaped (an error stays one line).</summary>
    static string Q(string? text) => JsonSerializer.Serialize(text ?? "", new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    static string OneOf(string[] allowed) => "one of " + string.Join(", ", allowed.Select(a => $"`{a}`"));

    public static List<string> Faults(ExperimentSpec s)
    {
        var f = new List<string>();
        if (string.IsNullOrEmpty(s.Name) || !s.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            f.Add($"name: must be a non-empty name of letters, digits, '-', '_', '.' (got {Q(s.Name)}).");
        if (s.Seed < 0) f.Add($"seed: must be >= 0 (got {s.Seed}).");

        if (s.Workload is null) f.Add("workload: missing; expected { \"data\": {...}, \"model\": {...}, \"target\": {...} }.");
        else
        {
            var w = s.Workload;
            if (w.Model is null) f.Add($"workload.model: missing; expected {{ \"name\": {OneOf(Models)} }}.");
            else
            {
                var m = w.Model;
                if (!Models.Contains(m.Name)) f.Add($"workload.model.name: must be {OneOf(Models)} (got {Q(m.Name)}).");
                else
                {
                    try { ModelRegistry.Resolve(ToModelSpec(m)); }
                    catch (ModelSpecException e) { f.Add($"workload.model: {e.Message}"); }
                }
            }
            if (w.Target is null) f.Add($"workload.target: missing; expected {{ \"metric\": {OneOf(Metrics)}, \"threshold\": number }}.");
            else
            {
                if (!Metrics.Contains(w.Target.Metric)) f.Add($"workload.target.metric: must be {OneOf(Metrics)} (got {Q(w.Target.Metric)}).");
                if (!(w.Target.Threshold > 0) || double.IsInfinity(w.Target.Threshold))
                    f.Add($"workload.target.threshold: must be a finite number > 0 (got {w.Target.Threshold}).");
                if (w.Target.Metric == "validation_error" && w.Target.Threshold >= 1)
                    f.Add($"workload.target.threshold: a validation error must be < 1 (got {w.Target.Threshold}).");
                if (w.Target.Looser is { } looser)
                {
                    string list = $"[{string.Join(", ", looser.Select(v => v.ToString(CultureInfo.InvariantCulture)))}]";
                    if (looser.Any(v => !(v > w.Target.Threshold) || double.IsInfinity(v)))
                        f.Add($"workload.target.looser: every looser target must be finite and above the threshold {w.Target.Threshold} (got {list}).");
                    if (looser.Distinct().Count() != looser.Count) f.Add($"workload.target.looser: duplicates (got {list}).");
                    if (w.Target.Metric == "validation_error" && looser.Any(v => v >= 1))
                        f.Add($"workload.target.looser: a validation error must be < 1 (got {list}).");
                }
            }
        }

        if (s.BatchSizes is null || s.BatchSizes.Count == 0) f.Add("batch_sizes: missing or empty; expected a list of integers >= 1.");
        else
        {
            if (s.BatchSizes.Any(b => b < 1)) f.Add($"batch_sizes: every batch size must be >= 1 (got [{string.Join(", ", s.BatchSizes)}]).");
            if (s.BatchSizes.Distinct().Count() != s.BatchSizes.Count) f.Add($"batch_sizes: duplicates (got [{string.Join(", ", s.BatchSizes)}]).");
        }

        if (s.Optimizers is null || s.Optimizers.Count == 0) f.Add($"optimizers: missing or empty; expected a list of {{ \"name\": {OneOf(Optimizers)}, \"learning_rate\": {{...}} }}.");
        else
        {
            for (int i = 0; i < s.Optimizers.Count; i++) OptimizerFaults(s.Optimizers[i], $"optimizers[{i}]", f);
            var dup = s.Optimizers.GroupBy(o => o.Name).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) f.Add($"optimizers: `{dup.Key}` appears more than once (one search space per optimizer).");
        }

        if (s.Seeds < 1) f.Add($"seeds: must be >= 1 (got {s.Seeds}).");
        if (s.Budget is null) f.Add("budget: missing; expected { \"steps\": N } or { \"examples\": E, \"min_steps\": a, \"max_steps\": b }.");
        else
        {
            var b = s.Budget;
            if ((b.Steps is null) == (b.Examples is null)) f.Add("budget: give exactly one of `steps` and `examples`.");
            if (b.Steps is < 1) f.Add($"budget.steps: must be >= 1 (got {b.Steps}).");
            if (b.Examples is not null && !(b.Examples > 0 && double.IsFinite(b.Examples.Value))) f.Add($"budget.examples: must be a finite number > 0 (got {b.Examples}).");
            if (b.MinSteps < 1) f.Add($"budget.min_steps: must be >= 1 (got {b.MinSteps}).");
            if (b.MaxSteps < b.MinSteps) f.Add($"budget.max_steps: must be >= min_steps (got {b.MaxSteps} < {b.MinSteps}).");
        }
        if (s.Evaluation.EvalExamples is < 1) f.Add($"evaluation.eval_examples: must be >= 1 (got {s.Evaluation.EvalExamples}).");
        if (s.Evaluation.DivergenceFactor is { } d && !(d > 1)) f.Add($"evaluation.divergence_factor: must be > 1 (got {d}).");
        if (s.Threads < 1) f.Add($"threads: must be >= 1 (got {s.Threads}).");
        if (s.Jobs < 1) f.Add($"jobs: must be >= 1 (got {s.Jobs}).");
        if (s.Stack < 1) f.Add($"stack: must be >= 1 (got {s.Stack}).");
        if (s.Stack > 1 && s.TrialProcessMode != "worker")
            f.Add($"stack: stacked trials run in trial workers; trial_processes must be worker (got {Q(s.TrialProcessMode)}).");
        if (!Devices.Contains(s.Device)) f.Add($"device: must be {OneOf(Devices)} (got {Q(s.Device)}).");
        if (!Orders.Contains(s.Order)) f.Add($"order: must be {OneOf(Orders)} (got {Q(s.Order)}).");
        if (s.TrialProcesses is { } mode && !TrialProcessModes.Contains(mode))
            f.Add($"trial_processes: must be {OneOf(TrialProcessModes)} (got {Q(mode)}).");
        if (s.Curvature is { ValueKind: not JsonValueKind.Object }) f.Add("curvature: must be a JSON object.");
        if (s.Fit is { ValueKind: not JsonValueKind.Object }) f.Add("fit: must be a JSON object.");
        return f;
    }

    static void OptimizerFaults(OptimizerSearch o, string at, List<string> f)
    {
        var family = OptimizerFamilies.Find(o.Name);
        if (family is null) f.Add($"{at}.name: must be {OneOf(Optimizers)} (got {Q(o.Name)}).");
        if (!Searches.Contains(o.Search)) f.Add($"{at}.search: must be {OneOf(Searches)} (got {Q(o.Search)}).");
        bool grid = o.Search == "grid";
        if (o.Search == "halton" && o.Trials is not >= 1) f.Add($"{at}.trials: halton search needs `trials` >= 1 (got {(o.Trials?.ToString() ?? "nothing")}).");
        if (grid && o.Trials is not null) f.Add($"{at}.trials: only for halton search; a grid's size is the product of its `points`.");

        if (o.LearningRate is null) f.Add($"{at}.learning_rate: missing; expected {{ \"min\": a, \"max\": b{(grid ? ", \"points\": n" : "")} }}.");
        else RangeFaults(o.LearningRate, $"{at}.learning_rate", grid, f);
        if (o.Schedule is { } schedule) ScheduleFaults(schedule, $"{at}.schedule", f);
        if (family is null) return;

        foreach (var d in family.SearchDimensions.Where(d => d.Required && o.Hyperparameters?.ContainsKey(d.Key) != true))
            f.Add($"{at}.{d.Key}: `{o.Name}` needs a range {{ \"min\", \"max\" }} for it (min = max fixes it).");
        foreach (var (key, value) in o.Hyperparameters ?? [])
        {
            var dimension = family.SearchDimensions.FirstOrDefault(d => d.Key == key);
            var hyper = family.Hyperparameters.FirstOrDefault(h => h.Name == key);
            if (dimension is not null)
            {
                LogRange? range = null;
                try { range = value.ValueKind == JsonValueKind.Object ? value.Deserialize<LogRange>(SpecLoader.Options) : null; }
                catch (JsonException e) { f.Add(Common.JsonErrors.Describe(e, $"{at}.{key}")); continue; }
                if (range is null) { f.Add($"{at}.{key}: expected a log range {{ \"min\": a, \"max\": b{(grid ? ", \"points\": n" : "")} }}."); continue; }
                RangeFaults(range, $"{at}.{key}", grid, f, below1: dimension.OneMinus);
            }
            else if (hyper is not null)
            {
                if (value.ValueKind != JsonValueKind.Number) f.Add($"{at}.{key}: expected a number (a fixed {hyper.Description}).");
                else if (!hyper.Allows(value.GetDouble())) f.Add($"{at}.{key}: must be in {hyper.Range} (got {value.GetDouble()}).");
                else if (family.SearchDimensions.Any(d => d.Hyperparameter == key && o.Hyperparameters!.ContainsKey(d.Key)))
                    f.Add($"{at}.{key}: fixed and searched at once; give one of them.");
            }
            else
            {
                var allowed = new[] { "name", "search", "trials", "learning_rate", "schedule" }
                    .Concat(family.SearchDimensions.Select(d => d.Key)).Concat(family.Hyperparameters.Select(h => h.Name)).Distinct();
                f.Add($"{at}.{key}: not a key of `{o.Name}`; allowed: {string.Join(", ", allowed)}.");
            }
        }
    }

    static void ScheduleFaults(ScheduleSpec schedule, string at, List<string> f)
    {
        if (!OptimizerFamilies.Schedules.Contains(schedule.Kind)) f.Add($"{at}.kind: must be {OneOf(OptimizerFamilies.Schedules)} (got {Q(schedule.Kind)}).");
        else if (schedule.Kind == "linear")
        {
            if (schedule.DecaySteps is not >= 1)
                f.Add($"{at}.decay_steps: a linear schedule in a sweep needs its decay length, >= 1 (got {(schedule.DecaySteps?.ToString() ?? "nothing")}); " +
                      "the trial's max_steps would make steps-to-target depend on the budget cap.");
            if (schedule.FinalFraction is { } ff && !(ff >= 0 && ff <= 1)) f.Add($"{at}.final_fraction: must be in [0, 1] (got {ff}).");
        }
        else if (schedule.DecaySteps is not null || schedule.FinalFraction is not null)
            f.Add($"{at}: decay_steps and final_fraction belong to the linear schedule only.");
        if (schedule.Kind == "piecewise")
        {
            if (schedule.PieceSteps is not >= 1)
                f.Add($"{at}.piece_steps: a piecewise schedule needs its piece length in steps, >= 1 (got {(schedule.PieceSteps?.ToString() ?? "nothing")}).");
            if (schedule.Factors is not { Count: > 0 } fs || fs.Any(x => !(x > 0) || !double.IsFinite(x)))
                f.Add($"{at}.factors: a piecewise schedule needs one or more positive finite multipliers of the learning rate " +
                      $"(got [{string.Join(", ", (schedule.Factors ?? []).Select(x => x.ToString(CultureInfo.InvariantCulture)))}]).");
        }
        else if (schedule.PieceSteps is not null || schedule.Factors is not null)
            f.Add($"{at}: piece_steps and factors belong to the piecewise schedule only.");
    }

    static void RangeFaults(LogRange r, string at, bool grid, List<string> f, bool below1 = false)
    {
        if (!(r.Min > 0) || !double.IsFinite(r.Min)) f.Add($"{at}.min: must be a finite number > 0 for a log scale (got {r.Min}).");
        if (!(r.Max >= r.Min) || !double.IsFinite(r.Max)) f.Add($"{at}.max: must be finite and >= min (got min {r.Min}, max {r.Max}).");
        if (below1 && r.Max >= 1) f.Add($"{at}.max: 1 − β must be < 1 (got {r.Max}).");
        bool fixedValue = r.Min == r.Max;
        if (grid && !fixedValue && r.Points is not >= 2) f.Add($"{at}.points: a grid over a range needs `points` >= 2 (got {(r.Points?.ToString() ?? "nothing")}).");
        if (!grid && r.Points is not null) f.Add($"{at}.points: only for grid search (halton draws `trials` points).");
        if (fixedValue && r.Points is > 1) f.Add($"{at}.points: min = max fixes the value; `points` must be 1 or absent.");
    }
}
