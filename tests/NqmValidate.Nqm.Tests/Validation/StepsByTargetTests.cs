using NqmValidate.Formats;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>The validation's reading of steps-by-target.csv: one measured S(B) curve per target and optimizer, which verdict (i) judges.</summary>
public class StepsByTargetTests
{
    [Fact]
    public void ASweepWithLooserTargetsGivesOneCurvePerTargetLoosestFirstAndOneWithoutGivesNone()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"nqm-steps-by-target-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        string committed = Path.Combine(CommittedRuns.Run("fmnist-mlp-quick"), "sweep");
        File.Copy(Path.Combine(committed, StepsFile.FileName), Path.Combine(dir, StepsFile.FileName));
        Assert.Empty(SweepResults.Load(dir).CurvesByTarget());

        // S(B) = S_min (1 + B_noise/B) with a larger B_noise and S_min at the tighter target; an unreached study is left out.
        double[] bs = [16, 64, 256, 1024, 4096];
        var rows = new List<TargetStepsRow>();
        foreach (var (target, bNoise, sMin) in new[] { (0.9, 60.0, 40.0), (0.6, 240.0, 100.0) })
        foreach (double b in bs)
        {
            long? steps = target == 0.9 && b == 4096 ? null : (long)Math.Round(sMin * (1 + bNoise / b));
            rows.Add(new TargetStepsRow(target, "sgd", (int)b, steps, 0.1, steps is null ? 0 : 3, steps, steps, steps));
        }
        File.WriteAllText(Path.Combine(dir, TargetStepsFile.FileName), TargetStepsFile.Text(rows));

        var curves = SweepResults.Load(dir).CurvesByTarget();
        var sgd = Assert.Single(curves).Value;
        Assert.Equal([0.9, 0.6], sgd.Select(c => c.TargetLoss));
        Assert.Equal([16.0, 64, 256, 1024], sgd[0].Curve.BatchSizes);
        Assert.Equal(rows.Where(r => r.Target == 0.6).Select(r => (double)r.StepsToTarget!.Value), sgd[1].Curve.Steps);
        Assert.Equal(VerdictOutcome.Holds, VerdictRules.TighterTargetRaisesCriticalBatchSize("sgd", sgd).Outcome);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void TheReportDrawsEachOptimizersCurvesAtEveryTargetWhenTheValidationHoldsThem()
    {
        string run = CommittedRuns.Run("fmnist-mlp-quick");
        string dir = Path.Combine(Path.GetTempPath(), $"nqm-report-by-target-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(run, "validation")).Where(f => f.EndsWith(".csv") || f.EndsWith(".json")))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        File.Delete(Path.Combine(dir, ValidationFileNames.StepsByTarget));
        Assert.DoesNotContain("Steps to target at each target", ValidationReport.Build(dir).ToMarkdown());

        File.Copy(Path.Combine(run, "sweep", TargetStepsFile.FileName), Path.Combine(dir, ValidationFileNames.StepsByTarget));
        string md = ValidationReport.Build(dir).ToMarkdown();
        Assert.Contains("# Steps to target at each target", md);
        foreach (var optimizer in new[] { "sgd", "momentum", "adam", "kfac", "ema" })
            Assert.Contains($"steps-by-target-{optimizer}.png", md);
        Directory.Delete(dir, true);
    }
}
