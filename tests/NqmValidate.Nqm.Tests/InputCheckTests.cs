using NqmValidate.Nqm;

namespace NqmValidate.Nqm.Tests;

/// <summary>#14 defect 5: inputs the NQM engine used to accept silently.</summary>
public class InputCheckTests
{
    [Fact]
    public void ASpectrumRowWithNegativeCurvatureIsRejectedNotTreatedAsFlat()
    {
        var e = Assert.Throws<SpectrumFormatException>(() => SpectrumCsv.Read(new StringReader("h,c,count\n1,1,10\n-0.5,1,10\n"), "s.csv"));
        Assert.Contains("h = -0.5 must be >= 0", e.Message);
        Assert.StartsWith("s.csv", e.Message);
        // h = 0 (a flat direction) stays allowed.
        Assert.Equal(2, SpectrumCsv.Read(new StringReader("h,c,count\n1,1,10\n0,1,10\n"), "s.csv").Rows.Length);
    }

    [Fact]
    public void TheScalingFitRefusesARepeatedBatchSize()
    {
        // Two distinct points repeated would pass a three-point minimum and fit with R² = 1.
        var e = Assert.Throws<NqmArgumentException>(() => ScalingCurve.Fit([16, 64, 64], [1000, 300, 300]));
        Assert.Contains("batch size 64 appears 2 times", e.Message);
        Assert.Equal(3, ScalingCurve.Fit([16, 64, 256], [1000, 300, 150]).Points);
    }

    [Theory]
    [InlineData("4,16,4")]
    [InlineData("4..16:x2,8")]
    public void RepeatedSimulateBatchSizesAreRefused(string text) =>
        Assert.Contains("repeated", Assert.Throws<NqmArgumentException>(() => Simulation.ParseBatchSizes(text)).Message);

    [Fact]
    public void ABatchSizeRangeThatNeverEndsIsRefused() =>
        Assert.Contains("more than 10000", Assert.Throws<NqmArgumentException>(() => Simulation.ParseBatchSizes("1..1e9:+1e-9")).Message);
}
