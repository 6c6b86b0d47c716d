using System.Text.Json;
using NqmValidate.Reports;
using NqmValidate.Common;

namespace NqmValidate.Validation;

/// <summary>
/// The measured files the fit needs and the workload's target training loss. <see cref="Checkpoints"/>: the
/// curvature checkpoints available (the one given first); <see cref="FitOptions.Checkpoint"/> picks the primary.
/// </summary>
/// <param name="Sweep">What the sweep measured.</param>
/// <param name="Checkpoints">The curvature checkpoints available.</param>
/// <param name="TargetLoss">The workload's target training loss.</param>
/// <param name="Options">The fit's choices (the spec's `fit` section).</param>
/// <param name="NqmCounterparts">
/// Which NQM optimizers model each measured optimizer (sgd, momentum, ema, precond-p0.5, precond-measured): the
/// optimizer families' own declarations, handed in by the caller (Validation knows no training code). An optimizer
/// without counterparts is measured but not predicted.
/// </param>
public sealed record ValidationInputs(SweepResults Sweep, IReadOnlyList<CurvatureResults> Checkpoints, double TargetLoss, FitOptions Options,
    IReadOnlyDictionary<string, IReadOnlyList<string>> NqmCounterparts)
{
    /// <summary>
    /// The fit trial's curve run on past the target (<see cref="FitOptions.FitCurveExtension"/>), made by the caller
    /// (it trains); null = the recorded curve. Used only if it is the fit trial's (SGD at <see cref="SweepResults.FitBatchSize"/>).
    /// </summary>
    public LossCurve? LongerFitCurve { get; init; }

    public ValidationInputs(SweepResults sweep, CurvatureResults curvature, double targetLoss, FitOptions options,
        IReadOnlyDictionary<string, IReadOnlyList<string>> nqmCounterparts) : this(sweep, [curvature], targetLoss, options, nqmCounterparts) { }
}

/// <summary>Everything the fit, predict and compare stages produce (also written as CSV/JSON by <see cref="Validator.Write"/>).</summary>
public sealed record ValidationResult(
    IReadOnlyList<PredictionRow> Predictions,
    IReadOnlyList<ComparisonRow> Comparison,
    IReadOnlyList<ErrorRow> Errors,
    IReadOnlyList<ScalingRow> Scaling,
    IReadOnlyList<VerdictRow> Verdicts,
    IReadOnlyList<FittedSpectrumRow> Spectra,
    IReadOnlyList<MeasuredRow> Measured,
    IReadOnlyList<SensitivityRow> Sensitivity,
    FitRecord Fit);

/// <summary>The pre-registered primary recipe, as the spec's fit section named it.</summary>
public sealed record Recipe(string Checkpoint, string Floor, string InitialCondition, string Variant, string Calibration);

/// <summary>fit.json: the recipe, the calibration choices and the numbers they produced.</summary>
public sealed record FitRecord(
    FitOptions Options,
    Recipe PrimaryRecipe,
    IReadOnlyList<string> CheckpointsAvailable,
    double InitialLoss,
    string InitialLossSource,
    double TargetLoss,
    string? FitCurve,
    string? FitPoint,
    IReadOnlyList<BaselineNoiseScale> Baselines,
    IReadOnlyList<VariantRecord> Variants);

/// <summary>One variant of the primary recipe's checkpoint/floor/initial condition: its spectrum, its floor and initial condition and the curve fit behind them.</summary>
public sealed record VariantRecord(string Name, string Source, string Noise, string Notes, string Calibration, int Bins, double Dimensions, double MaxCurvature,
    double Floor, string FloorSource, double? FloorLow, double? FloorHigh, double? BulkExponent, double? CurveRmsLogResidual, int? CappedDirections,
    double InitialExcess, double TargetExcess, double? TopShareOfInitialLoss, string? CurveFitAtSearchEdge, string? Problem);

/// <summary>
/// Fit → predict → compare (docs/design/validation-protocol.md §3–4; docs/validation.md). Zero-shot predictions use no measured steps.
/// The loss floor and the initial condition's shape come from ONE loss curve (the largest batch size's best SGD
/// trial), whose point is then never scored. Every predictor (NQM variants and the per-optimizer McCandlish
/// baseline) is calibrated by the same scheme, each optimizer on its own points. The primary recipe is the
/// spec's; the sensitivity table repeats the whole comparison for every checkpoint × floor × initial condition ×
/// variant × calibration.
/// </summary>
public static class Validator
{
    /// <summary>The NQM optimizers that model <paramref name="optimizer"/> in <paramref name="variant"/>: Adam's measured preconditioner exists only for diagonal spectra.</summary>
    static IEnumerable<string> NqmOptimizersFor(string optimizer, NqmVariant variant, IReadOnlyDictionary<string, IReadOnlyList<string>> counterparts) =>
        !counterparts.TryGetValue(optimizer, out var names) ? []
        // A spectrum measured under the optimizer's own P is modelled only as plain heavy ball on it, and only there.
        : variant.Source == "eigen-preconditioned" ? names.Where(n => n == "precond-own")
        : names.Where(n => n != "precond-own" && (n != "precond-measured" || variant.Source == "diagonal"));

    /// <summary>A variant fitted for one (checkpoint, floor policy, initial condition): its spectrum with s0, and its floor.</summary>
    sealed record VariantFit(NqmVariant Variant, double Floor, string FloorSource, CurveFitResult? CurveFit, double InitialExcess, double TargetExcess, string? Problem);

    /// <summary>All variants' predictions for one (checkpoint, floor policy, initial condition).</summary>
    sealed record Combo(string Checkpoint, string FloorPolicy, string InitialCondition, IReadOnlyList<VariantFit> Fits, IReadOnlyList<PredictionRow> Predictions);

    /// <summary>The label a (variant, mapping) pair has in the comparison: Adam on a diagonal variant names its preconditioner.</summary>
    static string Label(NqmVariant v, string optimizer, string nqmOptimizer, IReadOnlyDictionary<string, IReadOnlyList<string>> counterparts) =>
        v.Name + (NqmOptimizersFor(optimizer, v, counterparts).Count() > 1 ? $" [{nqmOptimizer}]" : "");

    public static ValidationResult Run(ValidationInputs inputs, IProgress<string>? progress = null)
    {
        var counterparts = inputs.NqmCounterparts;
        var options = inputs.Options;
        var sweep = inputs.Sweep;
        if (inputs.Checkpoints.Count == 0) throw new ArgumentException("no curvature checkpoint", nameof(inputs));
        var primaryCheckpoint = options.Checkpoint == "given" ? inputs.Checkpoints[0]
            : inputs.Checkpoints.FirstOrDefault(c => c.Label == options.Checkpoint)
              ?? throw new SpecException($"fit.checkpoint = '{options.Checkpoint}': no such curvature checkpoint; available: {string.Join(", ", inputs.Checkpoints.Select(c => c.Label))} and 'given' (the directory given to the fit).");

        // --- Facts shared by every recipe: initial loss, the fit curve and its point, batch sizes, baselines.
        var initialLosses = sweep.Trials.Select(t => t.InitialLoss).OfType<double>().Where(double.IsFinite).ToArray();
        (double initialLoss, string initialSource) = initialLosses.Length > 0
            ? (Stats.Median(initialLosses), $"median initial training loss of {initialLosses.Length} trials (trials.csv)")
            : (primaryCheckpoint.Summary.InitialLoss ?? throw new RunFileException($"{sweep.Directory}: no initial_loss in trials.csv and none in the curvature summary.json"),
               "curvature summary.json initial_loss");
        var optimizers = sweep.Studies.Select(s => s.Optimizer).Distinct().ToArray();
        var batchSizes = sweep.Studies.Select(s => (double)s.BatchSize).Distinct().Order().ToArray();
        var measured = sweep.Studies.ToDictionary(s => (s.Optimizer, (double)s.BatchSize));
        int? fitB = sweep.FitBatchSize;
        bool needsCurve(string floor, string s0) => floor.StartsWith("curve") || s0 == "measured";
        LossCurve? curve = null, recordedCurve = null;
        string? curveProblem = null;
        if (fitB is int fb)
            try
            {
                recordedCurve = sweep.BestTrialCurve("sgd", fb);
                curve = inputs.LongerFitCurve is { Optimizer: "sgd" } longer && longer.BatchSize == fb ? longer : recordedCurve;
            }
            catch (RunFileException e) { curveProblem = e.Message; }
        else curveProblem = $"{sweep.Directory}: no SGD study reached the target, so there is no curve to fit the floor and initial condition to.";
        if (curve is null && needsCurve(options.Floor, options.InitialCondition)) throw new RunFileException(curveProblem!);
        double? fitPointB = curve?.BatchSize;
        var baselines = optimizers.Select(o => McCandlishBaseline.For(o, McCandlishBaseline.NearestTarget(inputs.Checkpoints, inputs.TargetLoss, o))).ToArray();
        var divergingEta = batchSizes.Length > 0 ? sweep.SmallestDivergingLearningRate("sgd", (int)batchSizes[0]) : null;

        Combo Predict(CurvatureResults checkpoint, string floorPolicy, string s0Policy)
        {
            var variants = new List<NqmVariant>
            {
                NqmVariantBuilder.Diagonal(checkpoint.Bins, tiedNoise: false),
                NqmVariantBuilder.Diagonal(checkpoint.Bins, tiedNoise: true),
            };
            foreach (bool tied in new[] { false, true })
                if (NqmVariantBuilder.Eigen(checkpoint, options.EigenOperator, tied) is { } eigen) variants.Add(eigen);
            foreach (bool tied in new[] { false, true })
                if (NqmVariantBuilder.EigenPreconditioned(checkpoint, tied) is { } eigenP) variants.Add(eigenP);
            if (options.EdgeOfStability && divergingEta is double eta)
                variants.Add(NqmVariantBuilder.EdgeOfStability(variants[0], eta));
            if (options.EosMargin > 0 && variants.FirstOrDefault(v => v.Name == "eigen/measured-c") is { } em)
                variants.Add(NqmVariantBuilder.EosAware(em, options.EosMargin));
            var fits = new List<VariantFit>();
            foreach (var v in variants)
                fits.Add(v.Source == "eigen-preconditioned" && fits.FirstOrDefault(f => f.Variant.Name == v.Name.Replace("eigen-P/", "eigen/")) is { } plain
                    ? BorrowFit(v, plain, s0Policy) : FitVariant(v, floorPolicy, s0Policy));

            var tasks = fits.Where(f => f.Problem is null)
                .SelectMany(f => optimizers.SelectMany(o => NqmOptimizersFor(o, f.Variant, counterparts).SelectMany(n => batchSizes.Select(b => (f, o, n, b)))))
                .ToArray();
            progress?.Report($"predict checkpoint {checkpoint.Label}, floor {floorPolicy}, s0 {s0Policy}: {tasks.Length} NQM optima");
            var predictions = tasks.AsParallel().AsOrdered().Select(t =>
            {
                var optimum = t.f.Variant.EosMargin > 0
                    ? NqmAdapter.OptimizeEosAware(t.f.Variant.Bins, t.n, t.b, t.f.TargetExcess, options.Search == "grid", options.AdamEpsilon, t.f.Variant.EosMargin)
                    : NqmAdapter.Optimize(t.f.Variant.Bins, t.n, t.b, t.f.TargetExcess, options.Search == "grid", options.AdamEpsilon);
                return new PredictionRow(t.f.Variant.Name, t.o, t.n, t.b, optimum?.Steps, null, optimum?.LearningRate, optimum?.Momentum, optimum?.EffectiveLearningRate, optimum?.CurvatureCap);
            }).ToList();
            return new Combo(checkpoint.Label, floorPolicy, s0Policy, fits, predictions);
        }

        VariantFit FitVariant(NqmVariant variant, string floorPolicy, string s0Policy)
        {
            bool isotropic = s0Policy == "isotropic";
            double capMargin = options.EosMargin > 0 ? options.EosMargin : 0.9;
            CurveFitResult? fit = null;
            double floor;
            string floorSource;
            try
            {
                switch (floorPolicy)
                {
                    case "curve-recorded":
                        // The earlier choice, kept beside the longer curve: floor and s0 fitted to the curve as recorded (it stops at the target).
                        fit = InitialCondition.FitCurve(variant.Bins, recordedCurve!, null, isotropic, capMargin);
                        floor = fit.Floor;
                        floorSource = "fitted to the curve as recorded (stopping at the target)";
                        break;
                    case "curve" or "curve-low" or "curve-high":
                        var full = InitialCondition.FitCurve(variant.Bins, curve!, null, isotropic, capMargin);
                        floor = floorPolicy == "curve" ? full.Floor : floorPolicy == "curve-low" ? full.FloorLow : full.FloorHigh;
                        fit = floorPolicy == "curve" ? full : InitialCondition.FitCurve(variant.Bins, curve!, floor, isotropic, capMargin) with { FloorLow = full.FloorLow, FloorHigh = full.FloorHigh };
                        floorSource = floorPolicy == "curve" ? "fitted to the curve" : $"the {(floorPolicy == "curve-low" ? "lower" : "upper")} end of the fitted floor's interval";
                        break;
                    default:
                        floor = floorPolicy == "zero" ? 0 : double.Parse(floorPolicy, System.Globalization.CultureInfo.InvariantCulture);
                        floorSource = floorPolicy == "zero" ? "zero (cross-entropy ≥ 0)" : "the spec's number";
                        if (!isotropic) fit = InitialCondition.FitCurve(variant.Bins, curve!, floor, isotropic: false, capMargin);
                        break;
                }
            }
            catch (RunFileException e)
            {
                return new VariantFit(variant, double.NaN, floorPolicy, null, double.NaN, double.NaN, e.Message);
            }
            double initialExcess = initialLoss - floor, targetExcess = inputs.TargetLoss - floor;
            if (!(targetExcess > 0) || !(initialExcess > targetExcess))
                return new VariantFit(variant, floor, floorSource, fit, initialExcess, targetExcess,
                    $"with floor {floor:G4} the target excess {targetExcess:G4} must be positive and below the initial excess {initialExcess:G4}");
            var bins = isotropic ? NqmVariantBuilder.WithIsotropicStart(variant.Bins, initialExcess) : InitialCondition.WithMeasuredStart(variant.Bins, initialExcess, fit!.BulkExponent);
            return new VariantFit(variant with { Bins = bins }, floor, floorSource, fit, initialExcess, targetExcess, null);
        }

        // A spectrum measured under the optimizer's own P takes the floor and the initial condition's shape of the same
        // checkpoint's plain eigen fit: the floor is the loss's, and the only fit curve is SGD's, whose dynamics are not
        // those of z = P^-½θ. The exponent a of s0 ∝ h^−a is carried over to the preconditioned spectrum (stated in its notes).
        VariantFit BorrowFit(NqmVariant variant, VariantFit plain, string s0Policy)
        {
            if (plain.Problem is not null) return plain with { Variant = variant };
            var bins = s0Policy == "isotropic" || plain.CurveFit is null
                ? NqmVariantBuilder.WithIsotropicStart(variant.Bins, plain.InitialExcess)
                : InitialCondition.WithMeasuredStart(variant.Bins, plain.InitialExcess, plain.CurveFit.BulkExponent);
            return plain with { Variant = variant with { Bins = bins } };
        }

        // --- Score one combo under one calibration scheme: per (variant label, optimizer) and for the baseline.
        IReadOnlyList<CalibratedPoint> Calibrate(Combo combo, string variant, string optimizer, string nqmOptimizer, string scheme)
        {
            var fit = combo.Fits.First(f => f.Variant.Name == variant);
            var points = batchSizes.Where(b => measured.ContainsKey((optimizer, b)))
                .Select(b => new CurvePoint(b, measured[(optimizer, b)].StepsToTarget,
                    combo.Predictions.FirstOrDefault(p => p.Variant == variant && p.Optimizer == optimizer && p.NqmOptimizer == nqmOptimizer && p.BatchSize == b)?.StepsZeroShot))
                .ToArray();
            return Calibration.Apply(scheme, points, hasZeroShot: fit.Variant.Calibration == "none", optimizer == "sgd" ? fitPointB : null);
        }
        IReadOnlyList<CalibratedPoint> CalibrateBaseline(string optimizer, string scheme)
        {
            double? bn = baselines.First(b => b.Optimizer == optimizer).BNoise;
            var points = batchSizes.Where(b => measured.ContainsKey((optimizer, b)))
                .Select(b => new CurvePoint(b, measured[(optimizer, b)].StepsToTarget, bn is double n ? 1 + n / b : null)).ToArray();
            return Calibration.Apply(scheme, points, hasZeroShot: false, optimizer == "sgd" ? fitPointB : null);
        }
        string SchemeLabel(NqmVariant v, string scheme) => scheme == "zero-shot" && v.Calibration == "divergence" ? "calibrated on divergence" : scheme;

        // --- The primary recipe.
        var primary = Predict(primaryCheckpoint, options.Floor, options.InitialCondition);
        var primaryVariantFit = primary.Fits.FirstOrDefault(f => f.Variant.Name == options.PrimaryVariant)
            ?? throw new SpecException($"fit.primary_variant = '{options.PrimaryVariant}': not built from checkpoint {primaryCheckpoint.Label}; available: {string.Join(", ", primary.Fits.Select(f => f.Variant.Name))}.");
        if (primaryVariantFit.Problem is not null)
            throw new SpecException($"fit: primary variant {options.PrimaryVariant} cannot be fitted: {primaryVariantFit.Problem}");
        string primaryName = options.PrimaryVariant;

        var predictions = new List<PredictionRow>();
        var comparison = new List<ComparisonRow>();
        var errors = new List<ErrorRow>();
        foreach (var f in primary.Fits.Where(f => f.Problem is null))
            foreach (var optimizer in optimizers)
                foreach (var nqm in NqmOptimizersFor(optimizer, f.Variant, counterparts))
                {
                    var calibrated = Calibrate(primary, f.Variant.Name, optimizer, nqm, options.Calibration);
                    var zero = Calibrate(primary, f.Variant.Name, optimizer, nqm, "zero-shot");
                    var baseline = CalibrateBaseline(optimizer, options.Calibration);
                    foreach (var p in primary.Predictions.Where(p => p.Variant == f.Variant.Name && p.Optimizer == optimizer && p.NqmOptimizer == nqm))
                        predictions.Add(p with { StepsCalibrated = calibrated.FirstOrDefault(c => c.BatchSize == p.BatchSize)?.Predicted });
                    foreach (var c in calibrated)
                    {
                        var m = measured[(optimizer, c.BatchSize)];
                        var z = zero.First(x => x.BatchSize == c.BatchSize);
                        var bl = baseline.First(x => x.BatchSize == c.BatchSize);
                        comparison.Add(new ComparisonRow(Label(f.Variant, optimizer, nqm, counterparts), optimizer, c.BatchSize, m.StepsToTarget, m.StepsMin, m.StepsMax,
                            z.Predicted, c.Predicted, bl.Predicted, z.Log2, c.Log2, bl.Log2, c.Excluded));
                    }
                    foreach (var scheme in FitOptions.CalibrationSchemes)
                    {
                        var e = Calibration.Summarize(Calibrate(primary, f.Variant.Name, optimizer, nqm, scheme));
                        errors.Add(new ErrorRow(Label(f.Variant, optimizer, nqm, counterparts), optimizer, SchemeLabel(f.Variant, scheme), e.MedianAbsLog2, e.Points, e.Slope));
                    }
                }
        foreach (var optimizer in optimizers)
            foreach (var scheme in FitOptions.CalibrationSchemes.Where(s => s != "zero-shot"))
            {
                var e = Calibration.Summarize(CalibrateBaseline(optimizer, scheme));
                errors.Add(new ErrorRow("mccandlish", optimizer, scheme, e.MedianAbsLog2, e.Points, e.Slope));
            }

        // --- Scaling fits and learning-rate slopes: measured, and each variant's zero-shot prediction.
        var scaling = new List<ScalingRow>();
        var measuredCurves = new Dictionary<string, ScalingPoints>();
        var measuredFits = new Dictionary<string, ScalingFitResult?>();
        foreach (var optimizer in optimizers)
        {
            var studies = sweep.Studies.Where(s => s.Optimizer == optimizer).ToArray();
            var curvePoints = ScalingPoints.From(studies.Select(s => ((double)s.BatchSize, s.StepsToTarget)));
            measuredCurves[optimizer] = curvePoints;
            var fit = ScalingFitResult.Fit(curvePoints);
            measuredFits[optimizer] = fit;
            var lrs = studies.Where(s => s.StepsToTarget is not null && s.LearningRate > 0).ToArray();
            scaling.Add(ScalingRowFor("measured", optimizer, fit, curvePoints.Count,
                LrSlope(lrs.Select(s => ((double)s.BatchSize, s.LearningRate))),
                LrSlope(lrs.Select(s => ((double)s.BatchSize, EffectiveRate(s.LearningRate, s.Momentum ?? s.Beta1))))));
        }
        var predictedFits = PredictedFits(primary, optimizers, counterparts);
        foreach (var group in primary.Predictions.GroupBy(p => (p.Variant, p.Optimizer, p.NqmOptimizer)))
        {
            var rows = group.Where(p => p.StepsZeroShot is not null).ToArray();
            var pts = ScalingPoints.From(rows.Select(p => (p.BatchSize, p.StepsZeroShot)));
            string source = $"nqm {group.Key.Variant}" + (group.Key.Optimizer == "adam" ? $" [{group.Key.NqmOptimizer}]" : "");
            scaling.Add(ScalingRowFor(source, group.Key.Optimizer, ScalingFitResult.Fit(pts), pts.Count,
                LrSlope(rows.Select(p => (p.BatchSize, p.LearningRate))), LrSlope(rows.Select(p => (p.BatchSize, p.EffectiveLearningRate)))));
        }

        // --- Sensitivity: every checkpoint × floor policy × initial condition × variant × calibration.
        var combos = new List<Combo> { primary };
        if (options.Sensitivity)
        {
            var floorPolicies = new List<string> { "zero" };
            if (curve is not null) floorPolicies.InsertRange(0, ["curve", "curve-low", "curve-high"]);
            if (curve is not null && !ReferenceEquals(curve, recordedCurve)) floorPolicies.Insert(3, "curve-recorded");
            if (!floorPolicies.Contains(options.Floor)) floorPolicies.Add(options.Floor);
            var s0Policies = curve is not null ? new[] { "measured", "isotropic" } : ["isotropic"];
            foreach (var checkpoint in inputs.Checkpoints.OrderBy(c => c.Label, StringComparer.Ordinal))
                foreach (var floorPolicy in floorPolicies)
                    foreach (var s0 in s0Policies)
                        if (!(checkpoint == primaryCheckpoint && floorPolicy == options.Floor && s0 == options.InitialCondition))
                            combos.Add(Predict(checkpoint, floorPolicy, s0));
        }
        var sensitivity = new List<SensitivityRow>();
        var verdictCounts = new Dictionary<string, (int Holds, int Total)>();
        void Count(string key, Verdict v)
        {
            var (h, t) = verdictCounts.GetValueOrDefault(key);
            verdictCounts[key] = (h + (v.Outcome == VerdictOutcome.Holds ? 1 : 0), t + 1);
        }
        foreach (var combo in combos)
        {
            var fitsByVariant = PredictedFits(combo, optimizers, counterparts);
            foreach (var f in combo.Fits.Where(f => f.Problem is null))
            {
                // Verdicts (a)–(d) on this recipe's predicted curves (calibration does not move them).
                var pc = PredictedCurves(combo, f.Variant.Name, optimizers, counterparts);
                ScalingFitResult? PF(string o) => fitsByVariant.GetValueOrDefault((f.Variant.Name, o));
                foreach (var v in PredictedVerdicts(pc, PF)) Count(v.Id, v);
                foreach (var optimizer in optimizers)
                    foreach (var nqm in NqmOptimizersFor(optimizer, f.Variant, counterparts))
                        foreach (var scheme in FitOptions.CalibrationSchemes)
                        {
                            var e = Calibration.Summarize(Calibrate(combo, f.Variant.Name, optimizer, nqm, scheme));
                            var b = scheme == "zero-shot" ? null : Calibration.Summarize(CalibrateBaseline(optimizer, scheme));
                            var bn = nqm == "precond-measured" ? ScalingFitResult.Fit(ScalingPoints.From(combo.Predictions
                                    .Where(p => p.Variant == f.Variant.Name && p.Optimizer == optimizer && p.NqmOptimizer == nqm).Select(p => (p.BatchSize, p.StepsZeroShot))))
                                : PF(optimizer);
                            bool isPrimary = combo == primary && f.Variant.Name == primaryName && scheme == options.Calibration && nqm != "precond-measured";
                            sensitivity.Add(new SensitivityRow(combo.Checkpoint, combo.FloorPolicy, f.Floor, combo.InitialCondition, Label(f.Variant, optimizer, nqm, counterparts),
                                SchemeLabel(f.Variant, scheme), optimizer, e.MedianAbsLog2, e.Points, e.Slope, b?.MedianAbsLog2, bn?.CriticalBatchSize, bn?.Label ?? "no fit", isPrimary));
                            if (scheme != "zero-shot" && nqm != "precond-measured" && f.Variant.Calibration == "none")
                                Count("e " + optimizer, VerdictRules.NqmBeatsBaseline(optimizer, scheme, e.MedianAbsLog2, b?.MedianAbsLog2, Math.Min(e.Points, b?.Points ?? 0)));
                        }
            }
        }
        string Recipes(string key, string what) => verdictCounts.TryGetValue(key, out var c) ? $"NQM predicts holds in {c.Holds} of {c.Total} {what}" : "";
        const string recipesAd = "recipes (variant × checkpoint × floor × initial condition; calibration does not move these)";
        const string recipesE = "recipes (variant × checkpoint × floor × initial condition × calibration; zero-shot and divergence-calibrated excluded: the baseline needs a measured point)";

        // --- Verdicts on measured curves and on the primary recipe's predictions.
        var primaryCurves = PredictedCurves(primary, primaryName, optimizers, counterparts);
        ScalingFitResult? PPF(string o) => predictedFits.GetValueOrDefault((primaryName, o));
        ScalingPoints M(string opt) => measuredCurves.GetValueOrDefault(opt) ?? new ScalingPoints([], []);
        var measuredVerdicts = new[]
        {
            VerdictRules.PerfectScalingThenDiminishingReturns("sgd", M("sgd")),
            VerdictRules.MomentumMatchesSgdBelowCritical(M("sgd"), M("momentum"), measuredFits.GetValueOrDefault("sgd")?.CriticalBatchSize),
            VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", measuredFits.GetValueOrDefault("momentum"), measuredFits.GetValueOrDefault("sgd")),
            VerdictRules.LargerCriticalBatchSize("d", "adam", "momentum", measuredFits.GetValueOrDefault("adam"), measuredFits.GetValueOrDefault("momentum")),
        };
        var predictedVerdicts = PredictedVerdicts(primaryCurves, PPF).ToArray();
        var verdicts = measuredVerdicts.Zip(predictedVerdicts).Select(x => new VerdictRow(x.First.Id, x.First.Claim, x.First.OutcomeText, x.First.Evidence,
            x.Second.OutcomeText, x.Second.Evidence, Recipes(x.First.Id, recipesAd), x.First.Rule)).ToList();
        foreach (var optimizer in optimizers)
        {
            // An optimizer no NQM optimizer models is measured, not predicted: no verdict (e) for it.
            if (NqmOptimizersFor(optimizer, primaryVariantFit.Variant, counterparts).FirstOrDefault() is not { } nqm) continue;
            var e = Calibration.Summarize(Calibrate(primary, primaryName, optimizer, nqm, options.Calibration));
            var b = Calibration.Summarize(CalibrateBaseline(optimizer, options.Calibration));
            var v = VerdictRules.NqmBeatsBaseline(optimizer, options.Calibration, e.MedianAbsLog2, b.MedianAbsLog2, Math.Min(e.Points, b.Points));
            verdicts.Add(new VerdictRow(v.Id, v.Claim, v.OutcomeText, v.Evidence + $"; slope of log2 error vs log2 B: NQM {e.Slope:+0.00;-0.00}, baseline {b.Slope:+0.00;-0.00}",
                "—", $"primary recipe, variant {primaryName}", Recipes("e " + optimizer, recipesE), v.Rule));
        }

        var spectra = primary.Fits.Where(f => f.Problem is null).SelectMany(f => f.Variant.Bins.Select(b => new FittedSpectrumRow(f.Variant.Name, b.H, b.C, b.S0, b.Count, null))).ToList();
        var variantRecords = primary.Fits.Select(f =>
        {
            double? topShare = f.Problem is null && f.Variant.Bins.Any(b => b.MeasuredS0 is not null)
                ? f.Variant.Bins.Where(b => b.Top).Sum(b => 0.5 * b.Count * b.H * b.S0) / f.Variant.InitialLoss : null;
            return new VariantRecord(f.Variant.Name, f.Variant.Source, f.Variant.Noise, f.Variant.Notes, f.Variant.Calibration, f.Variant.Bins.Count, f.Variant.Dimensions, f.Variant.MaxCurvature,
                f.Floor, f.FloorSource, f.CurveFit?.FloorLow, f.CurveFit?.FloorHigh, f.CurveFit?.BulkExponent, f.CurveFit?.RmsLogResidual, f.CurveFit?.CappedDirections,
                f.InitialExcess, f.TargetExcess, topShare, f.CurveFit?.AtSearchEdge, f.Problem);
        }).ToList();
        var fitRecord = new FitRecord(options, new Recipe(primaryCheckpoint.Label, options.Floor, options.InitialCondition, primaryName, options.Calibration),
            inputs.Checkpoints.Select(c => c.Label).ToList(), initialLoss, initialSource, inputs.TargetLoss,
            curve is null ? curveProblem : $"{curve.Path} (sgd, B = {curve.BatchSize}, lr {curve.LearningRate:G4}, {curve.Points.Count} evaluations)",
            fitPointB is double fpb ? $"sgd at B = {fpb:G} (not scored)" : null, baselines, variantRecords);
        var measuredRows = sweep.Studies.OrderBy(s => s.Optimizer).ThenBy(s => s.BatchSize)
            .Select(s => new MeasuredRow(s.Optimizer, s.BatchSize, s.StepsToTarget, s.StepsMin, s.StepsMax, s.LearningRate, s.Momentum, s.TrialsRun, s.TrialsReached, s.TrialsDiverged,
                s.Beta1, EffectiveRate(s.LearningRate, s.Momentum ?? s.Beta1)))
            .ToList();
        return new ValidationResult(predictions, comparison, errors, scaling, verdicts, spectra, measuredRows, sensitivity, fitRecord);
    }

    /// <summary>Predicted verdicts (a)–(d) on one recipe's curves.</summary>
    static IEnumerable<Verdict> PredictedVerdicts(IReadOnlyDictionary<string, ScalingPoints> curves, Func<string, ScalingFitResult?> fit)
    {
        ScalingPoints P(string o) => curves.GetValueOrDefault(o) ?? new ScalingPoints([], []);
        yield return VerdictRules.PerfectScalingThenDiminishingReturns("sgd", P("sgd"));
        yield return VerdictRules.MomentumMatchesSgdBelowCritical(P("sgd"), P("momentum"), fit("sgd")?.CriticalBatchSize);
        yield return VerdictRules.LargerCriticalBatchSize("c", "momentum", "sgd", fit("momentum"), fit("sgd"));
        yield return VerdictRules.LargerCriticalBatchSize("d", "adam", "momentum", fit("adam"), fit("momentum"));
    }

    /// <summary>
    /// A variant's zero-shot curve per optimizer, from the optimizer's first NQM counterpart (the one every variant has:
    /// Adam's p = 0.5 mapping comes before the measured preconditioner, which exists only for diagonal spectra).
    /// </summary>
    static Dictionary<string, ScalingPoints> PredictedCurves(Combo combo, string variant, IEnumerable<string> optimizers,
        IReadOnlyDictionary<string, IReadOnlyList<string>> counterparts) =>
        optimizers.ToDictionary(o => o, o => ScalingPoints.From(combo.Predictions
            .Where(p => p.Variant == variant && p.Optimizer == o && counterparts.TryGetValue(o, out var names) && p.NqmOptimizer == names[0])
            .Select(p => (p.BatchSize, p.StepsZeroShot))));

    static Dictionary<(string, string), ScalingFitResult?> PredictedFits(Combo combo, IEnumerable<string> optimizers,
        IReadOnlyDictionary<string, IReadOnlyList<string>> counterparts) =>
        combo.Fits.Where(f => f.Problem is null).SelectMany(f => PredictedCurves(combo, f.Variant.Name, optimizers, counterparts)
                .Select(kv => (Key: (f.Variant.Name, kv.Key), Fit: ScalingFitResult.Fit(kv.Value))))
            .ToDictionary(x => x.Key, x => x.Fit);

    static ScalingRow ScalingRowFor(string source, string optimizer, ScalingFitResult? fit, int points, double? lrSlope, double? effSlope) =>
        new(source, optimizer, fit?.SMin, fit?.CriticalBatchSize, fit?.Label ?? "fewer than 3 points", fit?.Status ?? "no fit", fit?.RSquaredLog, fit?.RmsLog2Residual, points, lrSlope, effSlope);

    /// <summary>Effective learning rate of heavy ball, α/(1−β): the unit in which momentum and SGD learning rates compare.</summary>
    static double? EffectiveRate(double? lr, double? beta) => lr is double a ? beta is double b && b < 1 ? a / (1 - b) : a : null;

    static double? LrSlope(IEnumerable<(double B, double? Lr)> points)
    {
        var p = points.Where(x => x.Lr is > 0).ToArray();
        return p.Length >= 2 ? Stats.Slope(p.Select(x => Math.Log(x.B)).ToArray(), p.Select(x => Math.Log(x.Lr!.Value)).ToArray()) : null;
    }

    /// <summary>Writes every output of the stage into <paramref name="directory"/>, atomically.</summary>
    public static void Write(ValidationResult result, string directory)
    {
        Directory.CreateDirectory(directory);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Measured), result.Measured);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Predictions), result.Predictions);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Comparison), result.Comparison);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Errors), result.Errors);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Scaling), result.Scaling);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Verdicts), result.Verdicts);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Spectra), result.Spectra);
        CsvFiles.Write(Path.Combine(directory, ValidationFileNames.Sensitivity), result.Sensitivity);
        AtomicFile.WriteAllText(Path.Combine(directory, ValidationFileNames.Fit), JsonSerializer.Serialize(result.Fit, FitOptions.Json));
    }
}
