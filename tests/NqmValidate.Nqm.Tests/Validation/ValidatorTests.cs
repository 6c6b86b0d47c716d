using System.Globalization;
using NqmValidate.Common;
using NqmValidate.Nqm;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>
/// Fit → predict → compare → report on run files whose "measured" numbers were produced by an NQM: the
/// steps-to-target per batch size and the loss curve of the largest batch size's best SGD trial. The floor
/// and the initial condition's shape are NOT handed to the fit: it must recover them from that one curve,
/// and then the zero-shot prediction must reproduce every other measured point. A second run with every
/// scored point replaced by garbage must give identical predictions (the fit never reads a scored point).
/// </summary>
public class ValidatorTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "nqm-validator-" + Guid.NewGuid().ToString("N")[..8]);
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public void Dispose() { try { if (Environment.GetEnvironmentVariable("NQM_KEEP_TEST_OUTPUT") is null) Directory.Delete(_root, true); } catch (IOException) { } }

    const double InitialLoss = 2.3, TargetLoss = 0.5, TrueFloor = 0.3, TrueExponent = 0.6, Examples = 1e6;
    static readonly int[] BatchSizes = [4, 16, 64, 256, 1024];
    const double D = 10_000;
    // Top eigen-directions (count 1 each) with their noise vᵀΣv and measured initial condition s0 = (gᵀv)²/h².
    static readonly (double H, double Noise, double S0)[] Top = [(20, 10, 0.001), (12, 6, 0.002), (8, 4, 0.004)];
    // Bulk: 30 SLQ nodes log-spaced from 5 down to 1e-4, equal weights; noise c = 2h.
    static readonly double[] BulkH = Enumerable.Range(0, 30).Select(i => 5 * Math.Pow(1e-4 / 5, i / 29.0)).ToArray();
    static readonly double BulkWeight = 1.0 / BulkH.Length;

    /// <summary>The true NQM behind the synthetic run: the eigen variant's bins with s0 from the TRUE floor and exponent.</summary>
    static Spectrum TrueSpectrum()
    {
        double excess = InitialLoss - TrueFloor;
        double topLoss = Top.Sum(t => 0.5 * t.H * t.S0);
        double a = 2 * (excess - topLoss) / BulkH.Sum(h => BulkWeight * D * Math.Pow(h, 1 - TrueExponent));
        return new Spectrum(Top.Select(t => new SpectrumRow(t.H, t.Noise, t.S0, 1))
            .Concat(BulkH.Select(h => new SpectrumRow(h, 2 * h, a * Math.Pow(h, -TrueExponent), BulkWeight * D))));
    }

    static double[] Rates(Spectrum s) => NumpyCompat.Logspace(-5.5, 0, 100).Select(v => v * 2 / s.Rows.Max(r => r.H)).ToArray();

    internal (string sweep, string curvature) WriteRun(Func<int, double, double>? garbleSteps = null)
    {
        string curvature = Path.Combine(_root, "curvature", "init"), sweep = Path.Combine(_root, "sweep");
        Directory.CreateDirectory(curvature); Directory.CreateDirectory(sweep);
        // The diagonal (needed by the loader and the diagonal variants): the bulk nodes as bins.
        File.WriteAllLines(Path.Combine(curvature, "spectrum.csv"),
            ["layer,h,c,count,s0,grad_mean_sq,second_moment", .. BulkH.Select(h => string.Create(Inv, $"total,{h:R},{2 * h:R},{BulkWeight * D:R},1,{1e-6 * h:R},{2 * h:R}")), "fc1,1,1,1,1,0,1"]);
        File.WriteAllLines(Path.Combine(curvature, "eigen.csv"),
            ["operator,index,eigenvalue,noise_variance,mean_grad_projection_sq",
             .. Top.Select((t, i) => string.Create(Inv, $"ggn,{i + 1},{t.H:R},{t.Noise:R},{t.S0 * t.H * t.H + t.Noise / Examples:R}"))]);
        File.WriteAllLines(Path.Combine(curvature, "density.csv"),
            ["operator,eigenvalue,weight", .. BulkH.Select(h => string.Create(Inv, $"ggn,{h:R},{BulkWeight:R}"))]);
        double traceNoise = Top.Sum(t => t.Noise) + BulkH.Sum(h => BulkWeight * D * 2 * h);
        File.WriteAllText(Path.Combine(curvature, "summary.json"),
            "{\"checkpoint\": \"init\", \"examples\": " + Examples.ToString("R", Inv) + ", \"initial_loss\": 2.3, \"parameters\": " + D.ToString("R", Inv) +
            ", \"traces\": {\"noise_variance\": " + traceNoise.ToString("R", Inv) + "}, \"b_simple\": {\"per_example_variance\": {\"b_simple\": 40.0}}}");

        var truth = TrueSpectrum();
        double targetExcess = TargetLoss - TrueFloor;
        var lines = new List<string> { "optimizer,batch_size,steps_to_target,learning_rate,momentum,trials_run,trials_reached,trials_diverged" };
        var trials = new List<string> { "study,optimizer,batch_size,trial,seed,learning_rate,momentum,status,steps_to_target,steps_run,initial_loss,final_loss" };
        foreach (int b in BatchSizes)
        {
            var r = HyperparameterSearch.Optimize(truth, OptimizerKind.Sgd, b, targetExcess, new SearchOptions { Mode = SearchMode.Continuous, LearningRates = Rates(truth) });
            double steps = garbleSteps?.Invoke(b, r.Steps!.Value) ?? r.Steps!.Value;
            lines.Add(string.Create(Inv, $"sgd,{b},{steps:R},{r.LearningRate:R},,5,5,0"));
            trials.Add(string.Create(Inv, $"sgd-b{b}-r0,sgd,{b},t000,1,{r.LearningRate:R},,reached,{steps:R},{steps:R},{InitialLoss},{(garbleSteps is null ? TargetLoss - 0.01 : 7.7)}"));
            if (b == BatchSizes[^1])
            {
                // The best trial's curve: evaluated every ~3% of its steps, stopping at the first evaluation below the target, like a real trial.
                string dir = Path.Combine(sweep, "trials", $"sgd-b{b}-r0", "t000");
                Directory.CreateDirectory(dir);
                var ks = new List<long> { 0 };
                for (long k = 1; k < 10 * r.Steps!.Value; k = Math.Max(k + 1, (long)(k * 1.03))) ks.Add(k);
                var losses = global::NqmValidate.Nqm.Nqm.LossCurve(truth, new Sgd(r.LearningRate), b, ks);
                var rows = new List<string> { "step,examples_seen,train_seconds,minibatch_loss,train_loss,validation_loss,validation_error" };
                for (int j = 0; j < ks.Count; j++)
                {
                    rows.Add(string.Create(Inv, $"{ks[j]},{ks[j] * b},0,,{TrueFloor + losses[j]:R},,"));
                    if (TrueFloor + losses[j] < TargetLoss) break;
                }
                File.WriteAllLines(Path.Combine(dir, "curve.csv"), rows);
            }
        }
        File.WriteAllLines(Path.Combine(sweep, "steps.csv"), lines);
        File.WriteAllLines(Path.Combine(sweep, "trials.csv"), trials);
        return (sweep, curvature);
    }

    static readonly FitOptions Fast = new() { Sensitivity = false, EosMargin = 0, EdgeOfStability = false };

    /// <summary>The optimizer families' NQM counterparts as the CLI hands them in (this project cannot reference Training).</summary>
    internal static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Counterparts = new Dictionary<string, IReadOnlyList<string>>
    {
        ["sgd"] = ["sgd"], ["momentum"] = ["momentum"], ["nesterov"] = ["momentum"], ["adam"] = ["precond-p0.5", "precond-measured"], ["ema"] = ["ema"],
        ["kfac"] = ["precond-p1-d0.1", "precond-p1"],
    };

    [Fact]
    public void TheFamiliesCounterpartsDecideWhichNqmOptimizersPredictAnOptimizer()
    {
        var (sweep, curvature) = WriteRun();
        var withEma = new Dictionary<string, IReadOnlyList<string>> { ["sgd"] = ["sgd", "ema"] };
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.LoadWithSiblings(curvature), TargetLoss, Fast, withEma));
        var ema = result.Predictions.Where(p => p.Optimizer == "sgd" && p.NqmOptimizer == "ema" && p.Variant == "eigen/measured-c").ToList();
        Assert.Equal(BatchSizes.Length, ema.Count);
        Assert.All(ema, p => Assert.True(p.StepsZeroShot is > 0 && double.IsFinite(p.StepsZeroShot.Value), $"B={p.BatchSize}: {p.StepsZeroShot}"));
        // Two NQM optimizers for one measured optimizer: the comparison names which is which.
        Assert.Contains(result.Comparison, c => c.Variant == "eigen/measured-c [ema]");
        Assert.DoesNotContain(Run(sweep, curvature, Fast).Predictions, p => p.NqmOptimizer == "ema");
    }

    [Fact]
    public void FurtherClaimsAreJudgedOnWhatTheStudyMeasuredAndSayWhatIsMissing()
    {
        var (sweep, curvature) = WriteRun();
        var truth = TrueSpectrum();
        // EMA measured beside SGD: its steps at each batch size from the true NQM's EMA optimum.
        var emaRows = BatchSizes.Select(b => HyperparameterSearch.Optimize(truth, OptimizerKind.Ema, b, TargetLoss - TrueFloor, new SearchOptions { LearningRates = Rates(truth) }))
            .Select(r => string.Create(Inv, $"ema,{r.BatchSize},{r.Steps!.Value},{r.LearningRate:R},,5,5,0"));
        File.AppendAllLines(Path.Combine(sweep, "steps.csv"), emaRows);
        // Heavy-ball trials on a learning-rate × momentum grid at the smallest and largest batch size, steps from the true NQM.
        var momentumTrials = from b in new[] { BatchSizes[0], BatchSizes[^1] }
                             from i in Enumerable.Range(0, 12) from beta in new[] { 0.0, 0.5, 0.75, 0.875 }
                             let alpha = Rates(truth)[^1] * Math.Pow(2, -i)
                             let k = global::NqmValidate.Nqm.Nqm.StepsToTarget(truth, new Momentum(alpha, beta, Preconditioner.None), b, TargetLoss - TrueFloor, 1_000_000)
                             select string.Create(Inv, $"momentum-b{b}-r0,momentum,{b},t{i}{beta},1,{alpha:R},{beta:R},{(k is null ? "diverged" : "reached")},{k},{k ?? 10},{InitialLoss},0.4");
        File.AppendAllLines(Path.Combine(sweep, "trials.csv"), momentumTrials);
        var settling = new MeasuredDrift[]
        {
            new("sgd-b4-r0", "sgd", 4, "init", 0, 2.3, 10, 100, 50, 1, 50, null, null, 10),
            new("sgd-b4-r0", "sgd", 4, "loss-1", 500, 1.0, 20, 150, 80, 0.5, 160, 0.2, 0.2, 10),
            new("sgd-b4-r0", "sgd", 4, "loss-0.5", 1500, 0.5, 21, 155, 78, 0.1, 780, 0.7, 0.15, 10),
        };
        var result = Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.LoadWithSiblings(curvature), TargetLoss, Fast, Counterparts) { Drift = settling });
        VerdictRow V(string id) => Assert.Single(result.Verdicts, v => v.Id == id);

        // (f): both batch sizes have matched pairs, measured from the trials and predicted by the fitted NQM at the same (α, β).
        var f = V("f");
        Assert.Matches(@"B=4: \d+ reached at \d momentum value\(s\), \d+ near the optimum, [1-9]\d* matched pair", f.MeasuredEvidence);
        Assert.Matches(@"B=1024: \d+ reached at \d momentum value\(s\), \d+ near the optimum, [1-9]\d* matched pair", f.PredictedEvidence);
        Assert.Contains("the NQM at the (α, β) of the sweep's 48 + 48 heavy-ball trials there, variant eigen/measured-c", f.PredictedEvidence);
        // The "measured" steps are the true NQM's and the fit recovers it: the same verdict, on the same batch sizes' evidence.
        Assert.Equal(f.Measured, f.Predicted);
        Assert.StartsWith(f.MeasuredEvidence[..f.MeasuredEvidence.IndexOf("; B=1024", StringComparison.Ordinal)], f.PredictedEvidence);
        // (g): no kfac in the study: not measured, and the reason names what to add.
        var g = V("g");
        Assert.Equal("inconclusive", g.Measured);
        Assert.StartsWith("not measured: the study has no kfac optimizer; add `{\"name\": \"kfac\"}`", g.MeasuredEvidence);
        // (h): EMA measured, so judged on the measured curves and on the NQM's EMA counterpart's.
        var h = V("h");
        Assert.StartsWith("log2(S_ema/S_sgd) ", h.MeasuredEvidence);
        Assert.StartsWith("log2(S_ema/S_sgd) ", h.PredictedEvidence);
        Assert.Equal("not tallied over recipes", h.Recipes);
        // (i): one target.
        Assert.StartsWith("not measured: the study has one target (train loss 0.5)", V("i").MeasuredEvidence);
        // (k): the drift given, judged on it (measured only).
        var stable = V("k");
        Assert.Equal(("holds", "—"), (stable.Measured, stable.Predicted));
        Assert.StartsWith("(k) sgd-b4-r0:", stable.Claim);
        // The rows come in claim order after (d), (e) last.
        Assert.Equal("abcdfghijk", string.Concat(result.Verdicts.Select(v => v.Id).Where(id => id != "e").Distinct()));
        Assert.Equal("e", result.Verdicts[^1].Id);
    }

    static ValidationResult Run(string sweep, string curvature, FitOptions options) =>
        Validator.Run(new ValidationInputs(SweepResults.Load(sweep), CurvatureResults.LoadWithSiblings(curvature), TargetLoss, options, Counterparts));

    [Fact]
    public void TheBaselinesNoiseScaleComesFromTheOptimizersOwnTrajectoryNearestTheTarget()
    {
        static CurvatureResults At(string dir, double loss, double bSimple, string? name = null) =>
            new(dir, [], [], [], new CurvatureSummary(loss, bSimple, null, 10, null, null, null, null), name);
        var run = new[] { At("/c/init", 2.3, 1), At("/c/warmup-200", 0.9, 2) };
        var sgdAtTarget = At("/c/trajectories/sgd-b16-r0/loss-0.5", 0.49, 30, "sgd-b16-r0/loss-0.5");
        var momentumAtTarget = At("/c/trajectories/momentum-b16-r0/loss-0.5", 0.499, 40, "momentum-b16-r0/loss-0.5");
        var all = run.Append(sgdAtTarget).Append(momentumAtTarget).ToList();
        Assert.Same(sgdAtTarget, McCandlishBaseline.NearestTarget(all, 0.5, "sgd"));
        Assert.Same(momentumAtTarget, McCandlishBaseline.NearestTarget(all, 0.5, "momentum"));
        // An optimizer without a trajectory of its own: the nearest of all (here momentum's, loss 0.499).
        Assert.Same(momentumAtTarget, McCandlishBaseline.NearestTarget(all, 0.5, "adam"));
        Assert.Same(run[1], McCandlishBaseline.NearestTarget(run, 0.5, "sgd"));
        Assert.Equal(30, McCandlishBaseline.For("sgd", McCandlishBaseline.NearestTarget(all, 0.5, "sgd")).BNoise);
    }

    [Fact]
    public void AnOptimumStuckOnOneSearchPointAboveTheCriticalBatchSizeIsNamed()
    {
        static MeasuredRow Row(string o, double b, double lr, double? mu = null) => new(o, b, 100 / b + 10, null, null, lr, mu, 5, 3, 1);
        MeasuredRow[] rows =
        [
            Row("sgd", 16, 0.1), Row("sgd", 64, 0.3), Row("sgd", 256, 1.0), Row("sgd", 1024, 1.0), Row("sgd", 4096, 1.0),
            Row("momentum", 16, 0.01, 0.9), Row("momentum", 256, 0.03, 0.9), Row("momentum", 1024, 0.03, 0.99), Row("momentum", 4096, 0.03, 0.99),
            Row("adam", 16, 1e-3), Row("adam", 256, 1e-3), Row("adam", 1024, 3e-3), Row("adam", 4096, 3e-3),
        ];
        var notes = SearchCoverage.SamePointAtLargeBatchSizes(rows, new Dictionary<string, double?> { ["sgd"] = 200, ["momentum"] = 200, ["adam"] = null });
        // sgd: lr 1.0 at 256, 1024 and 4096 (all ≥ 200). momentum: the momentum moves between 256 and 1024, so the point does.
        // adam: no critical batch size, so the upper half (1024, 4096): 3e-3 at both.
        Assert.Equal(2, notes.Count);
        Assert.Contains(notes, n => n.StartsWith("sgd: the best trial sits on the same search point (learning rate 1) at every batch size from 256 to 4096 (≥ its critical batch size 200)"));
        Assert.Contains(notes, n => n.StartsWith("adam: the best trial sits on the same search point (learning rate 0.003) at every batch size from 1024 to 4096:"));
        Assert.Empty(SearchCoverage.SamePointAtLargeBatchSizes(rows.Where(r => r.BatchSize < 1024).ToList(), new Dictionary<string, double?> { ["sgd"] = 200 }));
    }

    [Fact]
    public void FitRecoversFloorAndInitialConditionFromOneCurveAndPredictsTheRestZeroShot()
    {
        var (sweep, curvature) = WriteRun();
        var result = Run(sweep, curvature, Fast);
        var eigen = result.Fit.Variants.Single(v => v.Name == "eigen/measured-c");
        Assert.Null(eigen.Problem);
        Assert.InRange(eigen.Floor, TrueFloor - 0.01, TrueFloor + 0.01);
        Assert.InRange(TrueFloor, eigen.FloorLow!.Value - 0.002, eigen.FloorHigh!.Value + 0.002);
        Assert.InRange(eigen.BulkExponent!.Value, TrueExponent - 0.1, TrueExponent + 0.1);
        // The measured top directions keep their (gᵀv)²/h² (noise-corrected): their share of the start is the true one.
        double trueTopShare = Top.Sum(t => 0.5 * t.H * t.S0) / (InitialLoss - TrueFloor);
        Assert.InRange(eigen.TopShareOfInitialLoss!.Value, trueTopShare * 0.95, trueTopShare * 1.05);

        var rows = result.Comparison.Where(c => c.Variant == "eigen/measured-c").ToArray();
        Assert.Equal(BatchSizes.Length, rows.Length);
        var report = string.Join("\n", rows.Select(r => $"B={r.BatchSize}: measured {r.MeasuredSteps}, zero-shot {r.ZeroShot}, log2 {r.Log2ZeroShot:F3}"));
        foreach (var row in rows)
            Assert.True(Math.Abs(row.Log2ZeroShot!.Value) < 0.1, report);
        // The fit point is never scored; one-point-smallest excludes the smallest batch size as well.
        Assert.Equal(Calibration.FitPoint, rows.Single(r => r.BatchSize == 1024).Excluded);
        Assert.Equal(Calibration.CalibrationPoint, rows.Single(r => r.BatchSize == 4).Excluded);
        Assert.Equal(BatchSizes.Length - 2, result.Errors.Single(e => e.Variant == "eigen/measured-c" && e.Calibration == "one-point-smallest").Points);
        Assert.Equal(BatchSizes.Length - 1, result.Errors.Single(e => e.Variant == "eigen/measured-c" && e.Calibration == "zero-shot").Points);
        Assert.Equal(BatchSizes.Length - 1, result.Errors.Single(e => e.Variant == "eigen/measured-c" && e.Calibration == "leave-one-out").Points);
        // Baseline: S_min from the same calibration point, B_noise = 40 from summary.json.
        double sMin = rows.Single(r => r.BatchSize == 4).MeasuredSteps!.Value / (1 + 40.0 / 4);
        Assert.Equal(sMin * (1 + 40.0 / 256), rows.Single(r => r.BatchSize == 256).Baseline!.Value, 6);
        Assert.Equal(new Recipe("init", "curve", "measured", "eigen/measured-c", "one-point-smallest"), result.Fit.PrimaryRecipe);
    }

    [Fact]
    public void FitNeverReadsAScoredPoint()
    {
        var (sweep, curvature) = WriteRun();
        var clean = Run(sweep, curvature, Fast);
        Directory.Delete(_root, true);
        // Every scored point (all but the fit point, sgd at the largest batch size) replaced by garbage.
        (sweep, curvature) = WriteRun((b, steps) => b == BatchSizes[^1] ? steps : 7 * steps + 13);
        var garbled = Run(sweep, curvature, Fast);
        Assert.Equal(clean.Predictions.Select(p => (p.Variant, p.Optimizer, p.BatchSize, p.StepsZeroShot, p.LearningRate)),
                     garbled.Predictions.Select(p => (p.Variant, p.Optimizer, p.BatchSize, p.StepsZeroShot, p.LearningRate)));
        Assert.Equal(clean.Fit.Variants, garbled.Fit.Variants);
        // ... while the comparison does see the garbage (the test would pass vacuously otherwise).
        Assert.NotEqual(clean.Comparison.Select(c => c.MeasuredSteps), garbled.Comparison.Select(c => c.MeasuredSteps));
    }

    [Fact]
    public void SensitivityCoversEveryRecipeAndVerdictsCountThem()
    {
        var (sweep, curvature) = WriteRun();
        var result = Run(sweep, curvature, new FitOptions { EdgeOfStability = false });
        // 1 checkpoint × 5 floor policies (curve, its interval's two ends, curve-unweighted, zero) × 2 initial conditions
        // × 5 variants (diagonal ×2, eigen ×2, eigen+eos) × 4 calibrations, one optimizer.
        Assert.Equal(1 * 5 * 2 * 5 * 4, result.Sensitivity.Count);
        Assert.Equal(40, result.Sensitivity.Count(r => r.FloorPolicy == "curve-unweighted"));
        Assert.Single(result.Sensitivity, r => r.Primary);
        var primary = result.Sensitivity.Single(r => r.Primary);
        Assert.Equal(result.Errors.Single(e => e.Variant == "eigen/measured-c" && e.Calibration == "one-point-smallest").MedianAbsLog2, primary.MedianAbsLog2);
        Assert.Contains("of 50 recipes", result.Verdicts.Single(v => v.Id == "a").Recipes);
        // The eos-aware variant's cap is self-consistent with the learning rate it predicts: P·h_cap ≤ 0.9 · 2/α (within the 2% tolerance).
        foreach (var p in result.Predictions.Where(p => p.Variant == "eigen+eos/measured-c" && p.CurvatureCap is not null))
            Assert.True(p.CurvatureCap!.Value * p.LearningRate!.Value <= 0.9 * 2 * 1.03, $"B={p.BatchSize}: cap {p.CurvatureCap} at α {p.LearningRate}");
    }

    [Fact]
    public void ReportIsBuiltFromTheWrittenFilesAlone()
    {
        var (sweep, curvature) = WriteRun();
        string outDir = Path.Combine(_root, "validation");
        var result = Run(sweep, curvature, Fast with { Floor = "zero", InitialCondition = "isotropic", Sensitivity = true });
        Validator.Write(result, outDir);
        Directory.Delete(sweep, true); // the report must not need the inputs
        Directory.Delete(Path.GetDirectoryName(curvature)!, true);
        var doc = ValidationReport.Build(outDir);
        doc.Save(outDir);
        string html = File.ReadAllText(Path.Combine(outDir, "report.html"));
        Assert.Contains("data:image/png;base64,", html);
        Assert.True(html.Split("<table").Length - 1 >= 6, "verdict, headline, error, learning-rate, scaling, comparison and sensitivity tables");
        Assert.True(File.Exists(Path.Combine(outDir, "steps-sgd.png")));
        string md = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("(a) sgd: perfect scaling, then diminishing returns", md);
        Assert.Contains("Sensitivity: every recipe", md);
        Assert.Equal(3, ValidationReport.Summary(outDir).Count);
    }

    [Fact]
    public void MissingCurveNamesTheFileAndTheWayOut()
    {
        var (sweep, curvature) = WriteRun();
        Directory.Delete(Path.Combine(sweep, "trials"), true);
        var e = Assert.Throws<NqmValidate.Reports.RunFileException>(() => Run(sweep, curvature, Fast));
        Assert.Contains("curve.csv", e.Message);
        Assert.Contains("fit.floor", e.Message);
        // With a stated floor and an isotropic start no curve is needed.
        var r = Run(sweep, curvature, Fast with { Floor = "0.3", InitialCondition = "isotropic" });
        Assert.Equal(0.3, r.Fit.Variants.First().Floor);
    }

    [Fact]
    public void MissingColumnNamesTheFileAndTheColumn()
    {
        var (_, curvature) = WriteRun();
        File.WriteAllLines(Path.Combine(curvature, "spectrum.csv"), ["layer,h,count", "total,1,1"]);
        var e = Assert.Throws<NqmValidate.Reports.RunFileException>(() => CurvatureResults.Load(curvature));
        Assert.Contains("spectrum.csv", e.Message);
        Assert.Contains("missing column(s) c", e.Message);
    }

    [Fact]
    public void UnknownOrRemovedFitFieldsAreErrorsThatNameTheReplacement()
    {
        var json = System.Text.Json.JsonDocument.Parse("""{"floor": "zero", "flour": 1}""").RootElement;
        Assert.Contains("flour", Assert.Throws<SpecException>(() => FitOptions.Parse(json, "spec.json")).Message);
        var bad = System.Text.Json.JsonDocument.Parse("""{"search": "random"}""").RootElement;
        Assert.Contains("grid, continuous", Assert.Throws<SpecException>(() => FitOptions.Parse(bad, "spec.json")).Message);
        var minObserved = System.Text.Json.JsonDocument.Parse("""{"floor": "min-observed"}""").RootElement;
        var e = Assert.Throws<SpecException>(() => FitOptions.Parse(minObserved, "spec.json"));
        Assert.Contains("'curve'", e.Message);
        var calOpt = System.Text.Json.JsonDocument.Parse("""{"calibration_optimizer": "sgd"}""").RootElement;
        Assert.Contains("fit.calibration =", Assert.Throws<SpecException>(() => FitOptions.Parse(calOpt, "spec.json")).Message);
        var shortCurve = System.Text.Json.JsonDocument.Parse("""{"fit_curve_extension": 0.5}""").RootElement;
        Assert.Contains("fit.fit_curve_extension = 0.5: must be a number ≥ 1", Assert.Throws<SpecException>(() => FitOptions.Parse(shortCurve, "spec.json")).Message);
        Assert.Equal(4, FitOptions.Parse(null, "spec.json").FitCurveExtension);
    }
}
