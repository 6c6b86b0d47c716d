using System.Text.Json;
using System.Text.Json.Serialization;
using NqmValidate.Common;

namespace NqmValidate.Validation;

/// <summary>
/// Every choice the fit makes, with defaults; read from the experiment spec's optional `fit` section
/// (unknown keys are errors) and recorded verbatim in fit.json. The five recipe fields (checkpoint,
/// floor, initial_condition, primary_variant, calibration) are the pre-registered primary recipe: the
/// headline numbers and verdicts use exactly these, whatever the sensitivity table shows
/// (docs/validation.md, "Pre-registered primary recipe", says why each default was chosen).
/// </summary>
public sealed record FitOptions
{
    /// <summary>Curvature checkpoint whose spectrum the NQM uses: a checkpoint label ("init", "warmup-200", ...) or "given" (the directory given to the fit).</summary>
    public string Checkpoint { get; init; } = "init";

    /// <summary>Loss floor: "curve" (fitted to the largest batch size's best SGD trial curve, with its uncertainty), "zero" or a number.</summary>
    public string Floor { get; init; } = "curve";

    /// <summary>
    /// How far the floor's curve runs: the fit trial (the best SGD trial at the largest batch size) is run on past its
    /// first crossing of the target to this multiple of its steps-to-target, and the floor and initial condition are
    /// fitted to that longer curve. 1 = the curve as recorded (it stops at the target). Chosen as 4 on the synthetic
    /// workload of SyntheticLinearRegressionTests, before any real study was fitted with it (docs/validation.md).
    /// </summary>
    public double FitCurveExtension { get; init; } = 4;

    /// <summary>Initial condition: "measured" (top eigen-directions from (gᵀv)²/h² at initialisation, the rest s0 ∝ h^−a with a fitted to the same curve) or "isotropic".</summary>
    public string InitialCondition { get; init; } = "measured";

    /// <summary>The variant whose predictions the verdicts and headline numbers use.</summary>
    public string PrimaryVariant { get; init; } = "eigen/measured-c";

    /// <summary>Calibration scheme of every predictor, per optimizer: zero-shot, one-point-smallest, one-point-largest, leave-one-out.</summary>
    public string Calibration { get; init; } = "one-point-smallest";

    /// <summary>Removed in protocol v2 (calibration is per optimizer now); kept only to give a clear error.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? CalibrationOptimizer { get; init; }

    /// <summary>NQM hyperparameter search: "grid" (the notebook's grids) or "continuous".</summary>
    public string Search { get; init; } = "continuous";

    /// <summary>Also build the diagonal variant whose curvature scale is calibrated on the measured edge of stability (smallest diverging SGD learning rate): a calibration on divergence, not zero-shot.</summary>
    public bool EdgeOfStability { get; init; } = true;

    /// <summary>
    /// Edge-of-stability-aware eigen variant: the measured top eigenvalues are capped at this fraction of
    /// the stability edge of the optimizer's own (NQM-optimal) learning rate, 2/α for SGD and (2+2β)/α for
    /// heavy ball (self-consistent). 0 = no such variant.
    /// </summary>
    public double EosMargin { get; init; } = 0.9;

    /// <summary>Compute the sensitivity table (every variant × checkpoint × floor policy × initial condition × calibration).</summary>
    public bool Sensitivity { get; init; } = true;

    /// <summary>Adam's ε for the measured preconditioner 1/(√v + ε).</summary>
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>Which curvature operator the eigen variant reads from eigen.csv / density.csv: "ggn" or "hessian".</summary>
    public string EigenOperator { get; init; } = "ggn";

    public static readonly string[] CalibrationSchemes = ["zero-shot", "one-point-smallest", "one-point-largest", "leave-one-out"];

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Parses a `fit` section; null or undefined gives the defaults. Errors name the field and allowed values.</summary>
    public static FitOptions Parse(JsonElement? section, string source)
    {
        if (section is not JsonElement element || element.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return new FitOptions();
        FitOptions options;
        try { options = element.Deserialize<FitOptions>(Json) ?? new FitOptions(); }
        catch (JsonException e) { throw new SpecException($"{source}: fit: {e.Message}"); }
        return options.Validate(source);
    }

    public FitOptions Validate(string source)
    {
        if (Floor == "min-observed")
            throw new SpecException($"{source}: fit.floor = 'min-observed' was removed (trials stop at the target, so the lowest final loss is the target, not a floor): use 'curve' (fitted to the largest batch size's best trial), 'zero' or a number.");
        if (Floor is not ("zero" or "curve") && !double.TryParse(Floor, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _))
            throw new SpecException($"{source}: fit.floor = '{Floor}': allowed values are curve, zero or a number.");
        if (CalibrationOptimizer is not null)
            throw new SpecException($"{source}: fit.calibration_optimizer was removed (every optimizer is calibrated on its own points): use fit.calibration = {string.Join(" | ", CalibrationSchemes)}.");
        if (!CalibrationSchemes.Contains(Calibration))
            throw new SpecException($"{source}: fit.calibration = '{Calibration}': allowed values are {string.Join(", ", CalibrationSchemes)}.");
        if (Search is not ("grid" or "continuous"))
            throw new SpecException($"{source}: fit.search = '{Search}': allowed values are grid, continuous.");
        if (InitialCondition is not ("measured" or "isotropic"))
            throw new SpecException($"{source}: fit.initial_condition = '{InitialCondition}': allowed values are measured, isotropic.");
        if (EigenOperator is not ("ggn" or "hessian"))
            throw new SpecException($"{source}: fit.eigen_operator = '{EigenOperator}': allowed values are ggn, hessian.");
        if (string.IsNullOrWhiteSpace(Checkpoint))
            throw new SpecException($"{source}: fit.checkpoint must name a curvature checkpoint (init, warmup-200, ...) or be 'given'.");
        if (!(EosMargin >= 0 && EosMargin < 1))
            throw new SpecException($"{source}: fit.eos_margin = {EosMargin}: must be in [0, 1) (0 = no edge-of-stability-aware eigen variant).");
        if (!(FitCurveExtension >= 1) || !double.IsFinite(FitCurveExtension))
            throw new SpecException($"{source}: fit.fit_curve_extension = {FitCurveExtension}: must be a number ≥ 1 (1 = the curve as recorded).");
        if (!(AdamEpsilon >= 0))
            throw new SpecException($"{source}: fit.adam_epsilon must be ≥ 0.");
        return this;
    }
}
