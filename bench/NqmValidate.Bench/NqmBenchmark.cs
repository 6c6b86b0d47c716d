using System.Diagnostics;
using Complex = System.Numerics.Complex;
using MathNet.Numerics.LinearAlgebra;
using NqmValidate.Nqm;

namespace NqmValidate.Bench;

/// <summary>
/// The notebook's momentum figure: 10 batch sizes (2^2 … 2^20) × p ∈ {0, .25, .5, .75} × {SGD grid 100,
/// momentum grid 100 × 20}, target 0.01, paper spectrum. Target: the engine in grid mode vs a baseline in the
/// same run that implements the notebook's algorithm as described (per cell: bisection on k over [0, 1e7],
/// each step a fresh closed-form evaluation with a 3×3 eigendecomposition per bin — Math.NET's Evd — and
/// V⁻¹; full grid). The baseline is far too slow for the whole figure, so it runs on a subset of cells
/// (the engine's optimum cell and its grid neighbours plus random cells, at a few points), its per-cell
/// time is measured and extrapolated to the full figure — the output says so — and its steps are compared
/// with the engine's on every cell it ran.
/// </summary>
public sealed class NqmBenchmark : IBenchmark
{
    public string Name => "nqm-momentum-figure";
    public string Description => "NQM momentum figure (40 points × SGD+momentum grids): engine vs notebook algorithm (extrapolated subset)";

    static readonly double[] Powers = { 0, 0.25, 0.5, 0.75 };
    static readonly double[] Batches = Enumerable.Range(0, 10).Select(j => Math.Pow(2, 2 + 2 * j)).ToArray();
    const double Target = 0.01;

    public int Run(string[] args)
    {
        int repeats = ArgInt(args, "--repeats", 3);
        int randomCells = ArgInt(args, "--baseline-cells", 24);
        var spectrum = Spectrum.PaperPowerLaw();
        Console.WriteLine($"nqm-momentum-figure: {Batches.Length} batch sizes × {Powers.Length} powers × (SGD 100 + momentum 2000 cells); {Environment.ProcessorCount} cores; load average {LoadAverage()}");

        // Engine, grid and continuous, whole figure; medians of repeats.
        SearchResult[]? grid = null, cont = null;
        var gridTimes = new List<double>(); var contTimes = new List<double>(); var gridCpu = new List<double>(); var contCpu = new List<double>();
        var proc = Process.GetCurrentProcess();
        for (int r = 0; r < repeats; r++)
        {
            double c0 = proc.TotalProcessorTime.TotalSeconds;
            gridTimes.Add(Measure.Seconds(() => grid = Figure(spectrum, SearchMode.Grid)));
            proc.Refresh(); double c1 = proc.TotalProcessorTime.TotalSeconds;
            contTimes.Add(Measure.Seconds(() => cont = Figure(spectrum, SearchMode.Continuous)));
            proc.Refresh(); double c2 = proc.TotalProcessorTime.TotalSeconds;
            gridCpu.Add(c1 - c0); contCpu.Add(c2 - c1);
        }
        // CPU seconds are reported too: on a shared machine (load average above the core count) wall time mostly measures the neighbours.
        Console.WriteLine($"engine CPU: grid {Measure.Median(gridCpu):F2} s, continuous {Measure.Median(contCpu):F2} s (medians); load average now {LoadAverage()}");
        double gridT = Measure.Median(gridTimes), contT = Measure.Median(contTimes);
        Console.WriteLine($"engine grid:       {gridT:F2} s wall (median of {repeats}: {string.Join(", ", gridTimes.Select(t => t.ToString("F2")))})");
        Console.WriteLine($"engine continuous: {contT:F2} s wall (median of {repeats}: {string.Join(", ", contTimes.Select(t => t.ToString("F2")))})");
        int worse = 0, better = 0;
        for (int i = 0; i < grid!.Length; i++)
        {
            if (cont![i].Steps > grid[i].Steps) worse++;
            if (cont[i].Steps < grid[i].Steps) better++;
        }
        Console.WriteLine($"continuous vs grid: better at {better}/{grid.Length} points, worse at {worse} (must be 0)");
        foreach (var p in Powers)
        {
            var line = string.Join(" ", Batches.Select(b =>
            {
                var s = grid.First(x => x.Kind == OptimizerKind.Sgd && x.PrecondPower == p && x.BatchSize == b);
                var m = grid.First(x => x.Kind == OptimizerKind.Momentum && x.PrecondPower == p && x.BatchSize == b);
                return $"{s.NotebookSteps}/{m.NotebookSteps}";
            }));
            Console.WriteLine($"  p={p}: SGD/momentum steps (notebook convention) by B: {line}");
        }

        // Baseline on a subset: the optimum cell ± 1 in each grid direction and random cells, at three points.
        var rng = new Random(12345);
        var rates = HyperparameterSearch.NotebookMomentumRates; var betas = HyperparameterSearch.NotebookSecondGrid;
        var subset = new (double p, double b)[] { (0, 4), (0.5, 1024), (0.75, 1 << 20) };
        int cells = 0, mismatches = 0, refereedForEngine = 0; double baselineSeconds = 0, baselineSgdSeconds = 0; int sgdCells = 0, sgdMismatch = 0;
        foreach (var (p, b) in subset)
        {
            var pre = Preconditioner.FromPower(p);
            var opt = grid.First(x => x.Kind == OptimizerKind.Momentum && x.PrecondPower == p && x.BatchSize == b);
            int oi = IndexOf(rates, opt.LearningRate), oj = IndexOf(betas, opt.Momentum);
            var chosen = new HashSet<(int, int)>();
            for (int di = -1; di <= 1; di++) for (int dj = -1; dj <= 1; dj++)
                if (oi + di >= 0 && oi + di < rates.Count && oj + dj >= 0 && oj + dj < betas.Count) chosen.Add((oi + di, oj + dj));
            while (chosen.Count < 9 + randomCells) chosen.Add((rng.Next(rates.Count), rng.Next(betas.Count)));
            var baseline = new NotebookBaseline(spectrum, pre, b);
            var model = new LossModel(spectrum, pre);
            foreach (var (i, j) in chosen)
            {
                long nb = 0;
                baselineSeconds += Measure.Seconds(() => nb = baseline.TimeToLossMomentum(rates[i], betas[j], Target));
                model.Configure(OptimizerKind.Momentum, rates[i], betas[j], b);
                long k = model.FirstBelow(Target, 10_000_000 - 1);
                long engineNb = k < 0 ? 10_000_000 - 1 : k - 1;
                cells++;
                if (engineNb != nb)
                {
                    mismatches++;
                    // Referee: step the moment recursion directly (double) and find the true first crossing.
                    long truth = DirectFirstCrossing(spectrum, pre, b, rates[i], betas[j], Math.Max(nb, engineNb) + 2);
                    bool engineRight = truth == engineNb + 1, notebookRight = truth == nb + 1;
                    if (engineRight) refereedForEngine++;
                    Console.WriteLine($"  mismatch p={p} B={b} α={rates[i]:G4} β={betas[j]:G6}: notebook algorithm {nb}, engine {engineNb}; direct stepping: first crossing k={truth} → {(engineRight ? "engine right" : notebookRight ? "notebook right" : "neither")}");
                }
            }
            // SGD baseline: its whole 100-cell grid at this point (cheap), optimum compared.
            var sgdOpt = grid.First(x => x.Kind == OptimizerKind.Sgd && x.PrecondPower == p && x.BatchSize == b);
            long bestNb = long.MaxValue; double bestA = 0;
            baselineSgdSeconds += Measure.Seconds(() =>
            {
                foreach (var a in HyperparameterSearch.NotebookSgdRates)
                {
                    long t = baseline.TimeToLossSgd(a, Target);
                    if (t < bestNb) { bestNb = t; bestA = a; }
                }
            });
            sgdCells += 100;
            if (bestNb != sgdOpt.NotebookSteps || bestA != sgdOpt.LearningRate)
            { sgdMismatch++; Console.WriteLine($"  SGD optimum mismatch p={p} B={b}: notebook {bestNb} at α={bestA:G4}, engine {sgdOpt.NotebookSteps} at α={sgdOpt.LearningRate:G4}"); }
            Console.WriteLine($"  baseline p={p} B={b}: {chosen.Count} momentum cells incl. the engine's optimum (α={opt.LearningRate:G4}, β={opt.Momentum:G6}, {opt.NotebookSteps} steps) and its neighbours; running totals {cells} cells {baselineSeconds:F1} s ({baselineSeconds / cells * 1e3:F0} ms/cell), SGD grids {baselineSgdSeconds:F1} s");
        }
        Console.WriteLine($"load average after the baseline: {LoadAverage()}");
        double perCell = baselineSeconds / cells, perSgdGrid = baselineSgdSeconds / subset.Length;
        double extrapolated = (perCell * rates.Count * betas.Count + perSgdGrid) * Batches.Length * Powers.Length;
        double extrapolatedWall = extrapolated / Environment.ProcessorCount;
        Console.WriteLine($"baseline (notebook algorithm): {cells} momentum cells measured, {perCell * 1e3:F1} ms/cell; SGD grid {perSgdGrid:F2} s/point");
        Console.WriteLine($"baseline EXTRAPOLATED to the full figure (not run): {extrapolated:F0} s single-threaded, {extrapolatedWall:F0} s wall if perfectly parallel on {Environment.ProcessorCount} cores");
        Console.WriteLine($"identical steps on the overlap: momentum {cells - mismatches}/{cells} cells (all optimum cells included), SGD optimum {subset.Length - sgdMismatch}/{subset.Length} points; "
            + $"of the {mismatches} momentum mismatches direct stepping sides with the engine in {refereedForEngine} (the notebook's bisection lands on a later crossing of an oscillating curve, or its eigendecomposition misjudges a loss within ~1e-7 of the target near β = 1)");
        Console.WriteLine($"ratio baseline(extrapolated, wall)/engine grid: {extrapolatedWall / gridT:F0}×; engine grid {gridT:F2} s (target <= 5 s), continuous {contT:F2} s ({(contT <= gridT * 1.05 ? "no slower" : "SLOWER")} than grid within 5%)");
        return worse == 0 && refereedForEngine == mismatches && sgdMismatch == 0 ? 0 : 1;
    }

    static SearchResult[] Figure(Spectrum spectrum, SearchMode mode)
    {
        var tasks = (from k in new[] { OptimizerKind.Momentum, OptimizerKind.Sgd } from p in Powers from b in Batches select (k, p, b)).ToArray();
        var results = new SearchResult[tasks.Length];
        Parallel.For(0, tasks.Length, i =>
        {
            var (k, p, b) = tasks[i];
            results[i] = HyperparameterSearch.Optimize(spectrum, k, b, Target, new SearchOptions
            {
                Mode = mode, Preconditioner = Preconditioner.FromPower(p), NotebookSgdRegularizer = true,
            });
        });
        return results;
    }

    /// <summary>First k with E L(k) &lt; target by stepping the 3×3 moment recursion (double), up to kmax; −1 if none.</summary>
    static long DirectFirstCrossing(Spectrum spectrum, Preconditioner pre, double batch, double lr, double beta, long kmax)
    {
        var rows = spectrum.Rows.Where(r => r.H > 0 && r.Count > 0).ToArray();
        int n = rows.Length;
        var a0 = rows.Select(r => r.S0).ToArray(); var a1 = new double[n]; var a2 = new double[n];
        var x = rows.Select(r => lr * pre.For(r) * r.H).ToArray();
        var nz = rows.Select(r => Math.Pow(lr * pre.For(r), 2) * r.C / batch).ToArray();
        var w = rows.Select(r => 0.5 * r.H * r.Count).ToArray();
        for (long k = 0; k <= kmax; k++)
        {
            double loss = 0;
            for (int i = 0; i < n; i++) loss += w[i] * a0[i];
            if (loss < Target) return k;
            for (int i = 0; i < n; i++)
            {
                double xi = x[i], b2 = beta * beta;
                double n0 = (1 - xi) * (1 - xi) * a0[i] + b2 * a1[i] + 2 * beta * (1 - xi) * a2[i] + nz[i];
                double n1 = xi * xi * a0[i] + b2 * a1[i] - 2 * beta * xi * a2[i] + nz[i];
                double n2 = -xi * (1 - xi) * a0[i] + b2 * a1[i] + beta * (1 - 2 * xi) * a2[i] + nz[i];
                a0[i] = n0; a1[i] = n1; a2[i] = n2;
            }
        }
        return -1;
    }

    static int IndexOf(IReadOnlyList<double> grid, double v) { for (int i = 0; i < grid.Count; i++) if (grid[i] == v) return i; return 0; }
    static int ArgInt(string[] args, string name, int dflt) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : dflt; }
    static string LoadAverage() { try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; } catch (IOException) { return "?"; } }
}

/// <summary>
/// The notebook's algorithm, transcribed from its description (NQM.md §3 and §5): a fresh closed-form
/// evaluation per bisection step, with a 3×3 eigendecomposition (Math.NET's real Evd, eigenvectors made
/// complex as numpy's eig returns them) and a complex inverse per bin.
/// </summary>
internal sealed class NotebookBaseline
{
    readonly double[] _h, _c, _p, _w;
    readonly double _batch;

    public NotebookBaseline(Spectrum spectrum, Preconditioner pre, double batch)
    {
        var rows = spectrum.Rows.Where(r => r.H > 0 && r.Count > 0).ToArray();
        _h = rows.Select(r => r.H).ToArray(); _c = rows.Select(r => r.C).ToArray();
        _p = rows.Select(pre.For).ToArray(); _w = rows.Select(r => 0.5 * r.H * r.Count).ToArray();
        _batch = batch;
    }

    double MomentumLoss(double lr, double beta, long k)
    {
        double loss = 0;
        for (int i = 0; i < _h.Length; i++)
        {
            double x = lr * _p[i] * _h[i], n = (_p[i] * lr) * (_p[i] * lr) * _c[i] / _batch;
            var (v, e) = Eig(x, beta);
            var vinv = v.Inverse();
            var p0 = vinv * Vector<Complex>.Build.DenseOfArray(new Complex[] { 1.0, 0, 0 }); // s_init = 1 (paper spectrum)
            var pn = vinv * Vector<Complex>.Build.DenseOfArray(new Complex[] { n, n, n });
            var fin = Vector<Complex>.Build.Dense(3);
            for (int j = 0; j < 3; j++) { var ps = pn[j] / (1 - e[j]); fin[j] = Complex.Pow(e[j], k) * (p0[j] - ps) + ps; }
            loss += _w[i] * (v * fin)[0].Real;
        }
        return loss;
    }

    /// <summary>
    /// Eigenvalues and (complex) eigenvectors of the real 3×3 moment transition, as numpy's eig of a real matrix
    /// returns them. Math.NET's real Evd gives complex pairs in real block form (A V = V D with a 2×2 block
    /// [[a, b], [−b, a]] in D): the eigenvector of a + ib is v_j + i v_{j+1}, that of a − ib its conjugate.
    /// (Math.NET's complex Evd is not used: it never returns on β = 0, the grid's last column, where the
    /// matrix has two zero columns — mathnet-numerics issues #11/#595/#1090.)
    /// </summary>
    internal static (Matrix<Complex> V, Complex[] E) Eig(double x, double beta)
    {
        var t = Matrix<double>.Build.DenseOfArray(new double[,]
        {
            { (1 - x) * (1 - x), beta * beta, 2 * (1 - x) * beta },
            { x * x, beta * beta, -2 * x * beta },
            { -(1 - x) * x, beta * beta, (1 - 2 * x) * beta },
        });
        var evd = t.Evd(Symmetricity.Asymmetric);
        var d = evd.D; var vr = evd.EigenVectors;
        var v = Matrix<Complex>.Build.Dense(3, 3); var e = new Complex[3];
        for (int j = 0; j < 3; j++)
        {
            if (j + 1 < 3 && d[j, j + 1] != 0)
            {
                double a = d[j, j], b = d[j, j + 1];
                e[j] = new Complex(a, b); e[j + 1] = new Complex(a, -b);
                for (int r = 0; r < 3; r++) { v[r, j] = new Complex(vr[r, j], vr[r, j + 1]); v[r, j + 1] = new Complex(vr[r, j], -vr[r, j + 1]); }
                j++;
            }
            else
            {
                e[j] = d[j, j];
                for (int r = 0; r < 3; r++) v[r, j] = vr[r, j];
            }
        }
        return (v, e);
    }

    double SgdLoss(double lr, long k)
    {
        double loss = 0;
        for (int i = 0; i < _h.Length; i++)
        {
            double beta = Math.Pow(1 - lr * _p[i] * _h[i], 2);
            double sstar = Math.Pow(_p[i] * lr, 2) * (_c[i] / _batch) / (1 - beta + 1e-8);
            loss += _w[i] * (sstar + Math.Pow(beta, k) * (1 - sstar));
        }
        return loss;
    }

    /// <summary>time_to_loss_wm: bisection on [0, 1e7], returns low (the step before the crossing bisection found).</summary>
    public long TimeToLossMomentum(double lr, double beta, double target)
    {
        long high = 10_000_000, low = 0;
        while (low < high - 1)
        {
            long mid = (low + high) / 2;
            if (MomentumLoss(lr, beta, mid) < target) high = mid; else low = mid;
        }
        return low;
    }

    /// <summary>time_to_loss: bisection on [0, 1e9], returns max(low, 1).</summary>
    public long TimeToLossSgd(double lr, double target)
    {
        long high = 1_000_000_000, low = 0;
        while (low < high - 1)
        {
            long mid = (low + high) / 2;
            if (SgdLoss(lr, mid) < target) high = mid; else low = mid;
        }
        return Math.Max(low, 1);
    }
}
