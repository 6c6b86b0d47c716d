using NqmValidate.Nqm;
using Xunit.Abstractions;

namespace NqmValidate.Nqm.Tests;

/// <summary>Exact steps-to-target (smallest k with E L(k) &lt; target) against brute-force stepping, including non-monotone curves.</summary>
public class StepsToTargetTests(ITestOutputHelper output)
{
    const int Horizon = 20000;

    static long? BruteForce(double[] curve, double target)
    {
        for (int k = 0; k < curve.Length; k++) if (curve[k] < target) return k;
        return null;
    }

    /// <summary>A target that no curve value is within 1e-7 (relative) of, so rounding cannot decide the answer.</summary>
    static double SafeTarget(double[] curve, double candidate)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            double lo = candidate * (1 - 1e-7), hi = candidate * (1 + 1e-7);
            if (!curve.Any(v => v > lo && v < hi)) return candidate;
            candidate *= 1 + 3e-7;
        }
        return candidate;
    }

    [Fact]
    public void MatchesBruteForceOnRandomConfigurationsIncludingOscillatingOnes()
    {
        var rng = new Random(7);
        int nonMonotoneCrossings = 0, cases = 0;
        for (int t = 0; t < 60; t++)
        {
            int rows = 1 + rng.Next(4);
            var list = new List<SpectrumRow>();
            for (int i = 0; i < rows; i++)
            {
                double h = Math.Pow(10, -2 * rng.NextDouble());
                list.Add(new SpectrumRow(h, h * 1e-3 * rng.NextDouble(), 1 + rng.NextDouble(), 1 + rng.Next(5)));
            }
            var s = new Spectrum(list);
            double hmax = list.Max(r => r.H);
            NqmOptimizer opt = (t % 3) switch
            {
                0 => new Sgd(1.9 * rng.NextDouble() / hmax),
                1 => new Momentum(rng.NextDouble() * 1.5 / hmax, 0.5 + 0.49 * rng.NextDouble(), Preconditioner.None),
                _ => new Ema(1.9 * rng.NextDouble() / hmax, 0.9 + 0.099 * rng.NextDouble(), Preconditioner.None),
            };
            double batch = Math.Pow(2, rng.Next(0, 8));
            var curve = DirectStepping.CurveDouble(s, opt, batch, Horizon);
            for (int pick = 0; pick < 4; pick++)
            {
                int k0 = rng.Next(1, 3000);
                double target = SafeTarget(curve, curve[k0] * (1 + (rng.NextDouble() - 0.5) * 1e-2));
                long? expected = BruteForce(curve, target);
                long? got = Nqm.StepsToTarget(s, opt, batch, target, Horizon);
                Assert.True(expected == got, $"case {t} {opt} B={batch} target={target:R}: brute force {expected}, engine {got}");
                cases++;
                if (expected is { } e && e > 0 && curve.Skip((int)e).Any(v => v >= target)) nonMonotoneCrossings++;
            }
        }
        output.WriteLine($"{cases} cases, {nonMonotoneCrossings} where the loss rises above target again after the first crossing");
        Assert.True(nonMonotoneCrossings >= 10, $"only {nonMonotoneCrossings} non-monotone cases exercised");
    }

    /// <summary>
    /// Noise-dominated curves: the loss first falls, then rises as the noise builds up (SGD rows whose stationary value
    /// is above or below their start, so rising and falling rows mix; momentum and EMA near 1). The targets sit near
    /// the curve's minimum, where a bound that is too tight on either side (the monotone SGD row bound, the geometric
    /// split of wide intervals) would skip the only crossings.
    /// </summary>
    [Fact]
    public void MatchesBruteForceOnNoiseDominatedCurves()
    {
        var rng = new Random(11);
        int cases = 0, reached = 0, rising = 0;
        for (int t = 0; t < 60; t++)
        {
            int rows = 2 + rng.Next(5);
            var list = new List<SpectrumRow>();
            for (int i = 0; i < rows; i++)
            {
                double h = Math.Pow(10, -3 * rng.NextDouble());
                list.Add(new SpectrumRow(h, h * Math.Pow(10, 2 * rng.NextDouble() - 0.5), Math.Pow(10, 2 * rng.NextDouble() - 1.5), 1 + rng.Next(5)));
            }
            var s = new Spectrum(list);
            double hmax = list.Max(r => r.H);
            NqmOptimizer opt = (t % 3) switch
            {
                0 => new Sgd((0.05 + 1.8 * rng.NextDouble()) / hmax),
                1 => new Momentum(rng.NextDouble() * 0.2 / hmax, 0.9 + 0.099 * rng.NextDouble(), Preconditioner.None),
                _ => new Ema((0.05 + 1.8 * rng.NextDouble()) / hmax, 0.99 + 0.0099 * rng.NextDouble(), Preconditioner.None),
            };
            double batch = Math.Pow(2, rng.Next(0, 6));
            var curve = DirectStepping.CurveDouble(s, opt, batch, Horizon);
            int kmin = Array.IndexOf(curve, curve.Min());
            if (kmin > 0 && curve[^1] > curve[kmin] * 1.01) rising++;
            foreach (double f in new[] { 0.999, 1.0001, 1.001, 1.01, 1.1 })
            {
                double target = SafeTarget(curve, curve[kmin] * f);
                long? expected = BruteForce(curve, target);
                long? got = Nqm.StepsToTarget(s, opt, batch, target, Horizon);
                Assert.True(expected == got, $"case {t} {opt} B={batch} target={target:R}: brute force {expected}, engine {got}");
                cases++;
                if (expected is not null) reached++;
            }
        }
        output.WriteLine($"{cases} cases ({reached} reached), {rising} curves that rise again after their minimum");
        Assert.True(rising >= 15, $"only {rising} rising curves exercised");
    }

    /// <summary>A strongly oscillating momentum curve: an earlier dip below target must be found even though bisection would miss it.</summary>
    [Fact]
    public void FindsAnEarlyDipThatBisectionMisses()
    {
        var s = new Spectrum([new SpectrumRow(1.0, 1e-6, 1.0, 1), new SpectrumRow(0.001, 1e-9, 1.0, 1)]);
        var opt = new Momentum(1.0, 0.95, Preconditioner.None);
        var curve = DirectStepping.CurveDouble(s, opt, 1, Horizon);
        // Find a local minimum of the oscillation, then a target just above it.
        int kmin = Enumerable.Range(2, 200).First(k => curve[k] < curve[k - 1] && curve[k] < curve[k + 1] && curve.Skip(k + 1).Take(3).Any(v => v > curve[k]));
        double target = SafeTarget(curve, curve[kmin] * 1.0001);
        long? expected = BruteForce(curve, target);
        Assert.Equal(expected, Nqm.StepsToTarget(s, opt, 1, target, Horizon));
        // The notebook's bisection (L(mid) < C → high = mid) over [0, Horizon] lands on a later crossing here.
        long low = 0, high = Horizon;
        while (low < high - 1) { long mid = (low + high) / 2; if (curve[mid] < target) high = mid; else low = mid; }
        output.WriteLine($"first crossing {expected}, bisection's {high}");
        Assert.NotEqual(expected, high);
    }

    [Fact]
    public void UnreachableAndUnstableReturnNull()
    {
        var s = Spectrum.PaperPowerLaw(1000, 1, 20);
        Assert.Null(Nqm.StepsToTarget(s, new Sgd(1.0), 1, 1e-6, 1_000_000)); // noise floor above target
        Assert.Null(Nqm.StepsToTarget(s, new Sgd(2.5), 1 << 20, 0.1));       // x > 2 in the top row: diverges
        Assert.Equal(0, Nqm.StepsToTarget(s, new Sgd(0.1), 1, 100));          // already below target
    }
}
