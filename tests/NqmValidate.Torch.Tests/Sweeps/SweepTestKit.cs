using System.Globalization;
using System.Text;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Torch.Tests.Sweeps;

/// <summary>
/// A synthetic trial for testing the sweep's planning, pruning, resume and merge logic without
/// training: steps-to-target is a smooth bowl in log learning rate around an optimum that
/// scales linearly with batch size, with seed noise, divergence above a critical learning
/// rate, and evaluations every 10 steps. It honours --max-steps like the real trial and writes
/// the same trial.json/curve.csv fields the sweep reads.
/// </summary>
public sealed class SyntheticTrialRunner : ITrialRunner
{
    public int Launched;
    public long StepsTrained;
    /// <summary>Trials whose learning rate is in this set crash (no trial.json, exit code 134).</summary>
    public Func<TrialRequest, bool> Crashes { get; init; } = _ => false;
    public TimeSpan Delay { get; init; } = TimeSpan.Zero;

    /// <summary>Make the reached step depend on --max-steps (like a trial whose last evaluations
    /// depend on its cap): a log run with a looser cap than its final one then differs, so tables
    /// that used such a log would differ between timings.</summary>
    public bool CapSensitive { get; init; }

    public static (string Status, long? Steps, long Run) Outcome(TrialRequest r, bool capSensitive = false)
    {
        double lrStar = 0.05 * r.Study.BatchSize / 16.0;
        double lr = r.Trial.Point.LearningRate * (r.Trial.Point["momentum"] is { } m ? 1 / (1 - m) : 1);
        double x = Math.Log(lr / lrStar);
        if (x > 1.5) return ("diverged", null, 7);
        double noise = 1 + 0.1 * ((r.Trial.Seed % 1000) / 1000.0);
        // Perfect scaling below B ≈ 64, diminishing returns above.
        long truth = (long)Math.Ceiling(noise * Math.Exp(x * x) * (40 + 3200.0 / r.Study.BatchSize));
        long reached = (truth + 9) / 10 * 10; // first evaluation (every 10 steps) at or after it
        if (capSensitive) reached -= r.MaxSteps % 7;
        if (reached > r.MaxSteps) return ("budget_exhausted", null, r.MaxSteps);
        return ("reached", reached, reached);
    }

    /// <summary>
    /// The first evaluation at which the synthetic trial meets the looser target <paramref name="threshold"/>: its
    /// untruncated crossing of the study's own target scaled by target/threshold (a looser target is met earlier), on the
    /// 10-step evaluation grid; null if it diverged first or the crossing lies beyond its cap.
    /// </summary>
    public static long? LooserCrossing(TrialRequest r, double threshold)
    {
        var (status, steps, _) = Outcome(r with { MaxSteps = long.MaxValue / 4 });
        if (status == "diverged") return null;
        long crossing = (long)Math.Ceiling(steps!.Value * r.Config.Target!.Threshold / threshold / 10.0) * 10;
        return crossing <= r.MaxSteps ? crossing : null;
    }

    public async Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel)
    {
        Interlocked.Increment(ref Launched);
        started(0);
        if (Delay > TimeSpan.Zero)
        {
            try { await Task.Delay(Delay, cancel); }
            catch (OperationCanceledException) { return new TrialExit(130, "", true); }
        }
        if (Crashes(request)) return new TrialExit(134, "Fatal error. SIGSEGV", false);
        var (status, steps, run) = Outcome(request, CapSensitive);
        Interlocked.Add(ref StepsTrained, run);
        var curve = new StringBuilder("step,examples_seen,train_seconds,minibatch_loss,train_loss,validation_loss,validation_error\n");
        for (long s = 0; s <= run; s += 10)
            curve.Append(CultureInfo.InvariantCulture, $"{s},{s * request.Study.BatchSize},0,1,{2.3 * Math.Exp(-s / 300.0):R},,\n");
        File.WriteAllText(Path.Combine(directory, "curve.csv"), curve.ToString());
        TrialJson.Write(Path.Combine(directory, "trial.json"), new TrialRecord
        {
            Status = ResultsStore.ParseStatus(status, "synthetic trial"),
            StepsToTarget = steps,
            LooserTargets = request.Config.LooserTargets?.Select(t => new TargetCrossing(t, LooserCrossing(request, t), null)).ToList(),
            StepsRun = run,
            Config = request.Config,
            Versions = VersionInfo.Current(),
        });
        return new TrialExit(0, "", false);
    }
}

public static class SweepTestKit
{
    public static string TempDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "nqm-sweep-tests", $"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A small valid spec: 2 optimizers × 3 batch sizes, 6-point learning-rate grids.</summary>
    public const string SmallSpecJson = """
    {
      "name": "tiny",
      "seed": 7,
      "workload": {
        "model": { "name": "mlp", "hidden_widths": [16] },
        "target": { "metric": "train_loss", "threshold": 1.0 }
      },
      "batch_sizes": [16, 64, 256],
      "optimizers": [
        { "name": "sgd", "learning_rate": { "min": 0.005, "max": 5.0, "points": 7 } },
        { "name": "momentum", "search": "halton", "trials": 8,
          "learning_rate": { "min": 0.0005, "max": 0.5 }, "one_minus_momentum": { "min": 0.01, "max": 0.5 } }
      ],
      "budget": { "examples": 64000, "min_steps": 100, "max_steps": 4000 },
      "jobs": 3
    }
    """;

    public static ExperimentSpec SmallSpec(Func<ExperimentSpec, ExperimentSpec>? change = null)
    {
        var spec = SpecLoader.Parse(SmallSpecJson, "test spec");
        return change is null ? spec : change(spec);
    }

    public static string Read(string dir, string file) => File.ReadAllText(Path.Combine(dir, file));
}
