namespace NqmValidate.Validation;

/// <summary>
/// One bin of an NQM spectrum as the validation stage builds it (h, c, s0, count); the engine's Spectrum is made from these.
/// <see cref="MeasuredS0"/>: for a measured top eigen-direction at initialisation, s0 = (gᵀv)²/h² from the network's own
/// mean gradient (null: s0 comes from the initial-condition policy). <see cref="Top"/>: a measured top eigen-direction
/// (Lanczos), the part of the spectrum the edge-of-stability-aware variant caps.
/// </summary>
public sealed record NqmBin(double H, double C, double S0, double Count, double GradMeanSq = 0, double? MeasuredS0 = null, bool Top = false);

/// <summary>
/// A fitted NQM: which measured source it came from, what noise it assumes, its bins, and the
/// calibration facts recorded in fit.json. <see cref="Calibration"/> says what data shaped it besides
/// curvature and noise: "none" or "divergence" (the eos-calibrated diagonal: not zero-shot).
/// <see cref="EosMargin"/> &gt; 0: the top eigen-directions are capped at that fraction of the optimizer's
/// stability edge at its own NQM-optimal learning rate (self-consistent; see NqmAdapter.OptimizeEosAware).
/// <see cref="Segments"/>: for the piecewise variant, the pieces of the trajectory in order (<see cref="Bins"/> is the first's).
/// </summary>
public sealed record NqmVariant(string Name, string Source, string Noise, IReadOnlyList<NqmBin> Bins, string Notes, string Calibration = "none", double EosMargin = 0,
    IReadOnlyList<NqmSegment>? Segments = null)
{
    public double InitialLoss => 0.5 * Bins.Sum(b => b.Count * b.H * b.S0);
    public double MaxCurvature => Bins.Where(b => b.Count > 0).Max(b => b.H);
    public double Dimensions => Bins.Sum(b => b.Count);
}

/// <summary>
/// One piece of a piecewise NQM: the spectrum measured at a trajectory checkpoint, the loss measured there (where the
/// piece starts; the previous piece ends), and, once fitted, the excess losses at which it starts and ends.
/// </summary>
public sealed record NqmSegment(string Checkpoint, IReadOnlyList<NqmBin> Bins, double StartLoss, double StartExcess = double.NaN, double EndExcess = double.NaN);

/// <summary>
/// Builds NQM spectra from measured curvature (docs/design/validation-protocol.md §3). Pure functions of the measured
/// numbers and the options; every choice is stated in the variant's notes. Bins come out with s0 = 0:
/// the initial condition is set afterwards (<see cref="InitialCondition"/>), from data that is not a scored point.
/// </summary>
public static class NqmVariantBuilder
{
    /// <summary>Isotropic initial condition: equal s0 everywhere, chosen so ½ Σ count·h·s0 = the measured initial excess loss.</summary>
    public static IReadOnlyList<NqmBin> WithIsotropicStart(IReadOnlyList<NqmBin> bins, double initialExcess)
    {
        double weight = bins.Sum(b => b.Count * b.H);
        if (!(weight > 0)) throw new ArgumentException("spectrum has no positive curvature", nameof(bins));
        double s0 = 2 * initialExcess / weight;
        return bins.Select(b => b with { S0 = s0 }).ToArray();
    }

    /// <summary>The measured GGN/Fisher diagonal, binned geometrically (spectrum.csv), with the measured noise c or with c = h.</summary>
    public static NqmVariant Diagonal(IReadOnlyList<MeasuredBin> measured, bool tiedNoise)
    {
        var bins = measured.Where(b => b.H > 0 && b.Count > 0)
            .Select(b => new NqmBin(b.H, tiedNoise ? b.H : Math.Max(b.C, 0), 0, b.Count, b.GradMeanSq ?? 0))
            .ToArray();
        if (bins.Length == 0) throw new ArgumentException("the measured diagonal has no positive-curvature bins");
        double dropped = measured.Where(b => !(b.H > 0)).Sum(b => b.Count);
        return new NqmVariant(
            tiedNoise ? "diagonal/c=h" : "diagonal/measured-c", "diagonal", tiedNoise ? "c = h (the paper's assumption)" : "measured per-example variance",
            bins, $"{bins.Length} bins of the GGN diagonal; {dropped:G} zero-curvature parameters carry no loss and are left out");
    }

    /// <summary>
    /// The eigen-spectrum: the top-k eigenvalues (count 1 each, with the measured noise vᵀΣv along
    /// each eigenvector where available) plus the stochastic-Lanczos density below the k-th
    /// eigenvalue for the bulk (count = weight × d). Bulk noise is tied to curvature and scaled so
    /// that the total noise trace equals the measured tr Σ (a basis-independent quantity).
    /// At the initialisation checkpoint the top directions carry their measured initial condition
    /// s0 = (gᵀv)²/h², with (gᵀv)² corrected for the sampling noise of the mean gradient over N examples
    /// (E(ĝᵀv)² = (gᵀv)² + vᵀΣv/N). At a later checkpoint the gradient describes that later state, not the
    /// start, so the top directions then follow the bulk's initial-condition shape.
    /// </summary>
    public static NqmVariant? Eigen(CurvatureResults curvature, string op, bool tiedNoise) => EigenOf(curvature, op, tiedNoise,
        curvature.Summary.TraceNoise ?? curvature.Bins.Sum(b => b.Count * Math.Max(b.C, 0)), "eigen", "eigen");

    /// <summary>The operator name of the GGN measured under the optimizer's own preconditioner (Curvature's PreconditionedTraces).</summary>
    public const string PreconditionedOperator = "ggn-preconditioned";

    /// <summary>The <see cref="NqmVariant.Source"/> of a spectrum measured under the optimizer's own preconditioner.</summary>
    public const string EigenPreconditionedSource = "eigen-preconditioned";

    /// <summary>The plain eigen variant ("eigen/…", same noise) a preconditioned ("eigen-P/…") or piecewise one borrows its floor and initial condition from.</summary>
    public static string PlainCounterpart(string name) => "eigen/" + name[(name.IndexOf('/') + 1)..];

    /// <summary>
    /// The eigen-spectrum of P^½GP^½, the GGN under the checkpoint's optimizer's own diagonal preconditioner P (a
    /// replayed Adam trial's 1/(√v̂ + ε)), with the noise measured along P^½u and the bulk scaled to tr(PΣ): in
    /// z = P^-½θ the preconditioned optimizer is plain heavy ball on this spectrum (NQM counterpart "precond-own").
    /// Null unless the checkpoint has that measurement. Its s0 never comes from the mean gradient (P exists only
    /// after the first step, so the checkpoint is never the initialisation).
    /// </summary>
    public static NqmVariant? EigenPreconditioned(CurvatureResults curvature, bool tiedNoise)
    {
        if (curvature.Summary.PreconditionedTraceNoise is not double traceNoise) return null;
        var variant = EigenOf(curvature, PreconditionedOperator, tiedNoise, traceNoise, "eigen-P", EigenPreconditionedSource);
        return variant is null ? null : variant with
        {
            Notes = $"under the optimizer's own preconditioner ({curvature.Summary.PreconditionerSource}): " + variant.Notes +
                    "; floor and initial-condition shape from the same checkpoint's unpreconditioned eigen fit (the fit curve is SGD's)",
        };
    }

    static NqmVariant? EigenOf(CurvatureResults curvature, string op, bool tiedNoise, double traceNoise, string prefix, string source, bool startsHere = false)
    {
        var top = curvature.Eigen.Where(e => e.Operator == op && e.Eigenvalue > 0).OrderByDescending(e => e.Eigenvalue).ToArray();
        var nodes = curvature.Density.Where(n => n.Operator == op && n.Eigenvalue > 0 && n.Weight > 0).ToArray();
        double d = curvature.Summary.ParameterCount ?? curvature.Bins.Sum(b => b.Count);
        if (top.Length == 0 || nodes.Length == 0 || !(d > 0)) return null;

        double cutoff = top[^1].Eigenvalue;
        var bulk = nodes.Where(n => n.Eigenvalue < cutoff).Select(n => (H: n.Eigenvalue, Count: n.Weight * d)).ToArray();
        double topNoise = top.Sum(e => e.NoiseVariance ?? 0);
        double bulkCurvature = bulk.Sum(b => b.Count * b.H);
        double bulkScale = bulkCurvature > 0 ? Math.Max(traceNoise - topNoise, 0) / bulkCurvature : 0;
        bool measuredTop = top.All(e => e.NoiseVariance is not null);
        // The mean gradient describes the state the NQM starts from at the initialisation, and at the start of a piece.
        bool atInit = startsHere || IsInitialisation(curvature);
        double n = curvature.Summary.Examples ?? double.PositiveInfinity;

        var bins = new List<NqmBin>();
        foreach (var e in top)
        {
            double? s0 = atInit && e.MeanGradProjectionSq is double g2
                ? Math.Max(g2 - (e.NoiseVariance ?? 0) / n, 0) / (e.Eigenvalue * e.Eigenvalue) : null;
            bins.Add(new NqmBin(e.Eigenvalue, tiedNoise ? e.Eigenvalue : e.NoiseVariance ?? e.Eigenvalue * bulkScale, 0, 1, e.MeanGradProjectionSq ?? 0, s0, Top: true));
        }
        foreach (var b in bulk)
            bins.Add(new NqmBin(b.H, tiedNoise ? b.H : b.H * bulkScale, 0, b.Count));
        string noise = tiedNoise ? "c = h (the paper's assumption)"
            : measuredTop ? "measured vᵀΣv along the top eigenvectors; bulk c ∝ h scaled to the measured tr Σ"
            : "c ∝ h scaled to the measured tr Σ";
        return new NqmVariant(
            tiedNoise ? $"{prefix}/c=h" : $"{prefix}/measured-c", source, noise, bins,
            $"top {top.Length} {op} eigenvalues (Lanczos) plus {bulk.Length} density nodes below {cutoff:G3} (SLQ), d = {d:G}; " +
            (atInit ? $"top directions' s0 from {(startsHere ? $"the mean gradient at {curvature.Label}, where its piece starts" : "the initialisation's mean gradient")}, (gᵀv)²/h² (noise-corrected)" : $"checkpoint {curvature.Label} is not the initialisation: its gradient does not describe the start, so the top directions' s0 follows the initial-condition policy like the bulk"));
    }

    /// <summary>The <see cref="NqmVariant.Source"/> of the piecewise variant.</summary>
    public const string PiecewiseSource = "piecewise";

    /// <summary>
    /// The piecewise variant of one trajectory (docs/validation.md, Variants): its checkpoints in the order the
    /// trial reached them (by falling loss), each the eigen-spectrum of <paramref name="op"/> measured there with its
    /// top directions' s0 from the mean gradient there (each piece starts from the network's state at its checkpoint).
    /// Null unless at least two checkpoints have that spectrum and lie above <paramref name="targetLoss"/> (one
    /// checkpoint is the eigen variant). The floor and the bulk's s0 shape are set by the fit (FitStage).
    /// </summary>
    public static NqmVariant? Piecewise(IReadOnlyList<CurvatureResults> trajectory, string op, bool tiedNoise, double targetLoss)
    {
        var pieces = new List<NqmSegment>();
        foreach (var c in trajectory.Where(c => c.Summary.InitialLoss > targetLoss).OrderByDescending(c => c.Summary.InitialLoss!.Value))
        {
            var eigen = EigenOf(c, op, tiedNoise, c.Summary.TraceNoise ?? c.Bins.Sum(b => b.Count * Math.Max(b.C, 0)), "eigen", "eigen", startsHere: true);
            if (eigen is not null) pieces.Add(new NqmSegment(c.Label, eigen.Bins, c.Summary.InitialLoss!.Value));
        }
        if (pieces.Count < 2) return null;
        return new NqmVariant(tiedNoise ? "piecewise/c=h" : "piecewise/measured-c", PiecewiseSource,
            tiedNoise ? "c = h (the paper's assumption)" : "measured vᵀΣv along the top eigenvectors; bulk c ∝ h scaled to the measured tr Σ",
            pieces[0].Bins,
            $"{pieces.Count} pieces cut at the losses of {string.Join(", ", pieces.Select(p => $"{p.Checkpoint} ({p.StartLoss:G3})"))}, each the {op} eigen-spectrum " +
            "measured at its start with s0 from the mean gradient there; one set of hyperparameters for the whole run; only the loss level carries across a cut",
            Segments: pieces);
    }

    /// <summary>Whether a checkpoint is the network at initialisation (the only state every trial starts from).</summary>
    public static bool IsInitialisation(CurvatureResults curvature) => (curvature.Summary.Checkpoint ?? curvature.Label) == "init";

    /// <summary>
    /// The diagonal variant with its curvature scaled by κ so that the NQM's SGD stability edge
    /// 2/(κ·h_max) equals the smallest learning rate that diverged in the sweep. It uses no steps-to-target
    /// data but it is calibrated on a sweep outcome (divergence, on the sweep's learning-rate grid): not zero-shot.
    /// </summary>
    public static NqmVariant EdgeOfStability(NqmVariant diagonal, double smallestDivergingLearningRate)
    {
        double kappa = 2.0 / (smallestDivergingLearningRate * diagonal.MaxCurvature);
        var bins = diagonal.Bins.Select(b => b with { H = b.H * kappa }).ToArray();
        return new NqmVariant("diagonal+eos/measured-c", "diagonal", diagonal.Noise, bins,
            $"diagonal curvature × κ = {kappa:G4}, so that 2/h_max equals the smallest diverging SGD learning rate {smallestDivergingLearningRate:G4} (calibrated on divergence)",
            Calibration: "divergence");
    }

    /// <summary>
    /// The eigen variant whose measured top eigenvalues are capped at <paramref name="margin"/> × the stability
    /// edge of the optimizer's own learning rate (2/α SGD, (2+2β)/α heavy ball), as curvature measured along a
    /// real trajectory is (progressive sharpening stops at the edge of stability). The cap depends on the
    /// learning rate the NQM itself picks, found self-consistently (NqmAdapter.OptimizeEosAware). The bulk is
    /// never capped: it sets the remaining stability limit, so the cap cannot make every direction fast.
    /// </summary>
    public static NqmVariant EosAware(NqmVariant eigen, double margin) =>
        eigen with
        {
            Name = eigen.Name.Replace("eigen/", "eigen+eos/"),
            Notes = eigen.Notes + $"; top eigenvalues capped at {margin:G3} × the stability edge of the NQM-optimal learning rate (self-consistent)",
            EosMargin = margin,
        };
}
