using NqmValidate.Curvature;
using NqmValidate.Nqm;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Validation;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Validation;

/// <summary>
/// The end-to-end check that measurement, fitting and prediction agree with each other (issue 6):
/// linear regression with independent Gaussian features whose variances follow a power law, and
/// label noise that dominates the gradient noise near the target. There the NQM's assumptions hold
/// by construction (diagonal Hessian h_i = Var x_i, gradient noise ≈ σ²·h, isotropic start), so
/// the NQM fitted to the MEASURED curvature and noise must predict the steps-to-target that real
/// TorchSharp SGD and heavy-ball momentum need, zero-shot, within a factor of 1.5 at every batch size.
/// </summary>
public class SyntheticLinearRegressionTests
{
    const int D = 64;              // features
    const int Replicas = 8;        // independent runs trained side by side; their mean excess loss estimates E L(k)
    // The NQM predicts when the EXPECTED loss crosses the target; the first crossing of a mean of a few noisy runs comes
    // early, most where noise dominates (small B), which biases the measured critical batch size down. Measured on this
    // workload (B_noise of the measured S(B), NQM 297): 206 with 8 replicas, 255 with 32, 286 with 64. The test that
    // scores the critical batch size therefore averages 64 (at most 4,096 / B, at least 4).
    const int ExpectedLossReplicas = 64;
    const double LabelNoise = 1.0; // σ² of y = w*·x + ε
    const double InitialExcess = 0.25, TargetExcess = 0.02;
    static readonly int[] BatchSizes = [4, 16, 64, 256, 1024];
    static readonly double[] Curvatures = Enumerable.Range(1, D).Select(i => 1.0 / i).ToArray();

    [Fact]
    public void FittedNqmPredictsMeasuredStepsWithinFactor1Point5ZeroShot()
    {
        TorchRuntime.Initialize(1);
        var h = tensor(Curvatures, dtype: ScalarType.Float64);
        // w* with equal |w*_i| (random signs): starting at 0 the NQM's isotropic initial condition holds exactly.
        var signs = randint(0, 2, [D], generator: new Generator(11)).to(ScalarType.Float64) * 2 - 1;
        double scale = Math.Sqrt(2 * InitialExcess / Curvatures.Sum());
        var wStar = signs * scale;

        // --- Measured: real TorchSharp SGD / heavy-ball momentum, learning rate (and β) tuned per batch size.
        // Every learning rate of the grid trains at once, as independent rows of one weight matrix (see StepsToTarget).
        // Learning rates from just below the stability edge 2(1 + β)/h_max down by a factor of 2^(1/4) each.
        double[] Rates(double beta) => Enumerable.Range(0, 32).Select(j => 0.95 * 2 * (1 + beta) / Math.Pow(2, j / 4.0)).ToArray();
        var studies = new List<MeasuredStudy>();
        foreach (var (optimizer, betas) in new[] { ("sgd", new[] { 0.0 }), ("momentum", new[] { 0.5, 0.7, 0.9 }) })
            foreach (int b in BatchSizes)
            {
                long best = long.MaxValue; double bestRate = double.NaN, bestBeta = 0;
                foreach (double beta in betas)
                {
                    var (steps, rate) = StepsToTarget(h, wStar, b, Rates(beta), beta, Math.Min(best - 1, 20_000), seed: 1000 * b + (int)(100 * beta));
                    if (steps >= 0 && steps < best) { best = steps; bestRate = rate; bestBeta = beta; }
                }
                Assert.True(best < long.MaxValue, $"{optimizer} B={b}: no learning rate reached the target");
                studies.Add(new MeasuredStudy(optimizer, b, best, bestRate, optimizer == "momentum" ? bestBeta : null,
                    32 * betas.Length, 1, 0, null, null));
            }

        // --- Measured curvature and noise with the curvature stage's code, at a point near the target
        // (after warm-up, as the protocol recommends: early in training the noise also carries 2·L·h).
        var wWarm = wStar + (signs * scale * 0.25);
        var model = nn.Linear(D, 1, hasBias: false, dtype: ScalarType.Float64);
        using (no_grad()) model.weight!.copy_(wWarm.unsqueeze(0));
        var gen = new Generator(7);
        var x = randn([20_000, D], dtype: ScalarType.Float64, generator: gen) * h.sqrt();
        var y = (x.matmul(wStar) + randn([20_000], dtype: ScalarType.Float64, generator: gen) * Math.Sqrt(LabelNoise)).unsqueeze(1);
        var diagonals = Diagonals.Compute(model, x, y, new DiagonalOptions { Loss = LossKind.MeanSquaredError, McSamples = 0, ChunkSize = 4096 });
        var measuredH = diagonals.Flatten(p => p.Ggn);
        var measuredC = diagonals.Flatten(p => p.NoiseVariance);
        var spectrum = NqmValidate.Nqm.Spectrum.FromParameters(measuredH, measuredC, 12);
        var bins = spectrum.Rows.Select(r => new MeasuredBin(r.H, r.C, r.Count, null, null)).ToList();

        // --- Fit + predict + compare with the validation stage, zero-shot (no measured steps used).
        double floor = LabelNoise / 2;
        var sweep = new SweepResults("synthetic", studies,
            studies.Select(s => new MeasuredTrial(s.Optimizer, s.BatchSize, s.LearningRate!.Value, s.Momentum, "reached", s.StepsToTarget, s.StepsToTarget, floor + InitialExcess, null)).ToList());
        var curvature = new CurvatureResults("synthetic", bins, [], [], new CurvatureSummary(floor + InitialExcess, null, null, D, null, null, null, null));
        var result = Validator.Run(new ValidationInputs(sweep, curvature, floor + TargetExcess,
            new FitOptions { Floor = floor.ToString(System.Globalization.CultureInfo.InvariantCulture), InitialCondition = "isotropic", Checkpoint = "given", Sensitivity = false, PrimaryVariant = "diagonal/measured-c" },
            Cli.Commands.FitCommand.NqmCounterparts(null)));

        var rows = result.Comparison.Where(c => c.Variant == "diagonal/measured-c").ToArray();
        Assert.Equal(2 * BatchSizes.Length, rows.Length);
        var report = string.Join("\n", rows.Select(r => $"{r.Optimizer} B={r.BatchSize}: measured {r.MeasuredSteps}, NQM {r.ZeroShot}, log2 {r.Log2ZeroShot:F2}"));
        foreach (var row in rows)
            Assert.True(Math.Abs(row.Log2ZeroShot!.Value) <= Math.Log2(1.5), "zero-shot beyond a factor of 1.5:\n" + report);
        // The prediction must have the curve's shape too: many more steps at the smallest batch size than the largest.
        Assert.True(rows.Single(r => r.Optimizer == "sgd" && r.BatchSize == 4).ZeroShot > 4 * rows.Single(r => r.Optimizer == "sgd" && r.BatchSize == 1024).ZeroShot, report);
    }

    /// <summary>
    /// Item 10 of issue #10, the part that needs no new workload: the same linear regression, but the floor
    /// (label noise σ²/2) and the initial condition (w* with |w*_i|² ∝ h_i^−0.5, not the isotropic start) are NOT
    /// handed to the fit. It must find both from the loss curve of the largest batch size's best SGD trial (the
    /// mean excess of its replicas plus the floor).
    /// The measured side averages <see cref="ExpectedLossReplicas"/> runs per learning rate, so that its first crossing
    /// estimates the expected loss's, which is what the NQM predicts (with 8, the measured critical batch size came out
    /// 206 against the NQM's 297, and the miss was the measurement's: 255 with 32 replicas, 286 with 64).
    /// Asserted for both curves: every batch size within 1.5× zero-shot and the critical batch size within 1.25× of the
    /// measured one (issue #10 item 10). Measured with 64 replicas (measured B_noise 286): with the curve as recorded
    /// (<paramref name="extension"/> = 1: it stops at the target, like a real trial's) floor 0.502 [0.501, 0.502] for a
    /// true 0.5, a = 0.40 for 0.5, log2 +0.19 / +0.16 / +0.14 / +0.23 / 0.00 at B = 4 … 1024, NQM B_noise 321 (1.12×);
    /// with the default recipe's longer curve (fit.fit_curve_extension = 4: the fit trial run on to 4× its steps, as
    /// `nqm fit` does by replaying it) floor 0.501, a = 0.40, log2 −0.02 / −0.05 / −0.04 / +0.08 / −0.12, B_noise 297
    /// (1.04×).
    /// </summary>
    [Theory]
    [InlineData(1.0)]
    [InlineData(4.0)]
    public void FittedNqmFindsAnUnknownFloorAndAnUnalignedStartFromOneCurve(double extension)
    {
        TorchRuntime.Initialize(1);
        var h = tensor(Curvatures, dtype: ScalarType.Float64);
        var signs = randint(0, 2, [D], generator: new Generator(13)).to(ScalarType.Float64) * 2 - 1;
        var shape = Curvatures.Select(c => Math.Pow(c, -0.25)).ToArray(); // |w*_i| ∝ h^−1/4, s0 ∝ h^−1/2
        double norm = Math.Sqrt(2 * InitialExcess / Curvatures.Zip(shape).Sum(x => x.First * x.Second * x.Second));
        var wStar = signs * tensor(shape, dtype: ScalarType.Float64) * norm;
        double floor = LabelNoise / 2;
        string dir = Path.Combine(Path.GetTempPath(), "nqm-synthetic-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            double[] rates = Enumerable.Range(0, 32).Select(j => 0.95 * 2 / Math.Pow(2, j / 4.0)).ToArray();
            var studies = new List<MeasuredStudy>();
            LossCurve? longer = null;
            var trials = new List<MeasuredTrial>();
            foreach (int b in BatchSizes)
            {
                bool largest = b == BatchSizes[^1];
                var (steps, rate, curve) = StepsToTarget(h, wStar, b, rates, 0, 20_000, seed: 7000 + b, recordCurve: largest, replicaCap: ExpectedLossReplicas, extend: extension);
                Assert.True(steps > 0, $"B={b}: no learning rate reached the target");
                studies.Add(new MeasuredStudy("sgd", b, steps, rate, null, 32, 1, 0, null, null));
                trials.Add(new MeasuredTrial("sgd", b, rate, null, "reached", steps, steps, floor + InitialExcess, floor + TargetExcess, $"sgd-b{b}-r0", "t000"));
                if (largest)
                {
                    string trialDir = Path.Combine(dir, "trials", $"sgd-b{b}-r0", "t000");
                    Directory.CreateDirectory(trialDir);
                    // The trial's own curve.csv stops at the target; the run past it is handed over as nqm fit would make it.
                    File.WriteAllLines(Path.Combine(trialDir, "curve.csv"),
                        ["step,train_loss", .. curve!.Take((int)steps + 1).Select((e, k) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{k},{floor + e:R}"))]);
                    if (extension > 1)
                        longer = new LossCurve(Path.Combine(dir, "fit-curve.csv"), "sgd", b, rate, curve.Select((e, k) => new LossCurvePoint(k, floor + e)).ToList());
                }
            }

            var model = nn.Linear(D, 1, hasBias: false, dtype: ScalarType.Float64);
            using (no_grad()) model.weight!.copy_((wStar * 0.75).unsqueeze(0));
            var gen = new Generator(7);
            var x = randn([20_000, D], dtype: ScalarType.Float64, generator: gen) * h.sqrt();
            var y = (x.matmul(wStar) + randn([20_000], dtype: ScalarType.Float64, generator: gen) * Math.Sqrt(LabelNoise)).unsqueeze(1);
            var diagonals = Diagonals.Compute(model, x, y, new DiagonalOptions { Loss = LossKind.MeanSquaredError, McSamples = 0, ChunkSize = 4096 });
            var spectrum = NqmValidate.Nqm.Spectrum.FromParameters(diagonals.Flatten(p => p.Ggn), diagonals.Flatten(p => p.NoiseVariance), 12);
            var bins = spectrum.Rows.Select(r => new MeasuredBin(r.H, r.C, r.Count, null, null)).ToList();
            var curvature = new CurvatureResults("synthetic", bins, [], [], new CurvatureSummary(floor + InitialExcess, null, null, D, null, null, null, null));

            var result = Validator.Run(new ValidationInputs(new SweepResults(dir, studies, trials), curvature, floor + TargetExcess,
                new FitOptions { Checkpoint = "given", PrimaryVariant = "diagonal/measured-c", Sensitivity = extension > 1, EosMargin = 0, EdgeOfStability = false, FitCurveExtension = extension },
                Cli.Commands.FitCommand.NqmCounterparts(null)) { LongerFitCurve = longer });

            var fit = result.Fit.Variants.Single(v => v.Name == "diagonal/measured-c");
            var rows = result.Comparison.Where(c => c.Variant == "diagonal/measured-c").ToArray();
            string report = $"floor {fit.Floor:F3} [{fit.FloorLow:F3}, {fit.FloorHigh:F3}] (true {floor}), a = {fit.BulkExponent:F2} (true 0.5)\n" +
                            string.Join("\n", rows.Select(r => $"B={r.BatchSize}: measured {r.MeasuredSteps}, NQM {r.ZeroShot}, log2 {r.Log2ZeroShot:F2}"));
            Assert.True(Math.Abs(fit.Floor - floor) <= 0.05 * floor, report);
            Assert.True(Math.Abs(fit.BulkExponent!.Value - 0.5) <= 0.25, report);
            // The fit point itself is reproduced (its curve was fitted), and the predictions keep the measured shape.
            Assert.True(Math.Abs(rows.Single(r => r.BatchSize == BatchSizes[^1]).Log2ZeroShot!.Value) <= Math.Log2(1.25), report);
            Assert.True(rows.Single(r => r.BatchSize == 4).ZeroShot > 4 * rows.Single(r => r.BatchSize == 1024).ZeroShot, report);
            Assert.Equal(Calibration.FitPoint, rows.Single(r => r.BatchSize == BatchSizes[^1]).Excluded);
            // From the data alone: every batch size zero-shot within 1.5×, the critical batch size within 1.25×.
            Assert.All(rows, r => Assert.True(Math.Abs(r.Log2ZeroShot!.Value) <= Math.Log2(1.5), report));
            var measuredFit = result.Scaling.Single(x => x.Optimizer == "sgd" && x.Source == "measured");
            var predictedFit = result.Scaling.Single(x => x.Optimizer == "sgd" && x.Source == "nqm diagonal/measured-c");
            Assert.True(measuredFit.BNoise is double bm && predictedFit.BNoise is double bp && Math.Abs(Math.Log(bp / bm)) <= Math.Log(1.25),
                $"critical batch size: measured {measuredFit.BNoiseLabel}, NQM {predictedFit.BNoiseLabel}\n{report}");
            if (extension > 1)
            {
                // The fit read the longer curve.
                Assert.StartsWith(longer!.Path, result.Fit.FitCurve);
                Assert.True(Math.Abs(fit.Floor - floor) <= 0.01 * floor, report);
                // The earlier choice stays in the sensitivity table: floor and s0 fitted to the curve as recorded.
                var recorded = result.Sensitivity.Where(r => r.FloorPolicy == "curve-recorded" && r.Variant == "diagonal/measured-c").ToList();
                Assert.NotEmpty(recorded);
                Assert.All(recorded, r => Assert.True(r.Floor is double f && Math.Abs(f - floor) <= 0.05 * floor && Math.Abs(f - fit.Floor) > 1e-4,
                    $"curve-recorded floor {r.Floor}, primary {fit.Floor}"));
            }
        }
        finally { try { Directory.Delete(dir, true); } catch (IOException) { } }
    }

    /// <summary>
    /// Trains linear models with SGD (heavy-ball momentum β, the project's SgdRule) on fresh samples every step: for each
    /// learning rate of <paramref name="rates"/>, <see cref="Replicas"/> (or <c>replicaCap</c>) independent rows of one weight matrix.
    /// SGD and heavy-ball momentum are linear in the gradient, so a row whose loss is weighted by α_r under an
    /// optimizer with learning rate 1 follows exactly the updates of learning rate α_r. Returns the first step
    /// at which the mean excess loss ½ Σ h (w − w*)² of some learning rate's replicas is below the target
    /// (the study's minimum over its learning rates), with that rate, or −1 within <paramref name="cap"/> steps.
    /// </summary>
    static (long Steps, double Rate) StepsToTarget(Tensor h, Tensor wStar, int batchSize, double[] rates, double beta, long cap, int seed)
    {
        var (steps, rate, _) = StepsToTarget(h, wStar, batchSize, rates, beta, cap, seed, recordCurve: false, replicaCap: Replicas);
        return (steps, rate);
    }

    /// <summary>
    /// As above; with <paramref name="recordCurve"/> also the winning learning rate's mean excess loss at every step from 0,
    /// and with <paramref name="extend"/> &gt; 1 that rate trained on to <paramref name="extend"/> × its steps (the curve then runs past the target).
    /// </summary>
    static (long Steps, double Rate, double[]? Curve) StepsToTarget(Tensor h, Tensor wStar, int batchSize, double[] rates, double beta, long cap, int seed, bool recordCurve, int replicaCap, double extend = 1)
    {
        long reachedAt = -1, winnerRow = -1;
        var history = new List<double[]>();
        if (recordCurve) history.Add(Enumerable.Repeat((0.5 * (wStar.square() * h).sum()).item<double>(), rates.Length).ToArray());
        int replicas = Math.Clamp(4096 / batchSize, 4, replicaCap);
        int rows = rates.Length * replicas;
        var gen = new Generator((ulong)seed);
        // Float32 for speed; the excess loss that decides the outcome is computed in float64.
        var w = nn.Parameter(zeros([rows, D], dtype: ScalarType.Float32));
        // The project's heavy-ball rule (TorchSharp's SGD arithmetic with its Scalars kept alive: docs/design/torchsharp.md §2).
        using var rule = new SgdRule([w], momentum: beta);
        var weight = tensor(rates.SelectMany(r => Enumerable.Repeat(r, replicas)).ToArray(), dtype: ScalarType.Float32);
        var alive = ones([rows], dtype: ScalarType.Float32);
        var sd = h.sqrt().to(ScalarType.Float32);
        var wStar32 = wStar.to(ScalarType.Float32);
        for (long k = 1; k <= cap; k++)
        {
            using var scope = NewDisposeScope();
            var x = randn([rows, batchSize, D], dtype: ScalarType.Float32, generator: gen) * sd;
            var y = x.matmul(wStar32) + randn([rows, batchSize], dtype: ScalarType.Float32, generator: gen) * (float)Math.Sqrt(LabelNoise);
            var prediction = x.matmul(w.unsqueeze(2)).squeeze(2);
            var perRow = (0.5f * (prediction - y).square()).mean([1]);
            var loss = (perRow * weight * alive).sum();
            rule.Step(() => loss, 1.0);
            using (no_grad())
            {
                var excess = (0.5 * ((w.to(ScalarType.Float64) - wStar).square() * h).sum(1)).nan_to_num(1e9, 1e9, 1e9);
                // A diverged row is frozen (weight 0) and reset, so it cannot disturb the others.
                var diverged = excess.gt(100);
                if (diverged.any().item<bool>())
                {
                    alive.masked_fill_(diverged, 0);
                    w.masked_fill_(diverged.unsqueeze(1), 0);
                }
                var perRate = excess.view(rates.Length, replicas).mean([1]);
                if (recordCurve) history.Add(perRate.data<double>().ToArray());
                if (reachedAt > 0)
                {
                    if (k >= (long)Math.Ceiling(extend * reachedAt))
                        return (reachedAt, rates[winnerRow], history.Select(row => row[winnerRow]).ToArray());
                    continue;
                }
                var reached = perRate.lt(TargetExcess).logical_and(alive.view(rates.Length, replicas).all(1));
                if (reached.any().item<bool>())
                {
                    long winner = reached.nonzero()[0, 0].item<long>();
                    // With extend > 1 the winning rate trains on past its first crossing: the fit trial run on past the target.
                    if (recordCurve && extend > 1) { (reachedAt, winnerRow) = (k, winner); continue; }
                    return (k, rates[winner], recordCurve ? history.Select(row => row[winner]).ToArray() : null);
                }
                if (!alive.any().item<bool>()) return (-1, double.NaN, null);
            }
        }
        return (-1, double.NaN, null);
    }
}
