using NqmValidate.Nqm;
using Xunit.Abstractions;

namespace NqmValidate.Nqm.Tests;

/// <summary>Every closed form against direct stepping of its recursion (decimal oracle), relative error &lt;= 1e-8, k up to 1e4.</summary>
public class ClosedFormTests(ITestOutputHelper output)
{
    const double Tolerance = 1e-8;
    static readonly long[] Checkpoints = { 0, 1, 2, 3, 5, 10, 37, 100, 1000, 4321, 10000 };

    static Spectrum RandomSpectrum(Random rng, int rows)
    {
        var list = new List<SpectrumRow>();
        for (int i = 0; i < rows; i++)
        {
            double h = Math.Pow(10, -4 * rng.NextDouble());
            list.Add(new SpectrumRow(h, h * Math.Pow(10, 2 * rng.NextDouble() - 1), 0.1 + 2 * rng.NextDouble(), 1 + rng.Next(100)));
        }
        return new Spectrum(list);
    }

    void AssertMatches(Spectrum spectrum, NqmOptimizer opt, double batch, string label)
    {
        var oracle = DirectStepping.Losses(spectrum, opt, batch, Checkpoints);
        var closed = Nqm.LossCurve(spectrum, opt, batch, Checkpoints);
        for (int j = 0; j < Checkpoints.Length; j++)
        {
            double rel = Math.Abs(closed[j] - oracle[j]) / Math.Abs(oracle[j]);
            Assert.True(rel <= Tolerance, $"{label} {opt} B={batch} k={Checkpoints[j]}: closed {closed[j]:R} vs stepping {oracle[j]:R} (rel {rel:E2})");
        }
    }

    static double MaxStableAlpha(Spectrum s, Preconditioner p, double xLimit) =>
        s.Rows.Where(r => r.H > 0).Min(r => xLimit / (p.For(r) * r.H));

    [Fact]
    public void SgdMatchesStepping()
    {
        var rng = new Random(1);
        for (int t = 0; t < 30; t++)
        {
            var s = RandomSpectrum(rng, 5);
            var p = Preconditioner.FromPower(rng.Next(4) * 0.25);
            double alpha = MaxStableAlpha(s, p, 2) * (0.001 + 0.998 * rng.NextDouble());
            AssertMatches(s, new Sgd(alpha, p), Math.Pow(2, rng.Next(0, 20)), $"case {t}");
        }
    }

    [Fact]
    public void MomentumMatchesStepping()
    {
        var rng = new Random(2);
        for (int t = 0; t < 40; t++)
        {
            var s = RandomSpectrum(rng, 5);
            var p = Preconditioner.FromPower(rng.Next(4) * 0.25);
            double beta = 1 - Math.Pow(10, -5 * rng.NextDouble());
            double alpha = MaxStableAlpha(s, p, 2 + 2 * beta) * (0.001 + 0.998 * rng.NextDouble());
            AssertMatches(s, new Momentum(alpha, beta, p), Math.Pow(2, rng.Next(0, 20)), $"case {t}");
        }
    }

    [Fact]
    public void EmaMatchesStepping()
    {
        var rng = new Random(3);
        for (int t = 0; t < 30; t++)
        {
            var s = RandomSpectrum(rng, 5);
            var p = Preconditioner.FromPower(rng.Next(4) * 0.25);
            double gamma = 1 - Math.Pow(10, -4 * rng.NextDouble());
            double alpha = MaxStableAlpha(s, p, 2) * (0.001 + 0.998 * rng.NextDouble());
            AssertMatches(s, new Ema(alpha, gamma, p), Math.Pow(2, rng.Next(0, 20)), $"case {t}");
        }
    }

    /// <summary>
    /// Near-defective momentum: β = (1 − √x)² makes λ1 = λ2 (the 3×3 transition has one triple eigenvalue
    /// family λ1² = λ2² = λ1λ2); also x = (1 + √β)² (repeated negative root) and tiny perturbations either side.
    /// </summary>
    [Theory]
    [InlineData(0.3, 0.0)]
    [InlineData(1e-3, 0.0)]
    [InlineData(1e-6, 0.0)]
    [InlineData(0.3, 1e-13)]
    [InlineData(0.3, -1e-13)]
    [InlineData(1e-4, 1e-10)]
    [InlineData(1e-4, -1e-10)]
    [InlineData(0.05, 1e-7)]
    [InlineData(0.05, -1e-7)]
    public void MomentumNearRepeatedRootsMatchesStepping(double x, double relPerturbation)
    {
        double beta = Math.Pow(1 - Math.Sqrt(x), 2) * (1 + relPerturbation);
        var s = new Spectrum([new SpectrumRow(1.0, 1.0, 1.0, 1), new SpectrumRow(0.01, 0.02, 2.0, 10)]);
        AssertMatches(s, new Momentum(x, beta, Preconditioner.None), 64, "β=(1−√x)²");
        // The negative repeated root: x = (1 + √β)² for the first row.
        double b2 = 0.49 * (1 + relPerturbation);
        double x2 = Math.Pow(1 + Math.Sqrt(0.49), 2);
        AssertMatches(s, new Momentum(x2, b2, Preconditioner.None), 64, "x=(1+√β)²");
        output.WriteLine($"x={x} β={beta:R} ok");
    }

    [Fact]
    public void MomentumWithZeroBetaIsSgdAndEmaWithZeroDecayIsSgd()
    {
        var s = Spectrum.PaperPowerLaw(1000, 1, 30);
        foreach (long k in new long[] { 1, 10, 1000, 100000 })
        {
            double sgd = Nqm.ExpectedLoss(s, new Sgd(0.3), 16, k);
            Assert.Equal(sgd, Nqm.ExpectedLoss(s, new Momentum(0.3, 0, Preconditioner.None), 16, k), sgd * 1e-14);
            Assert.Equal(sgd, Nqm.ExpectedLoss(s, new Ema(0.3, 0, Preconditioner.None), 16, k), sgd * 1e-14);
        }
    }

    [Fact]
    public void LargeKStaysFiniteAndConvergesToTheStationaryLoss()
    {
        var s = Spectrum.PaperPowerLaw();
        foreach (var opt in new NqmOptimizer[] { new Sgd(0.5), new Momentum(0.05, 0.9, Preconditioner.None), new Ema(0.5, 0.99, Preconditioner.None) })
        {
            double l1 = Nqm.ExpectedLoss(s, opt, 256, 1_000_000_000), l2 = Nqm.ExpectedLoss(s, opt, 256, 2_000_000_000);
            Assert.True(double.IsFinite(l1) && l1 > 0, $"{opt}: {l1}");
            Assert.Equal(l1, l2, l1 * 1e-9);
        }
    }
}
