using NqmValidate.Training.Sweeps;
using static TorchSharp.torch;

namespace NqmValidate.Training.Optimizers;

/// <summary>A hyperparameter of an optimizer family (the learning rate is common to all and not listed).</summary>
/// <param name="Name">Its key in a trial's optimizer spec (snake_case), e.g. momentum, beta1, ema_decay.</param>
/// <param name="Default">The value a resolved spec gets when none is given.</param>
/// <param name="Min">Smallest allowed value.</param>
/// <param name="Max">Largest allowed value.</param>
/// <param name="MaxExclusive">Max itself is not allowed (a decay or momentum must stay below 1).</param>
/// <param name="MinExclusive">Min itself is not allowed (Adam's ε must be positive).</param>
/// <param name="Description">One line for help texts and docs.</param>
public sealed record Hyperparameter(string Name, double Default, double Min, double Max, bool MaxExclusive, bool MinExclusive, string Description)
{
    /// <summary>Only whole numbers are allowed (a count of steps, such as K-FAC's inverse_every).</summary>
    public bool WholeNumber { get; init; }

    public bool Allows(double v) =>
        double.IsFinite(v) && (MinExclusive ? v > Min : v >= Min) && (MaxExclusive ? v < Max : v <= Max) && (!WholeNumber || v == Math.Floor(v));

    public string Range => $"{(MinExclusive ? "(" : "[")}{Min:R}, {(double.IsPositiveInfinity(Max) ? "∞" : Max.ToString("R"))}{(MaxExclusive || double.IsPositiveInfinity(Max) ? ")" : "]")}" +
        (WholeNumber ? " (whole numbers)" : "");

    /// <summary>A decay-like hyperparameter in [0, 1).</summary>
    public static Hyperparameter Decay(string name, double @default, string description) =>
        new(name, @default, 0, 1, MaxExclusive: true, MinExclusive: false, description);

    /// <summary>A positive hyperparameter.</summary>
    public static Hyperparameter Positive(string name, double @default, string description) =>
        new(name, @default, 0, double.PositiveInfinity, MaxExclusive: false, MinExclusive: true, description);

    /// <summary>A count of at least 1 (steps between events).</summary>
    public static Hyperparameter Count(string name, double @default, string description) =>
        new(name, @default, 1, double.PositiveInfinity, MaxExclusive: false, MinExclusive: false, description) { WholeNumber = true };
}

/// <summary>
/// A dimension a sweep can search on a log scale, besides the learning rate. A decay β is searched as
/// 1 − β (a log scale resolves 0.9, 0.99, 0.999 evenly), so <paramref name="OneMinus"/> maps the searched
/// value x to the hyperparameter 1 − x.
/// </summary>
/// <param name="Key">Its key in the spec's optimizer entry, e.g. one_minus_momentum.</param>
/// <param name="Hyperparameter">The hyperparameter it sets.</param>
/// <param name="OneMinus">The searched value is 1 − hyperparameter.</param>
/// <param name="Required">The spec must give it (a family defined by it, e.g. momentum's β).</param>
public sealed record SearchDimension(string Key, string Hyperparameter, bool OneMinus, bool Required = false);

/// <summary>
/// One optimizer family: its hyperparameters, how a sweep searches them, how it orders trials, which NQM
/// optimizers model it, and its update rule. A new family is one class implementing this plus one line in
/// <see cref="OptimizerFamilies.All"/>.
/// </summary>
public interface IOptimizerFamily
{
    /// <summary>The name in specs and tables (sgd, momentum, adam, …).</summary>
    string Name { get; }

    /// <summary>One line: the update rule in formulas.</summary>
    string Description { get; }

    /// <summary>Hyperparameters besides the learning rate, in the order tables and files list them.</summary>
    IReadOnlyList<Hyperparameter> Hyperparameters { get; }

    /// <summary>What a sweep may search besides the learning rate, in canonical (grid, Halton) order.</summary>
    IReadOnlyList<SearchDimension> SearchDimensions { get; }

    /// <summary>
    /// α in "the best learning rate scales as B^α below the critical batch size" (1 for SGD-like rules, 1/2 for
    /// Adam's square-root scaling): the sweep orders a study's trials from the previous batch size's optimum.
    /// </summary>
    double ScalingExponent { get; }

    /// <summary>
    /// The NQM optimizers (NqmValidate.Validation's names: sgd, momentum, ema, precond-p0.5, …) that model this family as
    /// <paramref name="entry"/> (the sweep spec's entry for it) ran it: a counterpart may carry a hyperparameter the
    /// NQM cannot search, such as K-FAC's damping.
    /// </summary>
    IReadOnlyList<string> NqmCounterparts(OptimizerSearch entry);

    /// <summary>The update rule over <paramref name="model"/>'s parameters for a resolved spec.</summary>
    IUpdateRule Create(OptimizerSpec resolved, nn.Module model);
}

/// <summary>
/// A trial's update rule. It owns the whole step — forward, backward and update — so a rule that needs more
/// than the gradient (layer inputs and output gradients, an average of iterates) has the model and the batch.
/// </summary>
public interface IUpdateRule : IDisposable
{
    /// <summary>
    /// One update at <paramref name="learningRate"/>: computes <paramref name="loss"/> (forward pass, mean over the
    /// batch), its gradients, and updates the parameters. Returns the loss (a tensor of the caller's dispose scope).
    /// </summary>
    Tensor Step(Func<Tensor> loss, double learningRate);

    /// <summary>
    /// The weights the trial is evaluated with: while the returned scope lives, the model holds them (an EMA's
    /// averaged iterate); disposing it puts the training weights back. Null when they are the training weights.
    /// </summary>
    IDisposable? UseEvaluationWeights() => null;

    /// <summary>
    /// The diagonal preconditioner P the rule's own state applies now, if it has one: its update is θ ← θ − η·P⊙d for
    /// a direction d built from gradients (Adam: P = 1/(√v̂ + ε), d = m̂). One tensor per parameter, in
    /// <c>model.parameters()</c> order, new tensors the caller owns. Null for rules without one, and before a rule's
    /// first step (its state does not exist yet). The curvature stage measures the preconditioned spectrum P^½GP^½ with it.
    /// </summary>
    IReadOnlyList<Tensor>? DiagonalPreconditioner() => null;
}
