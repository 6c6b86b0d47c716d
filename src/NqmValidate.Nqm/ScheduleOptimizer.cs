using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.Optimization;

namespace NqmValidate.Nqm;

/// <summary>An optimised piecewise-constant schedule: equal pieces of <see cref="PieceSteps"/> steps at <see cref="Rates"/>.</summary>
public sealed record OptimalSchedule(long? Steps, long PieceSteps, IReadOnlyList<double> Rates, double FinalLoss);

/// <summary>
/// The notebook's optimal piecewise-constant schedule: n equal pieces, log learning rates optimised with a
/// bounded quasi-Newton method (Math.NET's BFGS-B) on the exact final loss with its analytic gradient,
/// upper bound log(2/(max Ph + min Ph + 1e-4)) (the notebook's log(2/(1+h_min+1e-4)) for its spectrum).
/// Steps-to-target: the smallest piece length m (total n·m steps) whose optimised loss is below target,
/// found by doubling then bisection on m as the notebook does. This is as exact as the inner optimiser
/// converges (a local method on a smooth problem); it is not a proof like the constant-rate search.
/// </summary>
public static class ScheduleOptimizer
{
    /// <summary>Optimal log rates for n pieces of m steps each, and the loss they reach.</summary>
    public static (double[] Rates, double Loss) OptimizeRates(Spectrum spectrum, double batchSize, int pieces, long pieceSteps,
        Preconditioner preconditioner, double[]? initialLogRates = null)
    {
        var model = new LossModel(spectrum, preconditioner);
        return OptimizeRates(model, batchSize, pieces, pieceSteps, initialLogRates);
    }

    internal static (double[] Rates, double Loss) OptimizeRates(LossModel model, double batchSize, int pieces, long pieceSteps, double[]? initialLogRates)
    {
        if (pieces < 1) throw new NqmArgumentException($"pieces = {pieces}: must be >= 1");
        var h = model.Curvatures.ToArray(); var c = model.Noises.ToArray(); var p = model.Preconditioners.ToArray();
        var w = model.Weights.ToArray(); var s0 = model.InitialState.ToArray();
        double maxPh = 0, minPh = double.PositiveInfinity;
        for (int i = 0; i < h.Length; i++) { maxPh = Math.Max(maxPh, p[i] * h[i]); minPh = Math.Min(minPh, p[i] * h[i]); }
        double upper = Math.Log(2 / (maxPh + minPh + 1e-4));
        int n = h.Length;
        var states = new double[pieces + 1, n];
        var lambda = new double[n];

        (double, Vector<double>) ValueAndGradient(Vector<double> logRates)
        {
            for (int i = 0; i < n; i++) states[0, i] = s0[i];
            for (int j = 0; j < pieces; j++)
            {
                double a = Math.Exp(logRates[j]);
                for (int i = 0; i < n; i++)
                {
                    double ap = a * p[i], x = ap * h[i], noise = ap * ap * c[i] / batchSize;
                    double e = Math.Exp(2.0 * pieceSteps * Numerics.LogAbsOneMinus(x));
                    double sstar = noise / (x * (2 - x));
                    states[j + 1, i] = states[j, i] * e + sstar * (1 - e);
                }
            }
            double loss = 0;
            for (int i = 0; i < n; i++) { loss += w[i] * states[pieces, i]; lambda[i] = w[i]; }
            var grad = Vector<double>.Build.Dense(pieces);
            for (int j = pieces - 1; j >= 0; j--)
            {
                double a = Math.Exp(logRates[j]), gj = 0;
                for (int i = 0; i < n; i++)
                {
                    double ap = a * p[i], x = ap * h[i], noise = ap * ap * c[i] / batchSize;
                    double e = Math.Exp(2.0 * pieceSteps * Numerics.LogAbsOneMinus(x));
                    double sstar = noise / (x * (2 - x));
                    // d/dlogα of e = |1−x|^{2m} and of s* = αPc/(Bh(2−x)).
                    double de = x == 1 ? 0 : e * 2.0 * pieceSteps * (-x / (1 - x));
                    double ds = sstar * 2 / (2 - x);
                    gj += lambda[i] * ((states[j, i] - sstar) * de + (1 - e) * ds);
                    lambda[i] *= e;
                }
                grad[j] = gj;
            }
            return (loss, grad);
        }

        var objective = ObjectiveFunction.Gradient(v => ValueAndGradient(v));
        var lower = Vector<double>.Build.Dense(pieces, -40);
        var upperV = Vector<double>.Build.Dense(pieces, upper);
        var init = Vector<double>.Build.Dense(pieces, j => Math.Clamp(initialLogRates?[j] ?? -5, -40, upper));
        Vector<double> best = init;
        try
        {
            var result = new BfgsBMinimizer(1e-12, 1e-10, 1e-12, 1000).FindMinimum(objective, lower, upperV, init);
            best = result.MinimizingPoint;
        }
        catch (MaximumIterationsException) { }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { }
        var (finalLoss, _) = ValueAndGradient(best);
        var (initLoss, _) = ValueAndGradient(init);
        if (initLoss < finalLoss) { best = init; finalLoss = initLoss; }
        return (best.Select(v => Math.Exp(v)).ToArray(), finalLoss);
    }

    /// <summary>Smallest total steps n·m whose optimised n-piece schedule reaches E L &lt; target (m searched up to cap/n).</summary>
    public static OptimalSchedule StepsToTarget(Spectrum spectrum, double batchSize, double target, int pieces, Preconditioner preconditioner, long cap)
    {
        var model = new LossModel(spectrum, preconditioner);
        if (model.InitialLoss < target) return new OptimalSchedule(0, 0, Array.Empty<double>(), model.InitialLoss);
        long maxPiece = Math.Max(1, cap / pieces);
        double[]? warm = null;
        (double[] Rates, double Loss) At(long m)
        {
            var r = OptimizeRates(model, batchSize, pieces, m, warm);
            warm = r.Rates.Select(v => Math.Log(v)).ToArray();
            return r;
        }
        // Doubling to bracket, then bisection (the notebook bisects on [0, 1e8]; doubling is cheaper and equivalent when monotone).
        long lo = 0, hi = 1;
        var hiRes = At(hi);
        while (hiRes.Loss >= target)
        {
            if (hi >= maxPiece) return new OptimalSchedule(null, hi, hiRes.Rates, hiRes.Loss);
            lo = hi; hi = Math.Min(hi * 2, maxPiece); hiRes = At(hi);
        }
        while (hi - lo > 1)
        {
            long mid = lo + (hi - lo) / 2;
            var r = At(mid);
            if (r.Loss < target) { hi = mid; hiRes = r; } else lo = mid;
        }
        return new OptimalSchedule(hi * pieces, hi, hiRes.Rates, hiRes.Loss);
    }
}
