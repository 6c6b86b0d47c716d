using NqmValidate.Nqm;
using NqmValidate.Reports;

namespace NqmValidate.Nqm.Tests;

public class SimulationTests
{
    [Fact]
    public void BatchSizeRangesParse()
    {
        Assert.Equal(Enumerable.Range(0, 10).Select(j => Math.Pow(2, 2 + 2 * j)), Simulation.ParseBatchSizes("2^2..2^20:x4"));
        Assert.Equal(new double[] { 4, 16, 100 }, Simulation.ParseBatchSizes("4, 2^4,100"));
        Assert.Equal(new double[] { 10, 20, 30 }, Simulation.ParseBatchSizes("10..30:+10"));
        Assert.Throws<NqmArgumentException>(() => Simulation.ParseBatchSizes("4..64"));
        Assert.Throws<NqmArgumentException>(() => Simulation.ParseBatchSizes("4..64:x1"));
        Assert.Throws<NqmArgumentException>(() => Simulation.ParseBatchSizes("abc"));
        var e = Assert.Throws<NqmArgumentException>(() => Simulation.ParseOptimizers("sgd,adam"));
        Assert.Contains("adam", e.Message); Assert.Contains("momentum", e.Message);
    }

    [Fact]
    public void RunProducesOneRowPerPointAndAFitPerCurve()
    {
        var s = Spectrum.PaperPowerLaw(1000, 1, 30);
        var r = Simulation.Run(new SimulationRequest(s, 0.01, [OptimizerKind.Sgd, OptimizerKind.Ema], [0, 0.5], Simulation.ParseBatchSizes("2^2..2^14:x4")));
        Assert.Equal(2 * 2 * 7, r.Rows.Count);
        Assert.Equal(4, r.Fits.Count);
        foreach (var row in r.Rows)
        {
            var direct = HyperparameterSearch.Optimize(s, row.Optimizer, row.BatchSize, 0.01, new SearchOptions { Preconditioner = Preconditioner.FromPower(row.PrecondPower) });
            Assert.Equal(direct.Steps, row.Steps);
            Assert.Equal(Nqm.LowerBound(s, row.BatchSize, 0.01), row.LowerBound);
        }
        Assert.All(r.Fits, f => Assert.True(f.Fit!.RSquaredLog > 0.9));
    }

    [Fact]
    public void StepsCsvHasExactlyTheDocumentedColumns()
    {
        string dir = Path.Combine(Path.GetTempPath(), "nqm-steps-" + Guid.NewGuid().ToString("N"));
        try
        {
            string path = Path.Combine(dir, "steps.csv");
            NqmStepsCsv.Write(path, [new NqmStepsRecord("sgd", 0, 4, 1507368, 0.0146, 0, 0, 0.0146, 125000), new NqmStepsRecord("momentum", 0.5, 16, null, 0.1, 0.9, 0, 1.0, 31250)]);
            var lines = File.ReadAllLines(path);
            Assert.Equal("optimizer,precond_power,batch_size,steps,learning_rate,momentum,decay,effective_learning_rate,lower_bound", lines[0]);
            Assert.Equal("sgd,0,4,1507368,0.0146,0,0,0.0146,125000", lines[1]);
            Assert.Equal("momentum,0.5,16,,0.1,0.9,0,1,31250", lines[2]);
            Assert.Empty(Directory.GetFiles(dir, "*.tmp*"));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
