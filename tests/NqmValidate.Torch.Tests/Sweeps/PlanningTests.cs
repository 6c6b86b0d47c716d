using NqmValidate.Training;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Sweeps;

public class SeedsTests
{
    [Fact]
    public void SeedsMatchAnIndependentSha256Computation()
    {
        // Oracle: python3 hashlib.sha256(b"7/study:sgd:b16:r0"), first 8 bytes little-endian, & 0x7fffffff.
        long study = Seeds.StudySeed(7, "sgd", 16, 0);
        Assert.Equal(786446595, study);
        Assert.Equal(1640076884, Seeds.TrialSeed(study, 3));
    }

    [Fact]
    public void SeedsAreDistinctAcrossStudiesAndTrialsAndDependOnTheExperimentSeed()
    {
        var plan = SweepPlan.Create(SweepTestKit.SmallSpec(s => s with { Seeds = 2 }));
        var studySeeds = plan.Studies.Select(s => s.Seed).ToList();
        Assert.Equal(studySeeds.Count, studySeeds.Distinct().Count());
        var trialSeeds = plan.Studies.SelectMany(s => s.Trials.Select(t => t.Seed)).ToList();
        Assert.Equal(trialSeeds.Count, trialSeeds.Distinct().Count());
        Assert.All(trialSeeds, s => Assert.InRange(s, 0, int.MaxValue));
        var other = SweepPlan.Create(SweepTestKit.SmallSpec(s => s with { Seed = 8, Seeds = 2 }));
        Assert.Empty(other.Studies.Select(s => s.Seed).Intersect(studySeeds));
    }

    [Fact]
    public void AStudysSeedsDoNotDependOnWhichOtherStudiesTheSpecHas()
    {
        var full = SweepPlan.Create(SweepTestKit.SmallSpec());
        var fewer = SweepPlan.Create(SweepTestKit.SmallSpec(s => s with { BatchSizes = [64] }));
        var a = full.Studies.Single(s => s.Id == "sgd-b64-r0");
        var b = fewer.Studies.Single(s => s.Id == "sgd-b64-r0");
        Assert.Equal(a.Seed, b.Seed);
        Assert.Equal(a.Trials.Select(t => t.Seed), b.Trials.Select(t => t.Seed));
    }
}

public class SearchSpaceTests
{
    [Fact]
    public void HaltonMatchesTheRadicalInverse()
    {
        Assert.Equal([0.5, 0.25, 0.75, 0.125, 0.625], Enumerable.Range(1, 5).Select(i => SearchSpace.Halton(i, 2)));
        Assert.Equal(1 / 9.0, SearchSpace.Halton(3, 3), 12);
        Assert.Equal(7 / 9.0, SearchSpace.Halton(5, 3), 12);
    }

    [Fact]
    public void AGridIsLogSpacedWithItsEndpoints()
    {
        var space = new SearchSpace(SweepTestKit.SmallSpec().Optimizers![0]);
        var lrs = space.Points().Select(p => p.Point.LearningRate).ToList();
        Assert.Equal(7, lrs.Count);
        Assert.Equal(0.005, lrs[0], 12);
        Assert.Equal(5.0, lrs[^1], 12);
        for (int i = 1; i < lrs.Count; i++) Assert.Equal(Math.Pow(10, 0.5), lrs[i] / lrs[i - 1], 9);
    }

    [Fact]
    public void MomentumIsSearchedAsOneMinusBetaOnALogScaleInsideItsRange()
    {
        var space = new SearchSpace(SweepTestKit.SmallSpec().Optimizers![1]);
        var points = space.Points();
        Assert.Equal(8, points.Count);
        Assert.All(points, p => Assert.InRange(1 - p.Point["momentum"]!.Value, 0.01, 0.5));
        // Halton index 1 in base 3 = 1/3 of the log range of 1 − β.
        Assert.Equal(Math.Exp(Math.Log(0.01) + (Math.Log(0.5) - Math.Log(0.01)) / 3), 1 - points[0].Point["momentum"]!.Value, 9);
    }

    [Fact]
    public void AdamLeavesUnsearchedHyperparametersToTheFamilyDefaultsAndKeepsFixedOnes()
    {
        var adam = SpecLoader.Parse(SweepTestKit.SmallSpecJson.Replace(
            "\"name\": \"sgd\", \"learning_rate\"", "\"name\": \"adam\", \"beta2\": 0.99, \"learning_rate\""), "test").Optimizers![0];
        var p = new SearchSpace(adam).Points()[0].Point;
        Assert.Null(p["beta1"]);
        Assert.Null(p["epsilon"]);
        Assert.Equal(0.99, p["beta2"]);
        var resolved = OptimizerFamilies.Resolve(new OptimizerSpec { Name = "adam", LearningRate = p.LearningRate, Hyperparameters = p.Hyperparameters }, 10);
        Assert.Equal((0.9, 0.99, 1e-8), (resolved["beta1"], resolved["beta2"], resolved["epsilon"]));
    }
}

public class OrderingAndPruningTests
{
    static TrialLog Log(TrialStatus status, long? steps, long run) => new(new TrialRecord
    {
        Status = status, StepsToTarget = steps, StepsRun = run,
        Config = new TrialConfig { Target = new Target(TargetMetric.TrainLoss, 1) }, Versions = VersionInfo.Current(),
    }, []);
    static TrialLog Reached(long s) => Log(TrialStatus.Reached, s, s);
    static TrialLog Exhausted(long run) => Log(TrialStatus.BudgetExhausted, null, run);

    [Fact]
    public void ALaterStudyStartsNearTheLinearlyScaledOptimumOfThePreviousOne()
    {
        var spec = SweepTestKit.SmallSpec();
        var plan = SweepPlan.Create(spec);
        var chain = plan.Chains.Single(c => c.Optimizer == "sgd");
        var space = new SearchSpace(spec.Optimizers![0]);
        var b16 = chain.Studies[0];
        // Pretend lr = 0.05 (grid point 2) was best at B = 16.
        var logs = b16.Trials.ToDictionary(t => t.Id, t => t.Index == 2 ? Reached(100) : Exhausted(100));
        var result = StudyResults.Compute(b16, b16.Trials, logs, prune: true);
        Assert.Equal(0.05, result.Best!.Trial.Point.LearningRate, 9);
        var b64 = chain.Studies[1];
        var predicted = TrialOrdering.Predict(b64, space, result, null);
        var order = TrialOrdering.Order(b64, predicted, "predicted");
        // 0.05 × 64/16 = 0.2: between grid points 0.158 and 0.5, nearest 0.158 (index 3), then 0.5 (index 4).
        Assert.Equal([3, 4], order.Take(2).Select(t => t.Index));
    }

    [Fact]
    public void TruncationCountsATrialThatReachesOnlyAfterAnEarlierBestAsPruned()
    {
        var study = SweepPlan.Create(SweepTestKit.SmallSpec()).Studies.First();
        var order = study.Trials;
        var logs = new Dictionary<string, TrialLog>();
        long[] steps = [500, 300, 400, 300, 200, 0, 0];
        for (int i = 0; i < order.Count; i++)
            logs[order[i].Id] = i < 5 ? Reached(steps[i]) : Log(TrialStatus.Diverged, null, i == 5 ? 150 : 250);
        var r = StudyResults.Compute(study, order, logs, prune: true);
        Assert.Equal(
            // Trial 3 reaches exactly at its cap (300): a tie, counted as reached.
            [StudyTrialStatus.Reached, StudyTrialStatus.Reached, StudyTrialStatus.Pruned, StudyTrialStatus.Reached, StudyTrialStatus.Reached,
             StudyTrialStatus.Diverged, StudyTrialStatus.Pruned],
            r.Trials.Select(t => t.Status));
        Assert.Equal(200, r.StepsToTarget);
        Assert.Equal(order[4], r.Best!.Trial);
        Assert.Equal([4000, 500, 300, 300, 300, 200, 200], r.Trials.Select(t => t.StepCap));
        // Without pruning every trial counts as it ended; the minimum is the same.
        var all = StudyResults.Compute(study, order, logs, prune: false);
        Assert.Equal(200, all.StepsToTarget);
        Assert.Equal(5, all.Count(StudyTrialStatus.Reached));
    }

    [Fact]
    public void ATieResolvesToTheSmallestCanonicalIndexInAnyRunOrder()
    {
        var study = SweepPlan.Create(SweepTestKit.SmallSpec()).Studies.First();
        var logs = new Dictionary<string, TrialLog>();
        long[] steps = [500, 200, 400, 200, 300, 200, 600];
        for (int i = 0; i < study.Trials.Count; i++) logs[study.Trials[i].Id] = Reached(steps[i]);
        foreach (var order in new[] { study.Trials, study.Trials.Reverse().ToList(), study.Trials.OrderBy(t => (t.Index * 5) % 7).ToList() })
            foreach (bool prune in new[] { true, false })
            {
                var r = StudyResults.Compute(study, order, logs, prune);
                Assert.Equal(200, r.StepsToTarget);
                Assert.Equal(study.Trials[1], r.Best!.Trial);
            }
    }

    [Fact]
    public void TheLaunchCapIsNeverBelowTheFinalCap()
    {
        var study = SweepPlan.Create(SweepTestKit.SmallSpec()).Studies.First();
        var order = study.Trials;
        var full = new Dictionary<string, TrialLog>();
        var rng = new Random(3);
        foreach (var t in order) full[t.Id] = rng.Next(3) == 0 ? Exhausted(4000) : Reached(rng.Next(1, 40) * 100);
        var final = StudyResults.Compute(study, order, full, prune: true);
        // Any subset of finished trials gives a launch cap >= the final cap.
        for (int trial = 0; trial < 200; trial++)
        {
            var subset = full.Where(_ => rng.Next(2) == 0).ToDictionary(kv => kv.Key, kv => kv.Value);
            for (int rank = 0; rank < order.Count; rank++)
                Assert.True(StudyResults.LaunchCap(study, order, rank, subset, true) >= final.Trials[rank].StepCap);
        }
    }
}
