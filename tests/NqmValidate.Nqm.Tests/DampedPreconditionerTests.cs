using NqmValidate.Nqm;

namespace NqmValidate.Nqm.Tests;

/// <summary>
/// The damped preconditioner P = (h + δ)^-p (K-FAC's NQM counterpart at p = 1): its dynamics are those of the same P
/// given per row, and the curvature at which P·h reaches a value inverts P·h.
/// </summary>
public class DampedPreconditionerTests
{
    static readonly double[] H = [20, 3, 0.5, 0.04, 1e-3];

    [Fact]
    public void DampedDynamicsAreThoseOfTheSamePerRowPreconditioner()
    {
        const double damping = 0.3, alpha = 0.4, beta = 0.8, batch = 32;
        var plain = new Spectrum(H.Select(h => new SpectrumRow(h, 2 * h, 1.5, 10)));
        // Oracle: the engine's measured-P path with P = 1/(h + δ) written into each row.
        var rows = new Spectrum(H.Select(h => new SpectrumRow(h, 2 * h, 1.5, 10, 1 / (h + damping))));
        var damped = new Momentum(alpha, beta, Preconditioner.Damped(1, damping));
        var perRow = new Momentum(alpha, beta, Preconditioner.FromSpectrum);
        foreach (long k in new long[] { 0, 1, 7, 100, 5000 })
            Assert.Equal(Nqm.ExpectedLoss(rows, perRow, batch, k), Nqm.ExpectedLoss(plain, damped, batch, k), 12);
        // And not the undamped ideal preconditioner.
        Assert.NotEqual(Nqm.ExpectedLoss(plain, new Momentum(alpha, beta, Preconditioner.FromPower(1)), batch, 100),
            Nqm.ExpectedLoss(plain, damped, batch, 100), 6);
    }

    [Theory]
    [InlineData(1.0, 0.3, 0.5)]
    [InlineData(1.0, 0.3, 0.999)]
    [InlineData(0.5, 0.1, 2.0)]
    [InlineData(0.5, 0.1, 1e-3)]
    [InlineData(0.0, 0.1, 7.0)]
    public void CurvatureAtInvertsPh(double power, double damping, double ph)
    {
        var p = Preconditioner.Damped(power, damping);
        double h = p.CurvatureAt(ph);
        Assert.Equal(ph, p.For(new SpectrumRow(h, 0, 0, 1)) * h, 9);
    }

    [Fact]
    public void CurvatureAtIsInfiniteWhereDampedPhCannotReachAndTheUndampedLawIsUnchanged()
    {
        Assert.Equal(double.PositiveInfinity, Preconditioner.Damped(1, 0.3).CurvatureAt(1.0));
        Assert.Equal(Math.Pow(1.7, 1 / (1 - 0.5)), Preconditioner.FromPower(0.5).CurvatureAt(1.7)); // the former closed form, bit for bit
        Assert.Throws<NqmArgumentException>(() => Preconditioner.Damped(1, 0));
        Assert.Equal("(h+0.3)^-1", Preconditioner.Damped(1, 0.3).ToString());
    }
}
