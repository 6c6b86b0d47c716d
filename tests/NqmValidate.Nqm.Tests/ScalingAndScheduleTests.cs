using NqmValidate.Nqm;
using Xunit.Abstractions;

namespace NqmValidate.Nqm.Tests;

public class ScalingAndScheduleTests(ITestOutputHelper output)
{
    [Fact]
    public void ScalingFitRecoversExactCurveAndReportsQuality()
    {
        var bs = Enumerable.Range(0, 10).Select(j => Math.Pow(2, 2 + 2 * j)).ToArray();
        var steps = bs.Select(b => 7000 * (1 + 900 / b)).ToArray();
        var fit = ScalingCurve.Fit(bs, steps);
        Assert.Equal(7000, fit.StepsMin, 7000 * 1e-6);
        Assert.Equal(900, fit.BatchNoise, 900 * 1e-5);
        Assert.True(fit.RSquaredLog > 0.999999);
        // Noisy data: quality drops below 1 and the fit is still close.
        var noisy = steps.Select((v, i) => v * (i % 2 == 0 ? 1.1 : 0.9)).ToArray();
        var f2 = ScalingCurve.Fit(bs, noisy);
        Assert.InRange(f2.RSquaredLog, 0.9, 0.99999);
        Assert.InRange(f2.BatchNoise, 500, 1600);
    }

    [Fact]
    public void PiecewiseConstantAndSmoothSchedulesMatchStepping()
    {
        var s = Spectrum.PaperPowerLaw(500, 1, 20);
        var schedules = new LearningRateSchedule[]
        {
            new PiecewiseConstantSchedule([new(1.5, 10), new(0.5, 300), new(0.05, 2000)]),
            new StepDecaySchedule(1.0, 0.3, 400, 3),
            new LinearDecaySchedule(1.2, 0.01, 1500),
            new CosineSchedule(1.2, 0.0, 1500),
        };
        foreach (var sched in schedules)
        {
            var rows = s.Rows.Where(r => r.H > 0 && r.Count > 0).ToArray();
            var st = rows.Select(r => r.S0).ToArray();
            for (int k = 0; k <= 3000; k++)
            {
                if (k % 250 == 0 || k == 2999)
                {
                    double direct = rows.Select((r, i) => 0.5 * r.H * r.Count * st[i]).Sum();
                    double closed = Nqm.ExpectedLoss(s, new ScheduledSgd(sched, Preconditioner.None), 32, k);
                    Assert.True(Math.Abs(closed - direct) <= 1e-9 * direct, $"{sched} k={k}: {closed} vs {direct}");
                }
                double a = sched.RateAt(k);
                for (int i = 0; i < rows.Length; i++) { double x = a * rows[i].H; st[i] = (1 - x) * (1 - x) * st[i] + a * a * rows[i].C / 32; }
            }
        }
    }

    [Fact]
    public void ScheduleStepsToTargetMatchesBruteForce()
    {
        var s = Spectrum.PaperPowerLaw(500, 1, 20);
        var sched = new ScheduledSgd(new PiecewiseConstantSchedule([new(1.5, 50), new(0.3, 500), new(0.03, 5000)]), Preconditioner.None);
        var curve = Enumerable.Range(0, 6000).Select(k => Nqm.ExpectedLoss(s, sched, 8, k)).ToArray();
        foreach (double target in new[] { curve[30] * 1.001, curve[700] * 0.999, curve[3000] * 1.0001 })
        {
            long? expected = Enumerable.Range(0, curve.Length).Select(k => (long?)k).FirstOrDefault(k => curve[k!.Value] < target);
            Assert.Equal(expected, Nqm.StepsToTarget(s, sched, 8, target, 5999));
        }
    }

    [Fact]
    public void OptimalScheduleBeatsConstantRateAtSmallBatchAndDecays()
    {
        var s = Spectrum.PaperPowerLaw();
        var constant = HyperparameterSearch.Optimize(s, OptimizerKind.Sgd, 16, 0.01);
        var sched = HyperparameterSearch.Optimize(s, OptimizerKind.Schedule, 16, 0.01, new SearchOptions { Pieces = 10 });
        output.WriteLine($"constant {constant.Steps}, 10-piece {sched.Steps}: rates {string.Join(", ", sched.ScheduleRates!.Select(r => r.ToString("G3")))}");
        Assert.True(sched.Steps < constant.Steps);
        Assert.True(sched.ScheduleRates![0] > sched.ScheduleRates[^1] * 3, "the optimised schedule should decay");
        // Its reported schedule really reaches the target at the reported steps (checked by the closed form).
        var pw = PiecewiseConstantSchedule.EqualPieces(sched.ScheduleRates, sched.Steps!.Value / 10);
        Assert.True(Nqm.ExpectedLoss(s, new ScheduledSgd(pw, Preconditioner.None), 16, sched.Steps.Value) < 0.01);
        Assert.True(sched.Steps >= Nqm.LowerBound(s, 16, 0.01));
    }
}
