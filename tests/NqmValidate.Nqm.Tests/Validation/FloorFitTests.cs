using NqmValidate.Reports;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// The floor fit (InitialCondition.FitCurve) on curves made by the NQM's own closed form, so the truth is known:
/// it must recover the floor and the initial condition's shape, and its answer must not depend on how densely the
/// trial happened to evaluate one stretch of its curve (a trial evaluates more often near its crossing).
/// </summary>
public class FloorFitTests
{
    const double Alpha = 0.5, Batch = 64, Floor = 0.1, Exponent = 0.5;

    // 24 geometric bins h = 1e-3 … 1, noise variance ∝ h, s0 ∝ h^−0.5 scaled to an initial excess of 2.
    static readonly NqmBin[] Bins = InitialCondition.WithMeasuredStart(
        Enumerable.Range(0, 24).Select(i => Math.Pow(10, -3 + 3.0 * i / 23))
            .Select(h => new NqmBin(h, 0.002 * h, 0, 2000)).ToArray(), initialExcess: 2, Exponent).ToArray();

    /// <summary>The NQM's expected loss after k steps of SGD, plus a slow power-law component the model cannot follow.</summary>
    static double Loss(long k, double slow)
    {
        double excess = 0;
        foreach (var b in Bins)
        {
            double q = (1 - Alpha * b.H) * (1 - Alpha * b.H), sStar = Alpha * Alpha * b.C / Batch / (1 - q), r = Math.Pow(q, k);
            excess += 0.5 * b.Count * b.H * (sStar * (1 - r) + b.S0 * r);
        }
        return Floor + excess + slow * Math.Pow(1 + k / 200.0, -0.5);
    }

    static LossCurve Curve(IEnumerable<long> steps, double slow) =>
        new("synthetic/curve.csv", "sgd", (int)Batch, Alpha,
            steps.Prepend(0).Distinct().Order().Select(k => new LossCurvePoint(k, Loss(k, slow))).ToList());

    // Four evaluations an octave from step 1 to 16,384: the shape of a trial's geometric grid.
    static readonly long[] Grid = Enumerable.Range(0, 57).Select(i => (long)Math.Round(Math.Pow(2, i / 4.0))).Distinct().ToArray();

    [Fact]
    public void RecoversTheFloorAndTheShapeOfAnExactCurve()
    {
        var fit = InitialCondition.FitCurve(Bins, Curve(Grid, slow: 0), fixedFloor: null, isotropic: false, capMargin: 0.9);
        Assert.Equal(Floor, fit.Floor, 0.003);
        Assert.Equal(Exponent, fit.BulkExponent, 0.051);
        Assert.InRange(fit.Floor, fit.FloorLow, fit.FloorHigh);
        Assert.True(fit.FloorHigh - fit.FloorLow < 0.01, $"floor interval [{fit.FloorLow:G4}, {fit.FloorHigh:G4}] for an exact curve");
        Assert.Null(fit.AtSearchEdge);
    }

    [Theory]
    [InlineData(100, 200)]
    [InlineData(6000, 9000)]
    [InlineData(12000, 16000)]
    public void DenserEvaluationOfOneStretchDoesNotMoveTheFloor(int from, int to)
    {
        // A curve the NQM cannot follow exactly (a slow extra component), fitted once on the grid alone and once with
        // every step of one stretch evaluated too, as a trial does near its crossing or the fit curve's extension does
        // after it. Unweighted least squares let that stretch decide: the floor moved by 5–11% on these stretches.
        var sparse = InitialCondition.FitCurve(Bins, Curve(Grid, slow: 0.08), null, isotropic: false, capMargin: 0.9);
        var dense = InitialCondition.FitCurve(Bins, Curve(Grid.Concat(Enumerable.Range(from, to - from + 1).Select(k => (long)k)), slow: 0.08),
            null, isotropic: false, capMargin: 0.9);
        Assert.InRange(sparse.Floor, 0.08, 0.14);
        Assert.True(Math.Abs(dense.Floor - sparse.Floor) <= 0.01 * sparse.Floor,
            $"floor {sparse.Floor:G4} on the grid, {dense.Floor:G4} with steps {from}–{to} evaluated densely");
        Assert.Equal(sparse.BulkExponent, dense.BulkExponent, 0.051);
        // The fit before the weights (kept as the sensitivity table's floor policy curve-unweighted) is moved by the stretch.
        var sparseAlike = InitialCondition.FitCurve(Bins, Curve(Grid, slow: 0.08), null, isotropic: false, capMargin: 0.9, logStepWeights: false);
        var denseAlike = InitialCondition.FitCurve(Bins, Curve(Grid.Concat(Enumerable.Range(from, to - from + 1).Select(k => (long)k)), slow: 0.08),
            null, isotropic: false, capMargin: 0.9, logStepWeights: false);
        Assert.True(Math.Abs(denseAlike.Floor - sparseAlike.Floor) >= 0.04 * sparseAlike.Floor,
            $"unweighted: floor {sparseAlike.Floor:G4} on the grid, {denseAlike.Floor:G4} with steps {from}–{to} evaluated densely");
    }

    [Fact]
    public void LogStepWeightsGiveEachPointItsStretchOfLogStep()
    {
        var w = InitialCondition.LogStepWeights([1, 2, 4, 5, 8]);
        double[] raw = [Math.Log(2), Math.Log(4) / 2, Math.Log(5 / 2.0) / 2, Math.Log(8 / 4.0) / 2, Math.Log(8 / 5.0)];
        for (int j = 0; j < raw.Length; j++) Assert.Equal(raw[j] / raw.Average(), w[j], 12);
        Assert.Throws<ArgumentException>(() => InitialCondition.LogStepWeights([1, 4, 2]));
    }

    [Fact]
    public void ACurveOutOfStepOrderIsRefusedWithItsPath()
    {
        var curve = Curve(Grid, slow: 0);
        var shuffled = curve with { Points = [curve.Points[0], curve.Points[2], curve.Points[1], .. curve.Points.Skip(3)] };
        var e = Assert.Throws<RunFileException>(() => InitialCondition.FitCurve(Bins, shuffled, null, isotropic: false, capMargin: 0.9));
        Assert.Contains("synthetic/curve.csv", e.Message);
        Assert.Contains("out of step order", e.Message);
    }
}
