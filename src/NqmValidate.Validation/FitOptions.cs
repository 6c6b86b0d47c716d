using System.Text.Json;
using System.Text.Json.Serialization;

namespace NqmValidate.Validation;

/// <summary>
/// Every choice the fit makes, with defaults; read from the experiment spec's optional `fit`
/// section (unknown keys are errors) and recorded verbatim in fit.json.
/// </summary>
public sealed record FitOptions
{
    /// <summary>Loss floor subtracted from measured losses: "zero", "min-observed" (lowest final training loss of any trial) or a number.</summary>
    public string Floor { get; init; } = "zero";

    /// <summary>Optimizer of the one measured point the one-point calibration uses.</summary>
    public string CalibrationOptimizer { get; init; } = "sgd";

    /// <summary>Batch size of that point; null = the smallest batch size that reached the target.</summary>
    public int? CalibrationBatchSize { get; init; }

    /// <summary>NQM hyperparameter search: "grid" (the notebook's grids) or "continuous".</summary>
    public string Search { get; init; } = "continuous";

    /// <summary>The variant whose predictions the verdicts and headline numbers use; falls back to the first available.</summary>
    public string PrimaryVariant { get; init; } = "eigen/measured-c";

    /// <summary>Initial condition: "isotropic" (s0 equal in every direction, scaled so the NQM's initial loss equals the measured initial excess loss).</summary>
    public string InitialCondition { get; init; } = "isotropic";

    /// <summary>Also build a diagonal variant whose curvature scale is calibrated on the measured edge of stability (smallest diverging SGD learning rate).</summary>
    public bool EdgeOfStability { get; init; } = true;

    /// <summary>Adam's ε for the measured preconditioner 1/(√v + ε).</summary>
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>Which curvature operator the eigen variant reads from eigen.csv / density.csv: "ggn" or "hessian".</summary>
    public string EigenOperator { get; init; } = "ggn";

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
        if (Floor is not ("zero" or "min-observed") && !double.TryParse(Floor, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _))
            throw new SpecException($"{source}: fit.floor = '{Floor}': allowed values are zero, min-observed or a number.");
        if (Search is not ("grid" or "continuous"))
            throw new SpecException($"{source}: fit.search = '{Search}': allowed values are grid, continuous.");
        if (InitialCondition is not "isotropic")
            throw new SpecException($"{source}: fit.initial_condition = '{InitialCondition}': allowed value is isotropic.");
        if (EigenOperator is not ("ggn" or "hessian"))
            throw new SpecException($"{source}: fit.eigen_operator = '{EigenOperator}': allowed values are ggn, hessian.");
        if (CalibrationBatchSize is <= 0)
            throw new SpecException($"{source}: fit.calibration_batch_size must be positive.");
        if (!(AdamEpsilon >= 0))
            throw new SpecException($"{source}: fit.adam_epsilon must be ≥ 0.");
        return this;
    }
}

/// <summary>An invalid spec or fit section; the message names the field and the allowed values.</summary>
public sealed class SpecException(string message) : Exception(message);
