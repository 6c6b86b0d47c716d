using System.Collections.Immutable;
using NqmValidate.Training.Optimizers;

namespace NqmValidate.Training.Sweeps;

/// <summary>One hyperparameter point of a study: the learning rate and the family hyperparameters the spec searches or fixes (the rest take the family's defaults in the trial).</summary>
public sealed record HyperPoint(double LearningRate, ImmutableSortedDictionary<string, double> Hyperparameters)
{
    public double? this[string name] => Hyperparameters.TryGetValue(name, out double v) ? v : null;

    public bool Equals(HyperPoint? other) =>
        other is not null && LearningRate.Equals(other.LearningRate) && Hyperparameters.Count == other.Hyperparameters.Count
        && Hyperparameters.All(kv => other.Hyperparameters.TryGetValue(kv.Key, out double v) && v.Equals(kv.Value));

    public override int GetHashCode() => HashCode.Combine(LearningRate, Hyperparameters.Count);
}

/// <summary>
/// An optimizer's search space in log coordinates: the learning rate, then the family's search
/// dimensions the spec gives (<see cref="IOptimizerFamily.SearchDimensions"/>, in the family's order),
/// each a log-scale range. Points are generated in a canonical order (grid: row-major over the
/// dimensions in that order; Halton: indices 1..n with bases 2, 3, 5, 7), and the canonical index
/// names a trial for ever.
/// </summary>
public sealed class SearchSpace
{
    readonly OptimizerSearch _spec;
    readonly LogRange _learningRate;
    readonly IReadOnlyList<(SearchDimension Dimension, LogRange Range)> _dims;
    readonly IReadOnlyList<(string Name, double Value)> _fixed;

    public SearchSpace(OptimizerSearch spec)
    {
        _spec = spec;
        var family = OptimizerFamilies.Get(spec.Name);
        _learningRate = spec.LearningRate!;
        _dims = spec.Dimensions(family);
        _fixed = spec.Fixed(family);
    }

    /// <summary>The learning rate and the searched dimensions.</summary>
    public int Dimensions => 1 + _dims.Count;

    /// <summary>The points in canonical order, each with its unit-cube coordinates (for ordering by distance).</summary>
    public IReadOnlyList<(HyperPoint Point, double[] Unit)> Points()
    {
        var units = _spec.Search == "halton" ? HaltonUnits(_spec.Trials!.Value) : GridUnits();
        return units.Select(u => (FromUnit(u), u)).ToList();
    }

    /// <summary>Maps unit coordinates (0 = min, 1 = max, on a log scale) to a point; values outside [0,1] extrapolate.</summary>
    public HyperPoint FromUnit(double[] u)
    {
        var hyper = ImmutableSortedDictionary.CreateBuilder<string, double>();
        foreach (var (name, value) in _fixed) hyper[name] = value;
        for (int d = 0; d < _dims.Count; d++)
        {
            var (dimension, range) = _dims[d];
            double x = LogLerp(range, u[d + 1]);
            hyper[dimension.Hyperparameter] = dimension.OneMinus ? Round12(1 - x) : x;
        }
        return new HyperPoint(LogLerp(_learningRate, u[0]), hyper.ToImmutable());
    }

    /// <summary>Unit coordinates of a learning rate (log scale; may fall outside [0,1]).</summary>
    public double LearningRateUnit(double learningRate) => ToUnit(_learningRate, learningRate);

    /// <summary>Where a point's learning rate lies in its range: 0 = min, 1 = max (log scale).</summary>
    public double LearningRatePosition(double learningRate) => _learningRate.Min == _learningRate.Max ? 0.5 : LearningRateUnit(learningRate);

    // Endpoints exactly, interior points rounded to 12 significant digits, so that a spec's
    // 0.1 is passed to the trial as 0.1 and not as 0.10000000000000002.
    static double LogLerp(LogRange r, double u) =>
        r.Min == r.Max || u == 0 ? r.Min
        : u == 1 ? r.Max
        : Round12(Math.Exp(Math.Log(r.Min) + u * (Math.Log(r.Max) - Math.Log(r.Min))));

    static double Round12(double x) => double.Parse(x.ToString("G12", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    static double ToUnit(LogRange r, double v) =>
        r.Min == r.Max ? 0.5 : (Math.Log(v) - Math.Log(r.Min)) / (Math.Log(r.Max) - Math.Log(r.Min));

    List<double[]> GridUnits()
    {
        var axes = new[] { _learningRate }.Concat(_dims.Select(d => d.Range)).Select(r =>
        {
            int n = r.Min == r.Max ? 1 : r.Points!.Value;
            return n == 1 ? new[] { 0.5 } : Enumerable.Range(0, n).Select(i => i / (double)(n - 1)).ToArray();
        }).ToList();
        var points = new List<double[]> { Array.Empty<double>() };
        foreach (var axis in axes)
            points = points.SelectMany(p => axis.Select(a => p.Append(a).ToArray())).ToList();
        return points;
    }

    static readonly int[] Primes = [2, 3, 5, 7, 11, 13];

    List<double[]> HaltonUnits(int n) =>
        Enumerable.Range(1, n).Select(i => Enumerable.Range(0, Dimensions).Select(d => Halton(i, Primes[d])).ToArray()).ToList();

    /// <summary>The radical inverse of <paramref name="index"/> in base <paramref name="b"/>: the Halton sequence's coordinate.</summary>
    public static double Halton(int index, int b)
    {
        double f = 1, r = 0;
        for (int i = index; i > 0; i /= b)
        {
            f /= b;
            r += f * (i % b);
        }
        return r;
    }
}
