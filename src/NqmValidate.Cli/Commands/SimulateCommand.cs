using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using NqmValidate.Nqm;
using NqmValidate.Reports;
using NqmValidate.Common;

namespace NqmValidate.Cli.Commands;

/// <summary>Options of one `nqm simulate` study (after parsing flags or a spec entry).</summary>
public sealed record SimulateOptions(
    string Spectrum, double Target, IReadOnlyList<OptimizerKind> Optimizers, IReadOnlyList<double> PrecondPowers,
    IReadOnlyList<double> BatchSizes, SearchMode Search, int Pieces, bool? NotebookCompat, string Out)
{
    /// <summary>The SGD model used: as given, else the default for the spectrum (paper → notebook-compat, a CSV → exact).</summary>
    public bool ResolvedNotebookCompat => NotebookCompat ?? Simulation.NotebookCompatByDefault(Spectrum);
}

/// <summary>
/// `nqm simulate`: optimal hyperparameters and steps-to-target of the NQM per batch size (docs/nqm-engine.md).
/// Writes DIR/steps.csv, DIR/fits.csv, plots (PNG + SVG). With --spec FILE runs every study of the spec
/// (experiments/nqm-paper.json regenerates the notebook's figures) and writes DIR/summary.md.
/// </summary>
public static class SimulateCommand
{
    static readonly Option<string> SpectrumOpt = new("--spectrum") { Description = "'paper' (h_i = 1/i, d = 10^4, c = h, 100 bins as the notebook) or a spectrum CSV (columns h, c, count[, s0, precond, layer]).", DefaultValueFactory = _ => "paper" };
    static readonly Option<double> TargetOpt = new("--target") { Description = "Target expected loss (default 0.01).", DefaultValueFactory = _ => 0.01 };
    static readonly Option<string> OptimizersOpt = new("--optimizers") { Description = "Comma list of sgd, momentum, ema, schedule (default sgd).", DefaultValueFactory = _ => "sgd" };
    static readonly Option<string> PowersOpt = new("--precond-powers") { Description = "Comma list of preconditioner powers p in [0, 1] (P = h^-p); 'measured' uses the spectrum's precond column (default 0).", DefaultValueFactory = _ => "0" };
    static readonly Option<string> BatchOpt = new("--batch-sizes") { Description = "Batch sizes: list (4,16,64) or range A..B:xF / A..B:+S, e.g. 2^2..2^20:x4 (the default).", DefaultValueFactory = _ => "2^2..2^20:x4" };
    static readonly Option<string> SearchOpt = new("--search") { Description = "grid (the notebook's grids; default) or continuous (refined off the grid, every grid cell still checked: never worse than grid).", DefaultValueFactory = _ => "grid" };
    static readonly Option<int> PiecesOpt = new("--pieces") { Description = "Pieces of the optimised piecewise-constant schedule (default 10).", DefaultValueFactory = _ => 10 };
    static readonly Option<bool?> NotebookOpt = new("--notebook-compat") { Description = "true: the notebook's 1e-8 in the SGD stationary denominator, s* = n/(1−(1−x)²+1e-8) (reproduces its table exactly); false: the exact model. Default: true for --spectrum paper (the paper's model as its code computes it), false for a CSV spectrum.", Arity = ArgumentArity.ZeroOrOne };
    static readonly Option<bool> ExactOpt = new("--exact-model") { Description = "The exact model (same as --notebook-compat false), e.g. with --spectrum paper." };
    static readonly Option<string?> SpecOpt = new("--spec") { Description = "JSON spec with several studies (e.g. experiments/nqm-paper.json); other study flags are then ignored." };
    static readonly Option<string> OutOpt = new("--out") { Description = "Output directory.", Required = true };
    static readonly Option<int?> ThreadsOpt = new("--threads") { Description = "Parallel searches (default: processor count)." };

    public static Command Create()
    {
        var command = new Command("simulate", "Noisy Quadratic Model: optimal hyperparameters and steps-to-target per batch size, scaling fits and plots.");
        foreach (var o in new Option[] { SpectrumOpt, TargetOpt, OptimizersOpt, PowersOpt, BatchOpt, SearchOpt, PiecesOpt, NotebookOpt, ExactOpt, SpecOpt, OutOpt, ThreadsOpt })
            command.Options.Add(o);
        command.SetAction(Run);
        return command;
    }

    static int Run(ParseResult p)
    {
        try
        {
            string outDir = p.GetValue(OutOpt)!;
            int? threads = p.GetValue(ThreadsOpt);
            if (threads is < 1) throw new NqmArgumentException($"--threads: must be >= 1 (got {threads}).");
            if (p.GetValue(SpecOpt) is { } spec)
                return SimulatePaper.Run(spec, outDir, threads);
            var opts = ToOptions(p);
            var sw = Stopwatch.StartNew();
            var result = RunStudy(opts, threads);
            Console.Write(Describe(result, sw.Elapsed.TotalSeconds));
            WriteOutputs(result, opts.Out, opts.Spectrum == Simulation.PaperSpectrum ? "paper spectrum" : opts.Spectrum);
            Console.WriteLine($"wrote {Path.Combine(opts.Out, "steps.csv")}, fits.csv and plots");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is NqmArgumentException or SpectrumFormatException or FileNotFoundException or DirectoryNotFoundException or FormatException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine($"nqm simulate: {e.Message}");
            return ExitCodes.BadInput;
        }
    }

    /// <summary>The study a parsed command line asks for (without --spec).</summary>
    public static SimulateOptions ToOptions(ParseResult p)
    {
        bool? compat = p.GetValue(NotebookOpt);
        // `--notebook-compat` alone means true.
        if (compat is null && p.GetResult(NotebookOpt) is { Implicit: false }) compat = true;
        if (p.GetValue(ExactOpt))
        {
            if (compat == true) throw new NqmArgumentException("--exact-model and --notebook-compat true contradict each other");
            compat = false;
        }
        double target = p.GetValue(TargetOpt);
        if (!(target > 0) || !double.IsFinite(target)) throw new NqmArgumentException($"--target: must be a finite number > 0 (got {target.ToString(CultureInfo.InvariantCulture)}).");
        if (p.GetValue(PiecesOpt) < 1) throw new NqmArgumentException($"--pieces: must be >= 1 (got {p.GetValue(PiecesOpt)}).");
        return new SimulateOptions(
            p.GetValue(SpectrumOpt)!, target, Simulation.ParseOptimizers(p.GetValue(OptimizersOpt)!),
            ParsePowers(p.GetValue(PowersOpt)!), Simulation.ParseBatchSizes(p.GetValue(BatchOpt)!),
            ParseSearch(p.GetValue(SearchOpt)!), p.GetValue(PiecesOpt), compat, p.GetValue(OutOpt)!);
    }

    public static IReadOnlyList<double> ParsePowers(string text) =>
        text.Trim() == "measured" ? new[] { double.NaN } :
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t =>
            double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v is >= 0 and <= 1 ? v
            : throw new NqmArgumentException($"--precond-powers: '{t}' is not a number in [0, 1]")).ToArray();

    public static SearchMode ParseSearch(string text) => text.Trim().ToLowerInvariant() switch
    {
        "grid" => SearchMode.Grid,
        "continuous" => SearchMode.Continuous,
        _ => throw new NqmArgumentException($"--search '{text}': valid are grid, continuous"),
    };

    /// <summary>Loads 'paper' or a CSV file (the library never opens files).</summary>
    public static Spectrum LoadSpectrum(string spec)
    {
        if (spec == Simulation.PaperSpectrum) return Spectrum.PaperPowerLaw();
        if (!File.Exists(spec)) throw new FileNotFoundException($"spectrum file '{spec}' not found (use --spectrum paper or a CSV with columns h, c, count)");
        using var reader = new StreamReader(spec);
        return SpectrumCsv.Read(reader, spec);
    }

    public static SimulationResult RunStudy(SimulateOptions o, int? threads)
    {
        var spectrum = LoadSpectrum(o.Spectrum);
        bool measured = o.PrecondPowers.Count == 1 && double.IsNaN(o.PrecondPowers[0]);
        if (measured && !spectrum.HasRowPreconditioner) throw new NqmArgumentException($"--precond-powers measured: '{o.Spectrum}' has no precond column");
        var request = new SimulationRequest(spectrum, o.Target, o.Optimizers, o.PrecondPowers, o.BatchSizes, o.Search, o.Pieces, o.ResolvedNotebookCompat, measured);
        return Simulation.Run(request, threads);
    }

    public static string Describe(SimulationResult r, double seconds)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"target {r.Request.Target}, search {r.Request.Mode.ToString().ToLowerInvariant()}, {r.Rows.Count} points in {seconds:F2} s");
        sb.AppendLine(Simulation.ModelDescription(r.Request.NotebookSgdRegularizer));
        sb.AppendLine($"{"optimizer",-9} {"p",5} {"batch",9} {"steps",10} {"lr",10} {"beta/gamma",10} {"eff_lr",10} {"lower_bnd",10}");
        foreach (var row in r.Rows)
            sb.AppendLine($"{Simulation.Name(row.Optimizer),-9} {row.PrecondPower,5} {row.BatchSize,9} {(row.Steps?.ToString() ?? "-"),10} {row.LearningRate,10:G4} {row.Momentum + row.Decay,10:G4} {row.EffectiveLearningRate,10:G4} {row.LowerBound,10:G4}");
        foreach (var f in r.Fits)
            sb.AppendLine(f.Fit is { } fit
                ? $"fit {Simulation.Name(f.Optimizer)} p={f.PrecondPower}: S_min {fit.StepsMin:G5}, B_noise {fit.BatchNoise:G4}, R²(log) {fit.RSquaredLog:F4}, rms log residual {fit.RmsLogResidual:F3} ({fit.Points} points)"
                : $"fit {Simulation.Name(f.Optimizer)} p={f.PrecondPower}: none ({f.Note})");
        return sb.ToString();
    }

    /// <summary>steps.csv, fits.csv and the three figures of one study.</summary>
    public static void WriteOutputs(SimulationResult r, string dir, string label)
    {
        Directory.CreateDirectory(dir);
        NqmStepsCsv.Write(Path.Combine(dir, "steps.csv"), r.Rows.Select(x => new NqmStepsRecord(Simulation.Name(x.Optimizer), x.PrecondPower, x.BatchSize, x.Steps,
            x.LearningRate, x.Momentum, x.Decay, x.EffectiveLearningRate, x.LowerBound)));
        var fits = new StringBuilder("optimizer,precond_power,s_min,b_noise,r2_log,rms_log_residual,points\n");
        foreach (var f in r.Fits)
            fits.AppendLine(f.Fit is { } fit
                ? FormattableString.Invariant($"{Simulation.Name(f.Optimizer)},{f.PrecondPower},{fit.StepsMin:R},{fit.BatchNoise:R},{fit.RSquaredLog:R},{fit.RmsLogResidual:R},{fit.Points}")
                : FormattableString.Invariant($"{Simulation.Name(f.Optimizer)},{f.PrecondPower},,,,,0"));
        AtomicFile.WriteAllText(Path.Combine(dir, "fits.csv"), fits.ToString());

        var groups = r.Rows.GroupBy(x => (x.Optimizer, x.PrecondPower)).ToArray();
        string Label((OptimizerKind o, double p) k) => $"{Simulation.Name(k.o)} p={k.p}";
        var steps = groups.Select(g => new NqmSeries(Label(g.Key), g.Select(x => x.BatchSize).ToArray(), g.Select(x => x.Steps is { } s ? (double)s : double.NaN).ToArray())).ToList();
        var bs = r.Request.BatchSizes;
        steps.Add(new NqmSeries("lower bound d/(2·target·B)", bs, bs.Select(b => Nqm.Nqm.LowerBound(r.Request.Spectrum, b, r.Request.Target)).ToArray(), Dashed: true));
        NqmPlots.Save(Path.Combine(dir, "steps_vs_batch"), $"Steps to target {r.Request.Target} ({label})", "batch size", "steps", steps);
        var lrs = groups.Select(g => new NqmSeries(Label(g.Key), g.Select(x => x.BatchSize).ToArray(), g.Select(x => x.EffectiveLearningRate).ToArray())).ToList();
        NqmPlots.Save(Path.Combine(dir, "learning_rate_vs_batch"), "Optimal (effective) learning rate", "batch size", "learning rate (α/(1−β) for momentum)", lrs);

        // Loss curves of SGD at the middle batch size for a few learning rates around the optimum.
        var first = r.Rows.FirstOrDefault(x => x.Steps is not null && x.Optimizer != OptimizerKind.Schedule);
        if (first is not null)
        {
            double b = bs[bs.Count / 2];
            var mid = r.Rows.FirstOrDefault(x => x.Optimizer == first.Optimizer && x.PrecondPower == first.PrecondPower && x.BatchSize == b && x.Steps is not null) ?? first;
            long horizon = Math.Max(10, 4 * (mid.Steps ?? 1000));
            var ks = Enumerable.Range(0, 200).Select(i => (long)Math.Round(Math.Pow(horizon, i / 199.0))).Distinct().ToArray();
            var pre = double.IsNaN(mid.PrecondPower) ? Preconditioner.FromSpectrum : Preconditioner.FromPower(mid.PrecondPower);
            var curves = new List<NqmSeries>();
            foreach (double f in new[] { 0.1, 0.3, 1.0, 3.0 })
            {
                double a = mid.LearningRate * f;
                var opt = new Sgd(a, pre);
                if (!Nqm.Nqm.IsStable(r.Request.Spectrum, opt, mid.BatchSize)) continue;
                curves.Add(new NqmSeries($"SGD α={a:G3}", ks.Select(k => (double)k).ToArray(), Nqm.Nqm.LossCurve(r.Request.Spectrum, opt, mid.BatchSize, ks)));
            }
            curves.Add(new NqmSeries($"target {r.Request.Target}", new double[] { 1, horizon }, new[] { r.Request.Target, r.Request.Target }, Dashed: true));
            NqmPlots.Save(Path.Combine(dir, "loss_curves"), $"SGD loss curves at B = {mid.BatchSize}", "step", "expected loss", curves);
        }
    }
}
