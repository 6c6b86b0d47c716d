using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// One variant fitted for one combo (checkpoint, floor policy, initial condition): its spectrum with s0, its floor and
/// the curve fit behind them; <see cref="Problem"/> says why it cannot be used (then it predicts nothing).
/// </summary>
internal sealed record VariantFit(NqmVariant Variant, double Floor, string FloorSource, CurveFitResult? CurveFit, double InitialExcess, double TargetExcess, string? Problem);

/// <summary>
/// The fit stage: the NQM variants a curvature checkpoint gives (docs/validation.md, Variants), and each variant's floor
/// and initial condition from the fit curve under a floor policy (curve, curve-low, curve-high, curve-recorded, zero or
/// the spec's number) and an initial condition (measured or isotropic).
/// </summary>
internal static class FitStage
{
    /// <summary>The variants of one checkpoint, in the order every table lists them.</summary>
    public static IReadOnlyList<NqmVariant> Variants(RunFacts facts, CurvatureResults checkpoint)
    {
        var options = facts.Options;
        var variants = new List<NqmVariant>
        {
            NqmVariantBuilder.Diagonal(checkpoint.Bins, tiedNoise: false),
            NqmVariantBuilder.Diagonal(checkpoint.Bins, tiedNoise: true),
        };
        foreach (bool tied in new[] { false, true })
            if (NqmVariantBuilder.Eigen(checkpoint, options.EigenOperator, tied) is { } eigen) variants.Add(eigen);
        foreach (bool tied in new[] { false, true })
            if (NqmVariantBuilder.EigenPreconditioned(checkpoint, tied) is { } eigenP) variants.Add(eigenP);
        if (TrajectoryStartingAt(facts, checkpoint) is { } trajectory)
            foreach (bool tied in new[] { false, true })
                if (NqmVariantBuilder.Piecewise(trajectory, options.EigenOperator, tied, facts.Inputs.TargetLoss) is { } piecewise) variants.Add(piecewise);
        if (options.EdgeOfStability && facts.DivergingLearningRate is double eta)
            variants.Add(NqmVariantBuilder.EdgeOfStability(variants[0], eta));
        if (options.EosMargin > 0 && variants.FirstOrDefault(v => v.Name == "eigen/measured-c") is { } em)
            variants.Add(NqmVariantBuilder.EosAware(em, options.EosMargin));
        return variants;
    }

    /// <summary>Fits <paramref name="variant"/>'s floor and initial condition; a floor that leaves no room between target and start is a <see cref="VariantFit.Problem"/>.</summary>
    public static VariantFit Fit(RunFacts facts, NqmVariant variant, string floorPolicy, string initialCondition)
    {
        bool isotropic = initialCondition == "isotropic";
        CurveFitResult? fit;
        double floor;
        string floorSource;
        try { (fit, floor, floorSource) = Floor(facts, variant, floorPolicy, isotropic); }
        catch (RunFileException e)
        {
            return new VariantFit(variant, double.NaN, floorPolicy, null, double.NaN, double.NaN, e.Message);
        }
        double initialExcess = facts.InitialLoss - floor, targetExcess = facts.Inputs.TargetLoss - floor;
        if (!(targetExcess > 0) || !(initialExcess > targetExcess))
            return new VariantFit(variant, floor, floorSource, fit, initialExcess, targetExcess,
                $"with floor {floor:G4} the target excess {targetExcess:G4} must be positive and below the initial excess {initialExcess:G4}");
        var bins = isotropic ? NqmVariantBuilder.WithIsotropicStart(variant.Bins, initialExcess) : InitialCondition.WithMeasuredStart(variant.Bins, initialExcess, fit!.BulkExponent);
        return new VariantFit(variant with { Bins = bins }, floor, floorSource, fit, initialExcess, targetExcess, null);
    }

    /// <summary>
    /// The checkpoints of the trajectory <paramref name="checkpoint"/> starts ("&lt;study&gt;/init": every "&lt;study&gt;/…"
    /// checkpoint), null for any other checkpoint: the piecewise variant belongs to the combo at its trajectory's start.
    /// </summary>
    static IReadOnlyList<CurvatureResults>? TrajectoryStartingAt(RunFacts facts, CurvatureResults checkpoint)
    {
        const string start = "/init";
        if (!checkpoint.Label.EndsWith(start, StringComparison.Ordinal)) return null;
        string study = checkpoint.Label[..^start.Length] + "/";
        return facts.Inputs.Checkpoints.Where(c => c.Label.StartsWith(study, StringComparison.Ordinal)).ToList();
    }

    /// <summary>
    /// Fits every variant of a checkpoint. A spectrum measured under the optimizer's own P, and the piecewise
    /// variant, borrow the floor and the initial condition's shape of the same checkpoint's plain eigen fit
    /// (<see cref="Borrow"/>, <see cref="BorrowPieces"/>).
    /// </summary>
    public static IReadOnlyList<VariantFit> FitAll(RunFacts facts, CurvatureResults checkpoint, string floorPolicy, string initialCondition)
    {
        var fits = new List<VariantFit>();
        foreach (var v in Variants(facts, checkpoint))
        {
            if (v.Source is not (NqmVariantBuilder.EigenPreconditionedSource or NqmVariantBuilder.PiecewiseSource))
            {
                fits.Add(Fit(facts, v, floorPolicy, initialCondition));
                continue;
            }
            var plain = fits.FirstOrDefault(f => f.Variant.Name == NqmVariantBuilder.PlainCounterpart(v.Name));
            fits.Add(plain is null ? new VariantFit(v, double.NaN, floorPolicy, null, double.NaN, double.NaN, $"no {NqmVariantBuilder.PlainCounterpart(v.Name)} fit at this checkpoint to take the floor from")
                : v.Segments is null ? Borrow(v, plain, initialCondition) : BorrowPieces(v, plain, initialCondition));
        }
        return fits;
    }

    /// <summary>
    /// The piecewise variant's fit from the plain eigen fit at its trajectory's start: that floor, and that bulk
    /// exponent for each piece's s0. Piece k starts at the excess loss measured at its checkpoint (the first at the
    /// plain fit's initial excess) and ends where the next starts, the last at the target excess.
    /// </summary>
    static VariantFit BorrowPieces(NqmVariant variant, VariantFit plain, string initialCondition)
    {
        if (plain.Problem is not null) return plain with { Variant = variant };
        var pieces = variant.Segments!;
        var fitted = new List<NqmSegment>(pieces.Count);
        for (int k = 0; k < pieces.Count; k++)
        {
            double start = k == 0 ? plain.InitialExcess : pieces[k].StartLoss - plain.Floor;
            double end = k + 1 < pieces.Count ? pieces[k + 1].StartLoss - plain.Floor : plain.TargetExcess;
            if (!(end > 0) || !(start > end))
                return plain with { Variant = variant, Problem = $"piece {pieces[k].Checkpoint}: with floor {plain.Floor:G4} its excess loss must fall from {start:G4} to {end:G4} > 0" };
            var bins = initialCondition == "isotropic" || plain.CurveFit is null
                ? NqmVariantBuilder.WithIsotropicStart(pieces[k].Bins, start)
                : InitialCondition.WithMeasuredStart(pieces[k].Bins, start, plain.CurveFit.BulkExponent);
            fitted.Add(pieces[k] with { Bins = bins, StartExcess = start, EndExcess = end });
        }
        return plain with { Variant = variant with { Bins = fitted[0].Bins, Segments = fitted } };
    }

    /// <summary>
    /// The fit of a preconditioned variant from its plain counterpart's: the floor is the loss's whatever the optimizer,
    /// and the only fit curve is SGD's, whose dynamics are not those of z = P^-½θ; so the floor and the exponent a of
    /// s0 ∝ h^−a are carried over, and s0 is spread over the preconditioned spectrum with that exponent.
    /// </summary>
    static VariantFit Borrow(NqmVariant variant, VariantFit plain, string initialCondition)
    {
        if (plain.Problem is not null) return plain with { Variant = variant };
        var bins = initialCondition == "isotropic" || plain.CurveFit is null
            ? NqmVariantBuilder.WithIsotropicStart(variant.Bins, plain.InitialExcess)
            : InitialCondition.WithMeasuredStart(variant.Bins, plain.InitialExcess, plain.CurveFit.BulkExponent);
        return plain with { Variant = variant with { Bins = bins } };
    }

    /// <summary>The floor a policy gives, where it came from, and the curve fit behind it (null for an isotropic start at a stated floor).</summary>
    static (CurveFitResult? Fit, double Floor, string Source) Floor(RunFacts facts, NqmVariant variant, string floorPolicy, bool isotropic)
    {
        double capMargin = facts.Options.EosMargin > 0 ? facts.Options.EosMargin : 0.9;
        var curve = facts.FitCurve;
        switch (floorPolicy)
        {
            case "curve-recorded":
                // The earlier choice, kept beside the longer curve: floor and s0 fitted to the curve as recorded (it stops at the target).
                var recorded = InitialCondition.FitCurve(variant.Bins, facts.RecordedCurve!, null, isotropic, capMargin);
                return (recorded, recorded.Floor, "fitted to the curve as recorded (stopping at the target)");
            case "curve-unweighted":
                // The earlier choice, kept beside the log-step weights: every evaluation of the curve weighted alike.
                var unweighted = InitialCondition.FitCurve(variant.Bins, curve!, null, isotropic, capMargin, logStepWeights: false);
                return (unweighted, unweighted.Floor, "fitted to the curve with every evaluation weighted alike (the fit before log-step weights)");
            case "curve" or "curve-low" or "curve-high":
                var full = InitialCondition.FitCurve(variant.Bins, curve!, null, isotropic, capMargin);
                if (floorPolicy == "curve") return (full, full.Floor, "fitted to the curve");
                double end = floorPolicy == "curve-low" ? full.FloorLow : full.FloorHigh;
                var atEnd = InitialCondition.FitCurve(variant.Bins, curve!, end, isotropic, capMargin) with { FloorLow = full.FloorLow, FloorHigh = full.FloorHigh };
                return (atEnd, end, $"the {(floorPolicy == "curve-low" ? "lower" : "upper")} end of the fitted floor's interval");
            default:
                double stated = floorPolicy == "zero" ? 0 : double.Parse(floorPolicy, System.Globalization.CultureInfo.InvariantCulture);
                var fit = isotropic ? null : InitialCondition.FitCurve(variant.Bins, curve!, stated, isotropic: false, capMargin);
                return (fit, stated, floorPolicy == "zero" ? "zero (cross-entropy ≥ 0)" : "the spec's number");
        }
    }
}
