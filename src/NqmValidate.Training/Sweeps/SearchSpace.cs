namespace NqmValidate.Training.Sweeps;

/// <summary>One hyperparameter point of a study. Null = the optimizer does not use it.</summary>
public sealed record HyperPoint(double LearningRate, double? Momentum, double? Beta1, double? Epsilon, double? Beta2);

/// <summary>
/// An optimizer's search space in log coordinates: learning rate, 1 − β (momentum or Adam's β1)
/// and ε, each a log-scale range. Points are generated in a canonical order (grid: row-major over
/// the dimensions in that order; Halton: indices 1..n with bases 2, 3, 5), and the canonical index
/// names a trial for ever.
/// </summary>
public sealed class SearchSpace
{
    readonly OptimizerSearch _spec;
    readonly List<(string Name, LogRange Range)> _dims = [];

    public SearchSpace(OptimizerSearch spec)
    {
        _spec = spec;
        _dims.Add(("learning_rate", spec.LearningRate!));
        if (spec.OneMinusMomentum is not null) _dims.Add(("one_minus_momentum", spec.OneMinusMomentum));
        if (spec.OneMinusBeta1 is not null) _dims.Add(("one_minus_beta1", spec.OneMinusBeta1));
        if (spec.Epsilon is not null) _dims.Add(("epsilon", spec.Epsilon));
    }

    public int Dimensions => _dims.Count;

    /// <summary>The points in canonical order, each with its unit-cube coordinates (for ordering by distance).</summary>
    public IReadOnlyList<(HyperPoint Point, double[] Unit)> Points()
    {
        var units = _spec.Search == "halton" ? HaltonUnits(_spec.Trials!.Value) : GridUnits();
        return units.Select(u => (FromUnit(u), u)).ToList();
    }

    /// <summary>Maps unit coordinates (0 = min, 1 = max, on a log scale) to a point; values outside [0,1] extrapolate.</summary>
    public HyperPoint FromUnit(double[] u)
    {
        double Value(int d) => LogLerp(_dims[d].Range, u[d]);
        double? lr = null, mom = null, beta1 = null, eps = null;
        for (int d = 0; d < _dims.Count; d++)
        {
            switch (_dims[d].Name)
            {
                case "learning_rate": lr = Value(d); break;
                case "one_minus_momentum": mom = Round12(1 - Value(d)); break;
                case "one_minus_beta1": beta1 = Round12(1 - Value(d)); break;
                case "epsilon": eps = Value(d); break;
            }
        }
        if (_spec.Name == "adam")
        {
            beta1 ??= 0.9;
            eps ??= 1e-8;
        }
        return new HyperPoint(lr!.Value, mom, beta1, eps, _spec.Name == "adam" ? _spec.Beta2 : null);
    }

    /// <summary>Unit coordinates of a learning rate (log scale; may fall outside [0,1]).</summary>
    public double LearningRateUnit(double learningRate) => ToUnit(_dims[0].Range, learningRate);

    /// <summary>Where a point's learning rate lies in its range: 0 = min, 1 = max (log scale).</summary>
    public double LearningRatePosition(double learningRate) => _dims[0].Range.Min == _dims[0].Range.Max ? 0.5 : LearningRateUnit(learningRate);

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
        var axes = _dims.Select(d =>
        {
            int n = d.Range.Min == d.Range.Max ? 1 : d.Range.Points!.Value;
            return n == 1 ? new[] { 0.5 } : Enumerable.Range(0, n).Select(i => i / (double)(n - 1)).ToArray();
        }).ToList();
        var points = new List<double[]> { Array.Empty<double>() };
        foreach (var axis in axes)
            points = points.SelectMany(p => axis.Select(a => p.Append(a).ToArray())).ToList();
        return points;
    }

    static readonly int[] Primes = [2, 3, 5, 7];

    List<double[]> HaltonUnits(int n) =>
        Enumerable.Range(1, n).Select(i => Enumerable.Range(0, _dims.Count).Select(d => Halton(i, Primes[d])).ToArray()).ToList();

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
