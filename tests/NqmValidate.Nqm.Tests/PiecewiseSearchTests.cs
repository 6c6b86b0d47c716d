using NqmValidate.Nqm;

namespace NqmValidate.Nqm.Tests;

public class PiecewiseSearchTests
{
    // Two pieces with different spectra: the second is sharper (progressive sharpening) and starts from a smaller
    // loss spread another way, as a checkpoint further along a trajectory would.
    static readonly Spectrum Early = Spectrum.PaperPowerLaw(400, 1.0, 20, noiseScale: 1.0, s0: 1.0);
    static readonly Spectrum Late = new(Spectrum.PaperPowerLaw(400, 1.3, 20, noiseScale: 2.0).Rows
        .Select(r => r with { H = 3 * r.H, S0 = 0.05 / Math.Sqrt(3 * r.H) }));
    static readonly double Cut = 0.5 * Early.InitialLoss, Target = 0.3 * Late.InitialLoss;

    static long? DirectSteps(Spectrum s, NqmOptimizer opt, double batch, double end, int kmax)
    {
        var curve = DirectStepping.CurveDouble(s, opt, batch, kmax);
        for (int k = 0; k < curve.Length; k++) if (curve[k] < end) return k;
        return null;
    }

    /// <summary>
    /// On a small grid, the search's total and cell equal an exhaustive evaluation in which each piece is stepped
    /// directly (the moment recursions one step at a time): piece one from its s0 until the loss is below the cut,
    /// piece two from its own s0 until below the target, one learning rate (and β) for both.
    /// </summary>
    [Theory]
    [InlineData(OptimizerKind.Sgd, 8.0)]
    [InlineData(OptimizerKind.Momentum, 64.0)]
    public void TheGridOptimumIsTheExhaustiveOptimumOfDirectlySteppedPieces(OptimizerKind kind, double batch)
    {
        Assert.True(Late.InitialLoss > Target && Early.InitialLoss > Cut);
        var rates = NumpyCompat.Logspace(-2.5, Math.Log10(0.6), 12);
        var betas = new[] { 0.0, 0.5, 0.8, 0.9 };
        var segments = new[] { new PiecewiseSegment(Early, Cut), new PiecewiseSegment(Late, Target) };
        var result = PiecewiseSearch.Optimize(segments, kind, batch,
            new SearchOptions { Mode = SearchMode.Grid, LearningRates = rates, SecondGrid = betas, MaxSteps = 4000 });

        long best = long.MaxValue;
        foreach (var a in rates)
            foreach (var b in kind == OptimizerKind.Sgd ? new[] { 0.0 } : betas)
            {
                NqmOptimizer opt = kind == OptimizerKind.Sgd ? new Sgd(a, Preconditioner.None) : new Momentum(a, b, Preconditioner.None);
                if (DirectSteps(Early, opt, batch, Cut, 4000) is not long k1 || DirectSteps(Late, opt, batch, Target, 4000) is not long k2) continue;
                best = Math.Min(best, k1 + k2);
            }
        Assert.NotEqual(long.MaxValue, best);
        Assert.Equal(best, result.Steps);
        // The reported cell achieves the total, piece by piece.
        NqmOptimizer chosen = kind == OptimizerKind.Sgd ? new Sgd(result.LearningRate, Preconditioner.None) : new Momentum(result.LearningRate, result.Momentum, Preconditioner.None);
        Assert.Equal(DirectSteps(Early, chosen, batch, Cut, 4000), result.SegmentSteps[0]);
        Assert.Equal(DirectSteps(Late, chosen, batch, Target, 4000), result.SegmentSteps[1]);
    }

    /// <summary>One piece is the ordinary problem: the same steps as the one-spectrum search on the same grid.</summary>
    [Theory]
    [InlineData(OptimizerKind.Sgd)]
    [InlineData(OptimizerKind.Momentum)]
    [InlineData(OptimizerKind.Ema)]
    public void OnePieceGivesTheOneSpectrumSearchsSteps(OptimizerKind kind)
    {
        var s = Spectrum.PaperPowerLaw();
        foreach (double b in new[] { 16.0, 4096.0 })
        {
            var plain = HyperparameterSearch.Optimize(s, kind, b, 0.01);
            var piecewise = PiecewiseSearch.Optimize([new PiecewiseSegment(s, 0.01)], kind, b, new SearchOptions { Mode = SearchMode.Grid });
            Assert.Equal(plain.Steps, piecewise.Steps);
        }
    }

    /// <summary>The off-grid refinement accepts only exact, strictly smaller totals: never worse than the grid.</summary>
    [Theory]
    [InlineData(OptimizerKind.Sgd)]
    [InlineData(OptimizerKind.Momentum)]
    public void RefinementIsNeverWorseThanTheGrid(OptimizerKind kind)
    {
        var segments = new[] { new PiecewiseSegment(Early, Cut), new PiecewiseSegment(Late, Target) };
        foreach (double b in new[] { 4.0, 1024.0 })
        {
            var grid = PiecewiseSearch.Optimize(segments, kind, b, new SearchOptions { Mode = SearchMode.Grid });
            var refined = PiecewiseSearch.Optimize(segments, kind, b, new SearchOptions { Mode = SearchMode.Continuous });
            Assert.NotNull(grid.Steps);
            Assert.True(refined.Steps <= grid.Steps, $"B={b}: refined {refined.Steps} > grid {grid.Steps}");
            NqmOptimizer chosen = kind == OptimizerKind.Sgd ? new Sgd(refined.LearningRate, Preconditioner.None) : new Momentum(refined.LearningRate, refined.Momentum, Preconditioner.None);
            Assert.Equal(refined.Steps, Nqm.StepsToTarget(Early, chosen, b, Cut) + Nqm.StepsToTarget(Late, chosen, b, Target));
        }
    }

    /// <summary>A learning rate stable on the early spectrum but not on the sharper late one is not a solution.</summary>
    [Fact]
    public void ALearningRateUnstableOnALaterPieceIsRejected()
    {
        double edgeLate = 2 / Late.MaxCurvature, edgeEarly = 2 / Early.MaxCurvature;
        Assert.True(edgeLate < edgeEarly);
        double between = Math.Sqrt(edgeLate * edgeEarly);
        var r = PiecewiseSearch.Optimize([new PiecewiseSegment(Early, Cut), new PiecewiseSegment(Late, Target)], OptimizerKind.Sgd, 1e6,
            new SearchOptions { Mode = SearchMode.Grid, LearningRates = [between] });
        Assert.Null(r.Steps);
    }
}
