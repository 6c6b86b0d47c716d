using System.Globalization;
using NqmValidate.Nqm;

namespace NqmValidate.Nqm.Tests;

/// <summary>
/// The independent oracle: the moment recursions of docs/design/nqm.md §2 stepped one step at a time, in System.Decimal
/// (28 significant digits) so the oracle's own rounding (~1e-28 per step) cannot mask a 1e-8 error.
/// Inputs are converted from double through their round-trip string (exact to 17 digits).
/// </summary>
public static class DirectStepping
{
    public static decimal D(double v) => decimal.Parse(v.ToString("R", CultureInfo.InvariantCulture), NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>Loss after each k in <paramref name="checkpoints"/> (ascending).</summary>
    public static double[] Losses(Spectrum spectrum, NqmOptimizer opt, double batchSize, long[] checkpoints)
    {
        var rows = spectrum.Rows.Where(r => r.H > 0 && r.Count > 0).ToArray();
        var result = new double[checkpoints.Length];
        var perRow = rows.Select(r => RowLosses(r, opt, batchSize, checkpoints)).ToArray();
        for (int j = 0; j < checkpoints.Length; j++)
        {
            decimal sum = 0;
            for (int i = 0; i < rows.Length; i++) sum += perRow[i][j];
            result[j] = (double)sum;
        }
        return result;
    }

    static decimal[] RowLosses(SpectrumRow row, NqmOptimizer opt, double batchSize, long[] checkpoints)
    {
        decimal h = D(row.H), c = D(row.C), s0 = D(row.S0), w = 0.5m * h * D(row.Count);
        decimal p = D(opt.Preconditioner.For(row));
        decimal alpha = D(opt.LearningRate), b = D(batchSize);
        decimal x = alpha * p * h, n = alpha * p * alpha * p * c / b;
        var outv = new decimal[checkpoints.Length];
        int next = 0;
        long kmax = checkpoints[^1];
        switch (opt)
        {
            case Sgd:
            {
                decimal s = s0, r2 = (1 - x) * (1 - x);
                for (long k = 0; k <= kmax; k++)
                {
                    while (next < checkpoints.Length && checkpoints[next] == k) outv[next++] = w * s;
                    s = r2 * s + n;
                }
                break;
            }
            case Momentum m:
            {
                decimal beta = D(m.Beta);
                decimal t00 = (1 - x) * (1 - x), t01 = beta * beta, t02 = 2 * beta * (1 - x);
                decimal t10 = x * x, t11 = beta * beta, t12 = -2 * beta * x;
                decimal t20 = -x * (1 - x), t21 = beta * beta, t22 = beta * (1 - 2 * x);
                decimal a0 = s0, a1 = 0, a2 = 0;
                for (long k = 0; k <= kmax; k++)
                {
                    while (next < checkpoints.Length && checkpoints[next] == k) outv[next++] = w * a0;
                    decimal n0 = t00 * a0 + t01 * a1 + t02 * a2 + n;
                    decimal n1 = t10 * a0 + t11 * a1 + t12 * a2 + n;
                    decimal n2 = t20 * a0 + t21 * a1 + t22 * a2 + n;
                    a0 = n0; a1 = n1; a2 = n2;
                }
                break;
            }
            case Ema e:
            {
                decimal g = D(e.Decay), r = 1 - x, r2 = r * r;
                decimal a0 = s0, a1 = s0 / ((1 - g) * (1 - g)), a2 = s0 / (1 - g);
                for (long k = 0; k <= kmax; k++)
                {
                    while (next < checkpoints.Length && checkpoints[next] == k) outv[next++] = w * (1 - g) * (1 - g) * a1;
                    decimal n0 = r2 * a0 + n;
                    decimal n1 = r2 * a0 + g * g * a1 + 2 * g * r * a2 + n;
                    decimal n2 = r2 * a0 + g * r * a2 + n;
                    a0 = n0; a1 = n1; a2 = n2;
                }
                break;
            }
            default: throw new ArgumentException(opt.GetType().Name);
        }
        return outv;
    }

    /// <summary>Double-precision loss curve k = 0..kmax by stepping (for brute-force steps-to-target).</summary>
    public static double[] CurveDouble(Spectrum spectrum, NqmOptimizer opt, double batchSize, int kmax)
    {
        var rows = spectrum.Rows.Where(r => r.H > 0 && r.Count > 0).ToArray();
        var curve = new double[kmax + 1];
        foreach (var row in rows)
        {
            double h = row.H, w = 0.5 * h * row.Count, p = opt.Preconditioner.For(row);
            double x = opt.LearningRate * p * h, n = Math.Pow(opt.LearningRate * p, 2) * row.C / batchSize;
            double a0 = row.S0, a1 = 0, a2 = 0;
            double beta = opt is Momentum m ? m.Beta : 0, g = opt is Ema e ? e.Decay : 0;
            if (opt is Ema) { a1 = row.S0 / ((1 - g) * (1 - g)); a2 = row.S0 / (1 - g); }
            for (int k = 0; k <= kmax; k++)
            {
                curve[k] += opt is Ema ? w * (1 - g) * (1 - g) * a1 : w * a0;
                if (opt is Ema)
                {
                    double r = 1 - x, n0 = r * r * a0 + n, n1 = r * r * a0 + g * g * a1 + 2 * g * r * a2 + n, n2 = r * r * a0 + g * r * a2 + n;
                    a0 = n0; a1 = n1; a2 = n2;
                }
                else
                {
                    double n0 = (1 - x) * (1 - x) * a0 + beta * beta * a1 + 2 * beta * (1 - x) * a2 + n;
                    double n1 = x * x * a0 + beta * beta * a1 - 2 * beta * x * a2 + n;
                    double n2 = -x * (1 - x) * a0 + beta * beta * a1 + beta * (1 - 2 * x) * a2 + n;
                    a0 = n0; a1 = n1; a2 = n2;
                }
            }
        }
        return curve;
    }
}
