using System.Globalization;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// The piecewise variant: a trajectory's checkpoints cut the run into pieces, each predicted on the spectrum measured
/// at its start, with one set of hyperparameters for the whole run.
/// </summary>
public class PiecewiseVariantTests
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    const double TargetLoss = 0.5, CutLoss = 1.0, Sharpening = 16;

    /// <summary>
    /// The synthetic run (ValidatorTests) with an SGD trajectory: its start (the initialisation's spectrum) and a
    /// checkpoint at loss 1.0 whose eigenvalues are all 16× sharper. The pieces must be cut where the losses say, with
    /// the floor of the plain eigen fit; the second piece's spectrum must bound the learning rate of the whole run
    /// (which the plain eigen variant, blind to the sharpening, exceeds at the largest batch size); and only the combo
    /// at the trajectory's start has the variant.
    /// </summary>
    [Fact]
    public void PiecesAreCutAtTheMeasuredLossesAndTheSharperLaterSpectrumBoundsTheWholeRunsLearningRate()
    {
        using var host = new ValidatorTests();
        var (sweep, curvature) = host.WriteRun();
        string trajectory = Path.Combine(Path.GetDirectoryName(curvature)!, "trajectories", "sgd-b16-r0");
        string start = Path.Combine(trajectory, "init"), cut = Path.Combine(trajectory, "loss-1");
        Directory.CreateDirectory(start); Directory.CreateDirectory(cut);
        foreach (var file in new[] { "spectrum.csv", "eigen.csv", "density.csv", "summary.json" })
            File.Copy(Path.Combine(curvature, file), Path.Combine(start, file));
        File.Copy(Path.Combine(curvature, "spectrum.csv"), Path.Combine(cut, "spectrum.csv"));
        foreach (var file in new[] { "eigen.csv", "density.csv" })
        {
            // Column 3 of eigen.csv and column 2 of density.csv are the eigenvalues.
            int column = file == "eigen.csv" ? 2 : 1;
            var lines = File.ReadAllLines(Path.Combine(curvature, file));
            File.WriteAllLines(Path.Combine(cut, file), lines.Take(1).Concat(lines.Skip(1).Select(l =>
            {
                var cells = l.Split(',');
                cells[column] = (Sharpening * double.Parse(cells[column], Inv)).ToString("R", Inv);
                return string.Join(',', cells);
            })));
        }
        File.WriteAllText(Path.Combine(cut, "summary.json"), File.ReadAllText(Path.Combine(curvature, "summary.json"))
            .Replace("\"checkpoint\": \"init\"", "\"checkpoint\": \"loss-1 (step 40)\"").Replace("\"initial_loss\": 2.3", $"\"initial_loss\": {CutLoss.ToString("R", Inv)}"));
        var checkpoints = new[]
        {
            CurvatureResults.Load(curvature),
            CurvatureResults.Load(start) with { Name = "sgd-b16-r0/init" },
            CurvatureResults.Load(cut) with { Name = "sgd-b16-r0/loss-1" },
        };
        ValidationResult Run(string checkpoint) => Validator.Run(new ValidationInputs(SweepResults.Load(sweep), checkpoints, TargetLoss,
            new FitOptions { Sensitivity = false, EosMargin = 0, EdgeOfStability = false, Checkpoint = checkpoint }, ValidatorTests.Counterparts));

        var result = Run("sgd-b16-r0/init");
        var eigen = result.Fit.Variants.Single(v => v.Name == "eigen/measured-c");
        var piecewise = result.Fit.Variants.Single(v => v.Name == "piecewise/measured-c");
        Assert.Null(piecewise.Problem);
        var pieces = piecewise.Pieces!;
        Assert.Equal(["sgd-b16-r0/init", "sgd-b16-r0/loss-1"], pieces.Select(p => p.Checkpoint));
        Assert.Equal(eigen.InitialExcess, pieces[0].StartExcess, 12);
        Assert.Equal(CutLoss - eigen.Floor, pieces[0].EndExcess, 12);
        Assert.Equal(pieces[0].EndExcess, pieces[1].StartExcess, 12);
        Assert.Equal(eigen.TargetExcess, pieces[1].EndExcess, 12);
        Assert.Equal(Sharpening * eigen.MaxCurvature, pieces[1].MaxCurvature, 9);
        Assert.Equal(eigen.Floor, piecewise.Floor);

        double edgeOfTheSharperPiece = 2 / pieces[1].MaxCurvature;
        var sgd = result.Predictions.Where(p => p.Variant == "piecewise/measured-c" && p.Optimizer == "sgd").ToList();
        Assert.Equal(5, sgd.Count);
        Assert.All(sgd, p =>
        {
            Assert.True(p.StepsZeroShot is > 0, $"B = {p.BatchSize}: no prediction");
            Assert.True(p.LearningRate < edgeOfTheSharperPiece, $"B = {p.BatchSize}: lr {p.LearningRate} not stable on the second piece (edge {edgeOfTheSharperPiece})");
        });
        var plainAtLargest = result.Predictions.Single(p => p.Variant == "eigen/measured-c" && p.Optimizer == "sgd" && p.BatchSize == 1024);
        Assert.True(plainAtLargest.LearningRate > edgeOfTheSharperPiece, $"the plain variant should not see the sharpening (else this test shows nothing): lr {plainAtLargest.LearningRate}, edge {edgeOfTheSharperPiece}");

        // Any other checkpoint's combo has no piecewise variant.
        Assert.DoesNotContain(Run("init").Predictions, p => p.Variant.StartsWith("piecewise/", StringComparison.Ordinal));
        Assert.DoesNotContain(Run("sgd-b16-r0/loss-1").Predictions, p => p.Variant.StartsWith("piecewise/", StringComparison.Ordinal));
    }
}
