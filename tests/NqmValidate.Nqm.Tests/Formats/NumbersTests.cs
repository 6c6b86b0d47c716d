using NqmValidate.Reports;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Formats;

public class NumbersTests
{
    [Theory]
    [InlineData(-0.001, "+0.00")] // two format sections wrote "-+0.00" (seen in the full study's report)
    [InlineData(-0.004, "+0.00")]
    [InlineData(-0.006, "-0.01")]
    [InlineData(0.0, "+0.00")]
    [InlineData(0.5, "+0.50")]
    [InlineData(-1.234, "-1.23")]
    public void SignedLog2NeverWritesBothSigns(double value, string expected)
    {
        Assert.Equal(expected, Numbers.Signed(value));
        Assert.Equal(expected, value.ToString(Numbers.SignedFormat, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("", Numbers.Signed((double?)null));
    }

    [Theory]
    [InlineData(1004.2, "1000")] // "G3" wrote "1E+03"
    [InlineData(1730.4, "1730")]
    [InlineData(1735, "1740")]
    [InlineData(999.6, "1000")]
    [InlineData(473.2, "473")]
    [InlineData(0.06891, "0.0689")]
    [InlineData(333_333_333, "3.33E+08")]
    [InlineData(-2500, "-2500")]
    public void ThreeFiguresWithoutAnExponentBelowAMillion(double value, string expected) =>
        Assert.Equal(expected, Numbers.Figures3(value));

    [Fact]
    public void ACriticalBatchSizeAboveAThousandIsWrittenOut()
    {
        var fit = ScalingFitResult.From(sMin: 100, bNoise: 1004.2, r2: 0.99, rmsLog2: 0.05, points: 8, bMin: 16, bMax: 2048);
        Assert.Equal("1000", fit.Label);
    }
}
