using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// K-FAC's NQM counterparts as the fit sees them: precond-p1-d{λ} (heavy ball on P = 1/(h + λ)) and precond-p1 (P = 1/h)
/// predict, the edge-of-stability-aware search included, and they differ from each other.
/// </summary>
public class KfacCounterpartTests
{
    [Fact]
    public void DampedAndIdealPreconditionedHeavyBallPredictEveryBatchSize()
    {
        using var run = new ValidatorTests();
        var (sweep, curvature) = run.WriteRun();
        var counterparts = new Dictionary<string, IReadOnlyList<string>> { ["sgd"] = ["precond-p1-d0.1", "precond-p1"] };
        var options = new FitOptions { Sensitivity = false, EosMargin = 0.9, EdgeOfStability = false };
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.LoadWithSiblings(curvature), 0.5, options, counterparts));
        var damped = result.Predictions.Where(p => p.NqmOptimizer == "precond-p1-d0.1" && p.Variant == "eigen/measured-c").OrderBy(p => p.BatchSize).ToList();
        var ideal = result.Predictions.Where(p => p.NqmOptimizer == "precond-p1" && p.Variant == "eigen/measured-c").OrderBy(p => p.BatchSize).ToList();
        Assert.Equal(5, damped.Count);
        Assert.Equal(5, ideal.Count);
        Assert.All(damped.Concat(ideal), p => Assert.True(p.StepsZeroShot is > 0 && double.IsFinite(p.StepsZeroShot.Value), $"{p.NqmOptimizer} B={p.BatchSize}: {p.StepsZeroShot}"));
        // λ = 0.1 is not negligible against this spectrum (bulk h from 5 down to 1e-4): the two predictions differ.
        Assert.Contains(damped.Zip(ideal), t => t.First.StepsZeroShot != t.Second.StepsZeroShot);
    }
}
