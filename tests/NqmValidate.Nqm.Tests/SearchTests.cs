using NqmValidate.Nqm;
using Xunit.Abstractions;

namespace NqmValidate.Nqm.Tests;

public class SearchTests(ITestOutputHelper output)
{
    /// <summary>The pruned grid search returns the same cell and steps as evaluating every cell in full.</summary>
    [Fact]
    public void PrunedGridEqualsExhaustiveGrid()
    {
        var s = Spectrum.PaperPowerLaw(2000, 1, 40);
        var rates = NumpyCompat.Logspace(-4, 1, 25);
        var betas = new[] { 0.99, 0.9, 0.5, 0.0 };
        foreach (double b in new[] { 4.0, 1024.0 })
        {
            var r = HyperparameterSearch.Optimize(s, OptimizerKind.Momentum, b, 0.01, new SearchOptions { LearningRates = rates, SecondGrid = betas });
            long best = long.MaxValue; double ba = 0, bb = 0;
            foreach (var a in rates) foreach (var be in betas)
            {
                var k = Nqm.StepsToTarget(s, new Momentum(a, be, Preconditioner.None), b, 0.01, r.Cap);
                if (k is { } kk && kk < best) { best = kk; ba = a; bb = be; }
            }
            Assert.Equal(best, r.Steps); Assert.Equal(ba, r.LearningRate); Assert.Equal(bb, r.Momentum);
        }
    }

    [Theory]
    [InlineData(OptimizerKind.Sgd)]
    [InlineData(OptimizerKind.Momentum)]
    [InlineData(OptimizerKind.Ema)]
    public void ContinuousIsNeverWorseThanGridAndItsStepsAreExact(OptimizerKind kind)
    {
        var s = Spectrum.PaperPowerLaw();
        int better = 0;
        foreach (double b in new[] { 16.0, 4096.0, 1 << 18 })
        {
            var grid = HyperparameterSearch.Optimize(s, kind, b, 0.01);
            var cont = HyperparameterSearch.Optimize(s, kind, b, 0.01, new SearchOptions { Mode = SearchMode.Continuous });
            output.WriteLine($"{kind} B={b}: grid {grid.Steps} (α {grid.LearningRate:G4}, {grid.Momentum + grid.Decay:G4}) continuous {cont.Steps} (α {cont.LearningRate:G4}, {cont.Momentum + cont.Decay:G4})");
            Assert.True(cont.Steps <= grid.Steps);
            if (cont.Steps < grid.Steps) better++;
            NqmOptimizer opt = kind switch
            {
                OptimizerKind.Sgd => new Sgd(cont.LearningRate),
                OptimizerKind.Momentum => new Momentum(cont.LearningRate, cont.Momentum, Preconditioner.None),
                _ => new Ema(cont.LearningRate, cont.Decay, Preconditioner.None),
            };
            Assert.Equal(cont.Steps, Nqm.StepsToTarget(s, opt, b, 0.01, cont.Cap));
        }
        Assert.True(better >= 1, "continuous search never improved on the grid");
    }
}
