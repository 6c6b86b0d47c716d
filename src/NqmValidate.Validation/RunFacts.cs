using NqmValidate.Common;
using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// What every recipe of one validation shares, read once from the inputs (the first stage of <see cref="Validator.Run"/>):
/// the primary curvature checkpoint, the initial loss, the measured studies by (optimizer, batch size), the fit curve
/// (the largest batch size's best SGD trial, run on past the target where the caller did so) whose point is never scored,
/// the McCandlish baselines' noise scales and the sweep's smallest diverging SGD learning rate.
/// </summary>
/// <param name="Inputs">What the fit was given (options, sweep, checkpoints, target, NQM counterparts).</param>
/// <param name="PrimaryCheckpoint">The checkpoint fit.checkpoint names: the primary combo's.</param>
/// <param name="InitialLoss">The median initial training loss of the sweep's trials (else the curvature summary's).</param>
/// <param name="InitialLossSource">Where <paramref name="InitialLoss"/> came from, for fit.json.</param>
/// <param name="Optimizers">The measured optimizers, in the sweep's order.</param>
/// <param name="BatchSizes">Every measured batch size, ascending.</param>
/// <param name="Measured">The sweep's studies by (optimizer, batch size).</param>
/// <param name="FitCurve">What the floor and initial condition are fitted to: the longer curve if it is the fit trial's, else <paramref name="RecordedCurve"/>; null if there is none.</param>
/// <param name="RecordedCurve">The fit trial's curve as recorded (it stops at the target): floor policy curve-recorded.</param>
/// <param name="FitCurveProblem">Why there is no fit curve (null when there is one).</param>
/// <param name="Baselines">The McCandlish baseline's noise scale per optimizer.</param>
/// <param name="DivergingLearningRate">The smallest diverging SGD learning rate at the smallest batch size: the edge-of-stability variant's scale.</param>
internal sealed record RunFacts(
    ValidationInputs Inputs,
    CurvatureResults PrimaryCheckpoint,
    double InitialLoss,
    string InitialLossSource,
    IReadOnlyList<string> Optimizers,
    IReadOnlyList<double> BatchSizes,
    IReadOnlyDictionary<(string Optimizer, double BatchSize), MeasuredStudy> Measured,
    LossCurve? FitCurve,
    LossCurve? RecordedCurve,
    string? FitCurveProblem,
    IReadOnlyList<BaselineNoiseScale> Baselines,
    double? DivergingLearningRate)
{
    public FitOptions Options => Inputs.Options;

    /// <summary>The trajectory drift (drift.csv) measured with the given checkpoint's curvature run; empty when none was.</summary>
    public IReadOnlyList<MeasuredDrift> Drift { get; init; } = [];

    /// <summary>The batch size of the fit curve's point (SGD): never scored.</summary>
    public double? FitPointBatchSize => FitCurve?.BatchSize;

    /// <summary>
    /// The NQM optimizers that model <paramref name="optimizer"/> in <paramref name="variant"/>: Adam's measured
    /// preconditioner exists only for diagonal spectra, and a spectrum measured under the optimizer's own P is modelled
    /// only as plain heavy ball on it (precond-own), and precond-own only there.
    /// </summary>
    public IEnumerable<string> NqmOptimizersFor(string optimizer, NqmVariant variant) =>
        !Inputs.NqmCounterparts.TryGetValue(optimizer, out var names) ? []
        : variant.Source == NqmVariantBuilder.EigenPreconditionedSource ? names.Where(n => n == "precond-own")
        : names.Where(n => n != "precond-own" && (n != "precond-measured" || variant.Source == "diagonal"));

    /// <summary>The label a (variant, NQM optimizer) pair has in the comparison: a variant with two NQM optimizers for one optimizer names which.</summary>
    public string Label(NqmVariant variant, string optimizer, string nqmOptimizer) =>
        variant.Name + (NqmOptimizersFor(optimizer, variant).Count() > 1 ? $" [{nqmOptimizer}]" : "");

    /// <summary>Reads the shared facts; throws when fit.checkpoint names no checkpoint or the recipe needs a fit curve there is not.</summary>
    public static RunFacts From(ValidationInputs inputs)
    {
        var options = inputs.Options;
        var sweep = inputs.Sweep;
        if (inputs.Checkpoints.Count == 0) throw new ArgumentException("no curvature checkpoint", nameof(inputs));
        var primaryCheckpoint = options.Checkpoint == "given" ? inputs.Checkpoints[0]
            : inputs.Checkpoints.FirstOrDefault(c => c.Label == options.Checkpoint)
              ?? throw new SpecException($"fit.checkpoint = '{options.Checkpoint}': no such curvature checkpoint; available: {string.Join(", ", inputs.Checkpoints.Select(c => c.Label))} and 'given' (the directory given to the fit).");

        var initialLosses = sweep.Trials.Select(t => t.InitialLoss).OfType<double>().Where(double.IsFinite).ToArray();
        (double initialLoss, string initialSource) = initialLosses.Length > 0
            ? (Stats.Median(initialLosses), $"median initial training loss of {initialLosses.Length} trials (trials.csv)")
            : (primaryCheckpoint.Summary.InitialLoss ?? throw new RunFileException($"{sweep.Directory}: no initial_loss in trials.csv and none in the curvature summary.json"),
               "curvature summary.json initial_loss");
        var optimizers = sweep.Studies.Select(s => s.Optimizer).Distinct().ToArray();
        var batchSizes = sweep.Studies.Select(s => (double)s.BatchSize).Distinct().Order().ToArray();
        var measured = sweep.Studies.ToDictionary(s => (s.Optimizer, (double)s.BatchSize));

        LossCurve? curve = null, recordedCurve = null;
        string? curveProblem = null;
        if (sweep.FitBatchSize is int fitBatchSize)
            try
            {
                recordedCurve = sweep.BestTrialCurve("sgd", fitBatchSize);
                curve = inputs.LongerFitCurve is { Optimizer: "sgd" } longer && longer.BatchSize == fitBatchSize ? longer : recordedCurve;
            }
            catch (RunFileException e) { curveProblem = e.Message; }
        else curveProblem = $"{sweep.Directory}: no SGD study reached the target, so there is no curve to fit the floor and initial condition to.";
        if (curve is null && NeedsCurve(options.Floor, options.InitialCondition)) throw new RunFileException(curveProblem!);

        var baselines = optimizers.Select(o => McCandlishBaseline.For(o, McCandlishBaseline.NearestTarget(inputs.Checkpoints, inputs.TargetLoss, o))).ToArray();
        var divergingEta = batchSizes.Length > 0 ? sweep.SmallestDivergingLearningRate("sgd", (int)batchSizes[0]) : null;
        return new RunFacts(inputs, primaryCheckpoint, initialLoss, initialSource, optimizers, batchSizes, measured,
            curve, recordedCurve, curveProblem, baselines, divergingEta)
        {
            Drift = inputs.Drift ?? TrajectoryDrift.Load(inputs.Checkpoints[0].Directory),
        };
    }

    /// <summary>A floor policy fitted to the curve, or a measured initial condition, needs the fit curve.</summary>
    static bool NeedsCurve(string floorPolicy, string initialCondition) => floorPolicy.StartsWith("curve") || initialCondition == "measured";
}
