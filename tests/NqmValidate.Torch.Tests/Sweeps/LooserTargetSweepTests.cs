using NqmValidate.Common;
using NqmValidate.Formats;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// steps-by-target.csv over the synthetic trial (<see cref="SyntheticTrialRunner.LooserCrossing"/>): the study's fewest
/// steps at each looser target equal the brute-force minimum over every planned trial, with pruning as without it,
/// whatever the number of jobs; a spec that names looser targets badly is refused with the field named.
/// </summary>
public class LooserTargetSweepTests
{
    static ExperimentSpec Spec(int jobs = 3, bool prune = true, int seeds = 1) => SweepTestKit.SmallSpec(s => s with
    {
        Workload = s.Workload! with { Target = s.Workload.Target! with { Looser = [1.5, 2.5] } },
        Jobs = jobs, Prune = prune, Seeds = seeds,
    });

    static async Task<string> Run(ExperimentSpec spec, string name)
    {
        string dir = SweepTestKit.TempDir(name);
        var summary = await new SweepRunner(new SyntheticTrialRunner()).RunAsync(new SweepOptions(spec, dir, Shard.All));
        Assert.True(summary.Complete);
        return dir;
    }

    [Fact]
    public async Task EachTargetsStepsAreTheFewestOverAllTrialsAndPruningDoesNotChangeThem()
    {
        var spec = Spec();
        string pruned = await Run(spec, "looser-pruned"), full = await Run(Spec(prune: false), "looser-full"),
            oneJob = await Run(Spec(jobs: 1), "looser-onejob");
        string text = SweepTestKit.Read(pruned, TargetStepsFile.FileName);
        Assert.Equal(text, SweepTestKit.Read(oneJob, TargetStepsFile.FileName));
        // Without pruning more trials reach (they run on), but no study's steps at any target move.
        static IEnumerable<string> Steps(string dir) => TargetStepsFile.Read(Path.Combine(dir, TargetStepsFile.FileName))
            .Select(r => $"{r.Target} {r.Optimizer} {r.BatchSize} {r.StepsToTarget} {r.LearningRate}");
        Assert.Equal(Steps(full), Steps(pruned));

        var rows = TargetStepsFile.Read(Path.Combine(pruned, TargetStepsFile.FileName));
        // Loosest first, the study's own target last: 3 targets × 2 optimizers × 3 batch sizes.
        Assert.Equal([2.5, 1.5, 1.0], rows.Select(r => r.Target).Distinct());
        Assert.Equal(18, rows.Count);
        var plan = SweepPlan.Create(spec);
        var steps = StepsFile.Read(Path.Combine(pruned, StepsFile.FileName)).Rows;
        foreach (var row in rows)
        {
            var study = plan.Studies.Single(s => s.Optimizer == row.Optimizer && s.BatchSize == row.BatchSize);
            if (row.Target == 1.0)
            {
                Assert.Equal(steps.Single(s => s.Optimizer == row.Optimizer && s.BatchSize == row.BatchSize).StepsToTarget, row.StepsToTarget);
                continue;
            }
            // The oracle: every planned trial run to the budget, no pruning.
            var crossings = study.Trials.Select(t => SyntheticTrialRunner.LooserCrossing(new TrialRequest(spec, study, t, study.BudgetSteps), row.Target))
                .Where(c => c is not null).ToList();
            Assert.Equal(crossings.Min(), row.StepsToTarget);
            Assert.True(row.StepsToTarget < steps.Single(s => s.Optimizer == row.Optimizer && s.BatchSize == row.BatchSize).StepsToTarget,
                "a looser target is met in fewer steps");
        }
        // Pruning saved steps all the same.
        Assert.True(StepsFile.Read(Path.Combine(pruned, StepsFile.FileName)).Rows.Sum(r => r.StepsTrained) <
                    StepsFile.Read(Path.Combine(full, StepsFile.FileName)).Rows.Sum(r => r.StepsTrained));
    }

    [Fact]
    public async Task WithoutLooserTargetsNoTableIsWrittenAndTrialRecordsCarryNone()
    {
        string dir = await Run(SweepTestKit.SmallSpec(), "looser-none");
        Assert.False(File.Exists(Path.Combine(dir, TargetStepsFile.FileName)));
        string json = File.ReadAllText(Directory.EnumerateFiles(Path.Combine(dir, "trials"), "trial.json", SearchOption.AllDirectories).First());
        Assert.DoesNotContain("looser", json);
    }

    [Theory]
    [InlineData("[0.5]", "above the threshold")]
    [InlineData("[1.5, 1.5]", "duplicates")]
    public void ABadLooserTargetIsRefusedNamingTheField(string looser, string message)
    {
        string json = SweepTestKit.SmallSpecJson.Replace("\"threshold\": 1.0 }", $"\"threshold\": 1.0, \"looser\": {looser} }}");
        var e = Assert.Throws<SpecException>(() => SpecLoader.Parse(json, "test spec"));
        Assert.Contains("workload.target.looser", e.Message);
        Assert.Contains(message, e.Message);
    }
}
