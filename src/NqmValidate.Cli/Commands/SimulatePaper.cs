using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using NqmValidate.Nqm;
using NqmValidate.Reports;
using NqmValidate.Common;

namespace NqmValidate.Cli.Commands;

/// <summary>One study of a simulate spec (snake_case JSON; unknown keys are errors).</summary>
public sealed record SimulateStudySpec
{
    public required string Name { get; init; }
    public string? Title { get; init; }
    public IReadOnlyList<string> Optimizers { get; init; } = ["sgd"];
    public IReadOnlyList<double> PrecondPowers { get; init; } = [0];
    public IReadOnlyList<double> Targets { get; init; } = [0.01];
    public string BatchSizes { get; init; } = "2^2..2^20:x4";
    public int Pieces { get; init; } = 10;
    public string? Search { get; init; }
}

/// <summary>A simulate spec: defaults for every study, then the studies.</summary>
public sealed record SimulateSpec
{
    public string Spectrum { get; init; } = "paper";
    public string Search { get; init; } = "grid";
    /// <summary>The SGD model; null = the spectrum's default (paper → notebook-compat, a CSV → exact).</summary>
    public bool? NotebookCompat { get; init; }
    public required IReadOnlyList<SimulateStudySpec> Studies { get; init; }

    public static SimulateSpec Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"spec '{path}' not found");
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            ReadCommentHandling = JsonCommentHandling.Skip,
        };
        try { return JsonSerializer.Deserialize<SimulateSpec>(File.ReadAllText(path), options) ?? throw new JsonException("empty spec"); }
        catch (JsonException e) { throw new NqmArgumentException(JsonErrors.Describe(e, path)); }
    }
}

/// <summary>
/// `nqm simulate --spec FILE`: runs each study (one sub-directory per study and target) and writes
/// DIR/summary.md stating each qualitative claim of docs/design/nqm.md §4 next to the numbers that show it.
/// </summary>
public static class SimulatePaper
{
    public static int Run(string specPath, string outDir, int? threads)
    {
        var spec = SimulateSpec.Load(specPath);
        Validate(spec, specPath);
        var all = new Dictionary<string, SimulationResult>();
        var total = Stopwatch.StartNew();
        foreach (var study in spec.Studies)
        {
            foreach (double target in study.Targets)
            {
                string key = study.Targets.Count > 1 ? $"{study.Name}/target_{target.ToString(CultureInfo.InvariantCulture)}" : study.Name;
                var o = new SimulateOptions(spec.Spectrum, target, Simulation.ParseOptimizers(string.Join(',', study.Optimizers)), study.PrecondPowers,
                    Simulation.ParseBatchSizes(study.BatchSizes), SimulateCommand.ParseSearch(study.Search ?? spec.Search), study.Pieces, spec.NotebookCompat,
                    Path.Combine(outDir, key));
                var sw = Stopwatch.StartNew();
                var r = SimulateCommand.RunStudy(o, threads);
                Console.WriteLine($"== {key}");
                Console.Write(SimulateCommand.Describe(r, sw.Elapsed.TotalSeconds));
                SimulateCommand.WriteOutputs(r, o.Out, study.Title ?? study.Name);
                all[key] = r;
            }
            if (study.Targets.Count > 1) TargetFigure(study, all, outDir);
            if (study.Optimizers.Contains("schedule")) ScheduleShapes(study, all[study.Targets.Count > 1 ? $"{study.Name}/target_{study.Targets[0].ToString(CultureInfo.InvariantCulture)}" : study.Name], outDir);
        }
        var md = Summary(spec, all, total.Elapsed.TotalSeconds);
        AtomicFile.WriteAllText(Path.Combine(outDir, "summary.md"), md);
        Console.WriteLine($"wrote {Path.Combine(outDir, "summary.md")} ({total.Elapsed.TotalSeconds:F1} s)");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Checks every study before any is run: names become directories under --out, so a name must
    /// be one plain path segment (no '/', '..', absolute paths) and unique (case-insensitively, for
    /// case-insensitive file systems), and every target must be a finite number > 0.
    /// </summary>
    public static void Validate(SimulateSpec spec, string source)
    {
        var faults = new List<string>();
        if (spec.Studies is null || spec.Studies.Count == 0) faults.Add("studies: missing or empty.");
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < (spec.Studies?.Count ?? 0); i++)
        {
            var st = spec.Studies![i];
            string at = $"studies[{i}]";
            if (!IsPlainName(st.Name))
                faults.Add($"{at}.name: must be a name of letters, digits, '-', '_', '.' (it becomes a directory under --out; got {JsonSerializer.Serialize(st.Name ?? "")}).");
            else if (!seen.Add(st.Name))
                faults.Add($"{at}.name: \"{st.Name}\" is used by another study (each study writes its own directory).");
            if (st.Targets is null || st.Targets.Count == 0) faults.Add($"{at}.targets: missing or empty.");
            else if (st.Targets.Any(t => !(t > 0) || !double.IsFinite(t))) faults.Add($"{at}.targets: every target must be a finite number > 0 (got [{string.Join(", ", st.Targets.Select(t => t.ToString(CultureInfo.InvariantCulture)))}]).");
            else if (st.Targets.Distinct().Count() != st.Targets.Count) faults.Add($"{at}.targets: duplicates.");
            if (st.Pieces < 1) faults.Add($"{at}.pieces: must be >= 1 (got {st.Pieces}).");
            if (st.Optimizers is null || st.Optimizers.Count == 0) faults.Add($"{at}.optimizers: missing or empty.");
            if (st.PrecondPowers is null || st.PrecondPowers.Count == 0 || st.PrecondPowers.Any(p => !(p >= 0 && p <= 1)))
                faults.Add($"{at}.precond_powers: must be a non-empty list of numbers in [0, 1].");
        }
        if (faults.Count > 0) throw new NqmArgumentException($"{source}: invalid simulate spec: " + string.Join(" ", faults));
    }

    static bool IsPlainName(string? name) =>
        !string.IsNullOrEmpty(name) && name is not "." and not ".." && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    static void TargetFigure(SimulateStudySpec study, Dictionary<string, SimulationResult> all, string outDir)
    {
        var series = study.Targets.Select(t =>
        {
            var r = all[$"{study.Name}/target_{t.ToString(CultureInfo.InvariantCulture)}"];
            var rows = r.Rows.Where(x => x.Optimizer == OptimizerKind.Sgd).ToArray();
            return new NqmSeries($"target {t}", rows.Select(x => x.BatchSize).ToArray(), rows.Select(x => x.Steps is { } s ? (double)s : double.NaN).ToArray());
        }).ToList();
        NqmPlots.Save(Path.Combine(outDir, study.Name, "steps_vs_batch_by_target"), "Target sensitivity (SGD)", "batch size", "steps", series);
    }

    static void ScheduleShapes(SimulateStudySpec study, SimulationResult r, string outDir)
    {
        var series = r.Rows.Where(x => x.Optimizer == OptimizerKind.Schedule && x.ScheduleRates is { Count: > 0 })
            .Select(x => new NqmSeries($"B={x.BatchSize}", Enumerable.Range(1, x.ScheduleRates!.Count).Select(i => (double)i).ToArray(), x.ScheduleRates!.ToArray())).ToList();
        if (series.Count > 0)
            NqmPlots.Save(Path.Combine(outDir, study.Name, "schedule_shapes"), $"Optimal {study.Pieces}-piece schedules", "piece", "learning rate", series, logX: false);
    }

    static SimulationRow? Row(SimulationResult r, OptimizerKind kind, double p, double b) =>
        r.Rows.FirstOrDefault(x => x.Optimizer == kind && x.PrecondPower == p && x.BatchSize == b);

    static string S(long? v) => v?.ToString("N0", CultureInfo.InvariantCulture) ?? "not reached";
    static string G(double v) => v.ToString("G4", CultureInfo.InvariantCulture);

    static ScalingFit? Fit(SimulationResult r, OptimizerKind kind, double p) => r.Fits.FirstOrDefault(f => f.Optimizer == kind && f.PrecondPower == p)?.Fit;

    /// <summary>The claims of docs/design/nqm.md §4, each with the numbers that show (or fail to show) it.</summary>
    static string Summary(SimulateSpec spec, Dictionary<string, SimulationResult> all, double seconds)
    {
        var md = new StringBuilder();
        md.AppendLine("# NQM: the paper's qualitative results, reproduced");
        md.AppendLine();
        bool compat = spec.NotebookCompat ?? Simulation.NotebookCompatByDefault(spec.Spectrum);
        md.AppendLine($"Spectrum `{spec.Spectrum}`, search `{spec.Search}`, {(compat ? "notebook-compat (1e-8 in the SGD stationary denominator, as the notebook computes it)" : "exact model")}. Steps are exact first crossings (smallest k with E L(k) < target); the notebook reports k−1. Total {seconds:F1} s.");
        md.AppendLine();
        void Claim(string claim, bool? holds, string evidence) =>
            md.AppendLine($"- **{claim}** — {(holds is null ? "not evaluated" : holds.Value ? "holds" : "DOES NOT HOLD")}: {evidence}");

        SimulationResult? Find(string name) => all.TryGetValue(name, out var r) ? r : all.Where(kv => kv.Key.StartsWith(name + "/", StringComparison.Ordinal)).Select(kv => kv.Value).FirstOrDefault();
        var pre = Find("preconditioning");
        if (pre is not null)
        {
            var bs = pre.Request.BatchSizes;
            var s0 = Row(pre, OptimizerKind.Sgd, 0, bs[0]); var s1 = Row(pre, OptimizerKind.Sgd, 0, bs[1]);
            var sl = Row(pre, OptimizerKind.Sgd, 0, bs[^1]); var sl1 = Row(pre, OptimizerKind.Sgd, 0, bs[^2]);
            double r1 = (double)(s0?.Steps ?? 0) / (s1?.Steps ?? 1), r2 = (double)(sl1?.Steps ?? 0) / (sl?.Steps ?? 1), bratio = bs[1] / bs[0];
            Claim("Perfect scaling, then a plateau set by the condition number", r1 > 0.8 * bratio && r2 < 1.05,
                $"SGD p=0: steps({G(bs[0])})/steps({G(bs[1])}) = {r1:F2} (perfect scaling = {bratio}); steps({G(bs[^2])})/steps({G(bs[^1])}) = {r2:F3}; plateau {S(sl?.Steps)} steps.");
            double hmax = pre.Request.Spectrum.MaxCurvature;
            double a0 = s0?.LearningRate ?? double.NaN, a1 = s1?.LearningRate ?? double.NaN, al = sl?.LearningRate ?? double.NaN;
            Claim("The optimal learning rate grows ∝ B until it hits ≈ 2/h_max", a1 / a0 > 0.6 * bratio && al > 0.8 * 2 / hmax && al <= 2 / hmax,
                $"α({G(bs[0])}) = {G(a0)}, α({G(bs[1])}) = {G(a1)} (ratio {a1 / a0:F2}); α({G(bs[^1])}) = {G(al)} vs 2/h_max = {G(2 / hmax)}.");
            var f0 = Fit(pre, OptimizerKind.Sgd, 0); var pmax = pre.Request.PrecondPowers.Max(); var fp = Fit(pre, OptimizerKind.Sgd, pmax);
            var small0 = s0?.Steps; var smallp = Row(pre, OptimizerKind.Sgd, pmax, bs[0])?.Steps;
            Claim("Preconditioning raises the critical batch size and also helps at small B", f0 is not null && fp is not null && fp.BatchNoise > f0.BatchNoise && smallp < small0,
                $"B_noise p=0: {G(f0?.BatchNoise ?? double.NaN)}, p={pmax}: {G(fp?.BatchNoise ?? double.NaN)}; steps at B={G(bs[0])}: p=0 {S(small0)}, p={pmax} {S(smallp)}. Fits: "
                + string.Join("; ", pre.Fits.Where(f => f.Fit is not null).Select(f => $"p={f.PrecondPower}: S_min {G(f.Fit!.StepsMin)}, B_noise {G(f.Fit.BatchNoise)}, R²(log) {f.Fit.RSquaredLog:F3}")) + ".");
        }
        var mom = Find("momentum");
        if (mom is not null)
        {
            var bs = mom.Request.BatchSizes;
            var parts = mom.Request.PrecondPowers.Select(p =>
            {
                var a = Row(mom, OptimizerKind.Sgd, p, bs[0]); var b = Row(mom, OptimizerKind.Momentum, p, bs[0]);
                var c = Row(mom, OptimizerKind.Sgd, p, bs[^1]); var d = Row(mom, OptimizerKind.Momentum, p, bs[^1]);
                return (p, small: (double)(b?.Steps ?? 0) / (a?.Steps ?? 1), large: (double)(d?.Steps ?? 0) / (c?.Steps ?? 1),
                    effS: a?.EffectiveLearningRate ?? double.NaN, effM: b?.EffectiveLearningRate ?? double.NaN);
            }).ToArray();
            Claim("Momentum equals SGD below the critical batch size (same effective α) and lowers the plateau above it",
                parts.All(x => x.small > 0.7 && x.small < 1.3 && x.large < 0.8),
                string.Join("; ", parts.Select(x => $"p={x.p}: momentum/SGD steps at B={G(bs[0])} {x.small:F2} (effective α {G(x.effM)} vs {G(x.effS)}), at B={G(bs[^1])} {x.large:F2}")) + ".");
        }
        var ema = Find("ema");
        if (ema is not null)
        {
            var bs = ema.Request.BatchSizes;
            double small = (double)(Row(ema, OptimizerKind.Ema, 0, bs[0])?.Steps ?? 0) / (Row(ema, OptimizerKind.Sgd, 0, bs[0])?.Steps ?? 1);
            double large = (double)(Row(ema, OptimizerKind.Ema, 0, bs[^1])?.Steps ?? 0) / (Row(ema, OptimizerKind.Sgd, 0, bs[^1])?.Steps ?? 1);
            Claim("EMA helps at small B and not at large B", small < 0.9 && large > 0.9, $"EMA/SGD steps: {small:F2} at B={G(bs[0])}, {large:F2} at B={G(bs[^1])}.");
        }
        var sch = Find("schedule");
        if (sch is not null)
        {
            var bs = sch.Request.BatchSizes;
            var c = Row(sch, OptimizerKind.Sgd, 0, bs[0]); var s = Row(sch, OptimizerKind.Schedule, 0, bs[0]);
            double lb = c?.LowerBound ?? double.NaN;
            double gapClosed = (c?.Steps is { } cs && s?.Steps is { } ss) ? (cs - ss) / (cs - lb) : double.NaN;
            var rates = s?.ScheduleRates ?? Array.Empty<double>();
            double hmax = sch.Request.Spectrum.MaxCurvature, amax = 2 / (hmax + sch.Request.Spectrum.MinPositiveCurvature + 1e-4);
            Claim("An optimised schedule decays and closes most of the gap to the lower bound at small B",
                rates.Count > 1 && rates[^1] < rates[0] / 3 && gapClosed > 0.5,
                $"B={G(bs[0])}: constant α {S(c?.Steps)} steps, {sch.Request.Pieces}-piece schedule {S(s?.Steps)}, lower bound {G(lb)} (gap closed {gapClosed:P0}); rates {string.Join(" → ", rates.Select(G))}.");
            var firsts = sch.Rows.Where(x => x.Optimizer == OptimizerKind.Schedule && x.ScheduleRates is { Count: > 0 }).Select(x => (x.BatchSize, first: x.ScheduleRates![0])).ToArray();
            Claim("… and starts at the largest feasible α",
                firsts.Length > 0 && firsts.All(f => f.first > 0.5 * amax),
                $"first-piece α by B: {string.Join(", ", firsts.Select(f => $"B={G(f.BatchSize)}: {G(f.first)}"))} (largest feasible {G(amax)}; the optimal constant α at B={G(bs[0])} is {G(c?.LearningRate ?? double.NaN)}).");
        }
        var tgt = all.Where(kv => kv.Key.StartsWith("target_sensitivity/", StringComparison.Ordinal)).OrderByDescending(kv => kv.Value.Request.Target).ToArray();
        if (tgt.Length >= 2)
        {
            var fits = tgt.Select(kv => (t: kv.Value.Request.Target, f: Fit(kv.Value, OptimizerKind.Sgd, 0))).ToArray();
            bool rising = fits.Zip(fits.Skip(1)).All(z => z.First.f is not null && z.Second.f is not null && z.Second.f.BatchNoise > z.First.f.BatchNoise);
            Claim("A tighter target raises the critical batch size", rising,
                string.Join("; ", fits.Select(x => $"target {x.t}: B_noise {G(x.f?.BatchNoise ?? double.NaN)} (S_min {G(x.f?.StepsMin ?? double.NaN)})")) + ".");
        }
        md.AppendLine();
        md.AppendLine("Per-study tables: `*/steps.csv`, fits: `*/fits.csv`, figures: `*/*.png|svg`.");
        return md.ToString();
    }
}
