using System.CommandLine;
using System.Globalization;
using NqmValidate.Curvature;
using NqmValidate.Curvature.PerExample;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm curvature`: GGN/Fisher diagonal, gradient-noise variance, eigenvalues, traces, SLQ density and
/// B_simple of a registry model on Fashion-MNIST at init and/or after a warm-up. Files: docs/formats.md (Curvature).
/// Configuration = defaults → --spec FILE (its workload and curvature sections) → flags.
/// </summary>
public static class CurvatureCommand
{
    static readonly Option<string?> Spec = new("--spec") { Description = "Experiment JSON (experiments/*.json): model from its workload section, settings from an optional curvature section. Flags override it." };
    static readonly Option<string?> Model = new("--model") { Description = $"Model: {string.Join(", ", ModelRegistry.Names)} (default mlp)." };
    static readonly Option<string?> HiddenWidths = new("--hidden-widths") { Description = "MLP hidden widths, comma-separated (default 256,256)." };
    static readonly Option<double?> WidthMultiplier = new("--width-multiplier") { Description = "CNN/ResNet width multiplier (default 1)." };
    static readonly Option<string?> DataDir = new("--data-dir") { Description = $"Fashion-MNIST IDX directory (default $NQM_DATA_DIR or {FashionMnist.DefaultDirectory})." };
    static readonly Option<string?> CheckpointOption = new("--checkpoint") { Description = "init, warmup:STEPS, or a comma-separated list (e.g. init,warmup:200); several write DIR/<label>/ each (default init)." };
    static readonly Option<string?> TrialDir = new("--trial") { Description = "Measure along a recorded trial (its directory: trial.json, curve.csv): its configuration is replayed instead of the warm-up flags." };
    static readonly Option<string?> LossLevels = new("--loss-levels") { Description = "With --trial: checkpoints where its evaluated training loss first fell below these levels (comma-separated), plus init." };
    static readonly Option<string?> Optimizer = new("--optimizer") { Description = $"Warm-up optimizer: {string.Join(", ", OptimizerFamilies.Names)} (default sgd)." };
    static readonly Option<double?> LearningRate = new("--learning-rate") { Description = "Warm-up learning rate (default 0.1)." };
    static readonly Option<double?> Momentum = new("--momentum") { Description = "Warm-up momentum for momentum/nesterov (default 0.9)." };
    static readonly Option<int?> BatchSize = new("--batch-size") { Description = "Warm-up batch size (default 128)." };
    static readonly Option<long?> Seed = new("--seed") { Description = "Trial seed: initial weights and warm-up data order, as `nqm train --seed` (default 0)." };
    static readonly Option<int?> Examples = new("--examples") { Description = "Training examples the curvature is measured on (default 16384)." };
    static readonly Option<int?> ChunkSize = new("--chunk-size") { Description = "Examples per forward pass (default 512)." };
    static readonly Option<int?> McSamples = new("--mc-samples") { Description = "Sampled labels per example for the MC Fisher (default 1; 0 skips)." };
    static readonly Option<bool> NoExactGgn = new("--no-exact-ggn") { Description = "Skip the exact GGN diagonal (C backward passes); h is then the MC Fisher." };
    static readonly Option<bool> ForceLoop = new("--force-loop") { Description = "Per-example loop for every layer (slow; a cross-check of the fast path)." };
    static readonly Option<int?> TopK = new("--top-k") { Description = "Top eigenpairs per operator by Lanczos (default 10; 0 skips)." };
    static readonly Option<int?> LanczosSteps = new("--lanczos-steps") { Description = "Lanczos steps for the top eigenpairs (default max(3·top-k, 30))." };
    static readonly Option<int?> HutchinsonProbes = new("--hutchinson-probes") { Description = "Hutchinson probes per operator (default 30; 0 skips)." };
    static readonly Option<int?> SlqProbes = new("--slq-probes") { Description = "SLQ density probes per operator (default 20; 0 skips)." };
    static readonly Option<int?> SlqSteps = new("--slq-steps") { Description = "Lanczos steps per SLQ probe (default 80)." };
    static readonly Option<string?> Operators = new("--operators") { Description = "Operators for eigenvalues, traces and density: hessian,ggn (default both)." };
    static readonly Option<int?> SmallBatch = new("--small-batch") { Description = "Small batch of the two-batch B_simple estimator (default 32; the big batch is --examples)." };
    static readonly Option<int?> BinsPerDecade = new("--bins-per-decade") { Description = "Geometric bins of h per factor of ten in spectrum.csv (default 4)." };
    static readonly Option<long?> MeasureSeed = new("--measure-seed") { Description = "Seed of the measurement's random draws: MC labels, probes, Lanczos starts (default 1)." };
    static readonly Option<bool> ParametersBin = new("--parameters-bin") { Description = "Also write parameters.bin (per-parameter float64 arrays)." };
    static readonly Option<bool> NoPlots = new("--no-plots") { Description = "Do not write PNG plots." };
    static readonly Option<int?> Threads = new("--threads") { Description = "Intra-op threads (default 1)." };
    static readonly Option<string> Out = new("--out") { Description = "Output directory.", Required = true };
    static readonly Option<bool> Quiet = new("--quiet") { Description = "No progress lines on stderr." };

    public static Command Create()
    {
        var command = new Command("curvature", "Measure curvature (GGN/Fisher diagonal, eigenvalues, traces, density) and gradient noise of a model at init or after a warm-up.");
        foreach (var o in new Option[] { Spec, TrialDir, LossLevels, Model, HiddenWidths, WidthMultiplier, DataDir, CheckpointOption, Optimizer, LearningRate, Momentum, BatchSize, Seed,
                     Examples, ChunkSize, McSamples, NoExactGgn, ForceLoop, TopK, LanczosSteps, HutchinsonProbes, SlqProbes, SlqSteps, Operators,
                     SmallBatch, BinsPerDecade, MeasureSeed, ParametersBin, NoPlots, Threads, Out, Quiet })
            command.Options.Add(o);
        command.SetAction(Run);
        return command;
    }

    /// <summary>Maps flags (over the spec file, over defaults) onto a request. Throws CurvatureInputException on bad input.</summary>
    public static CurvatureRunRequest ToRequest(ParseResult p)
    {
        var fromSpec = p.GetValue(Spec) is { } path ? CurvatureSpecFile.Load(path) : new CurvatureSpecFile.Values();
        var r = fromSpec.ToRequest(p.GetValue(Out)!);
        var s = r.Settings;
        var optimizer = r.Optimizer with
        {
            Name = p.GetValue(Optimizer) ?? r.Optimizer.Name,
            LearningRate = p.GetValue(LearningRate) ?? r.Optimizer.LearningRate,
        };
        if (p.GetValue(Momentum) is { } momentum) optimizer = optimizer.With("momentum", momentum);
        if (p.GetValue(LossLevels) is not null && p.GetValue(TrialDir) is null)
            throw new CurvatureInputException("--loss-levels needs --trial DIR (the trial whose loss curve they refer to).");
        if (p.GetValue(TrialDir) is { } trialDir)
        {
            var levels = (p.GetValue(LossLevels) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
                    : throw new CurvatureInputException($"--loss-levels: '{l}' is not a number.")).ToList();
            var (trial, checkpoints, notes) = TrajectoryCheckpoints.FromTrial(trialDir, levels);
            foreach (var note in notes) Console.Error.WriteLine($"note: {note}");
            r = r with
            {
                Trial = trial, Model = trial.Model, Optimizer = trial.Optimizer, BatchSize = trial.BatchSize, Seed = trial.Seed,
                Checkpoints = p.GetValue(CheckpointOption) is null && levels.Count > 0 ? checkpoints : r.Checkpoints,
            };
            optimizer = r.Optimizer;
        }
        return r with
        {
            Model = r.Model with
            {
                Name = p.GetValue(Model) ?? r.Model.Name,
                HiddenWidths = p.GetValue(HiddenWidths) is { } h ? ParseWidths(h) : r.Model.HiddenWidths,
                WidthMultiplier = p.GetValue(WidthMultiplier) ?? r.Model.WidthMultiplier,
            },
            Settings = s with
            {
                Examples = p.GetValue(Examples) ?? s.Examples,
                ChunkSize = p.GetValue(ChunkSize) ?? s.ChunkSize,
                McSamples = p.GetValue(McSamples) ?? s.McSamples,
                ExactGgn = !p.GetValue(NoExactGgn) && s.ExactGgn,
                Paths = p.GetValue(ForceLoop) ? PathPolicy.ForceLoop : s.Paths,
                TopK = p.GetValue(TopK) ?? s.TopK,
                LanczosSteps = p.GetValue(LanczosSteps) ?? s.LanczosSteps,
                HutchinsonProbes = p.GetValue(HutchinsonProbes) ?? s.HutchinsonProbes,
                SlqProbes = p.GetValue(SlqProbes) ?? s.SlqProbes,
                SlqSteps = p.GetValue(SlqSteps) ?? s.SlqSteps,
                Operators = p.GetValue(Operators) is { } ops ? ops.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : s.Operators,
                SmallBatch = p.GetValue(SmallBatch) ?? s.SmallBatch,
                BinsPerDecade = p.GetValue(BinsPerDecade) ?? s.BinsPerDecade,
                Seed = p.GetValue(MeasureSeed) is { } ms ? checked((ulong)ms) : s.Seed,
            },
            DataDir = p.GetValue(DataDir) ?? r.DataDir,
            Checkpoints = p.GetValue(CheckpointOption) is { } cp ? Checkpoint.ParseList(cp) : r.Checkpoints,
            Optimizer = optimizer,
            BatchSize = p.GetValue(BatchSize) ?? r.BatchSize,
            Seed = p.GetValue(Seed) ?? r.Seed,
            Threads = p.GetValue(Threads) ?? 1,
            ParametersBin = p.GetValue(ParametersBin) || r.ParametersBin,
            Plots = !p.GetValue(NoPlots),
        };
    }

    static int[] ParseWidths(string text)
    {
        try { return text.Split(',', StringSplitOptions.TrimEntries).Select(w => int.Parse(w, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new CurvatureInputException($"--hidden-widths: '{text}' is not a comma-separated list of integers."); }
    }

    static int Run(ParseResult parse)
    {
        bool quiet = parse.GetValue(Quiet);
        try
        {
            var request = ToRequest(parse);
            var results = CurvatureRun.Execute(request, quiet ? null : line => Console.Error.WriteLine(line));
            foreach (var r in results)
            {
                var rep = r.Report;
                string Num(double? v) => v is { } x ? x.ToString("G4", CultureInfo.InvariantCulture) : "-";
                var hessianTop = rep.Eigen.FirstOrDefault(e => e.Operator == "hessian" && e.Index == 1)?.Eigenvalue;
                var ggnTop = rep.Eigen.FirstOrDefault(e => e.Operator == "ggn" && e.Index == 1)?.Eigenvalue;
                var hut = rep.Hutchinson.TryGetValue("ggn", out var t) ? $"{Num(t.Trace)} ± {Num(t.StandardError)}" : "-";
                Console.WriteLine($"{rep.Checkpoint}: loss {Num(rep.Loss)}; tr GGN diag {Num(rep.Traces.Ggn)}, Hutchinson {hut}; tr MC Fisher {Num(rep.Traces.McFisher)}; tr c {Num(rep.Traces.NoiseVariance)}; " +
                                  $"top eig hessian {Num(hessianTop)}, ggn {Num(ggnTop)}; B_simple {string.Join(", ", rep.NoiseScale.Select(n => $"{n.Method} {Num(n.BSimple)}"))}; " +
                                  $"c ∝ h^{Num(rep.NoiseVsCurvature.Exponent)} (log corr {Num(rep.NoiseVsCurvature.LogCorrelation)}) -> {r.Directory}");
            }
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is CurvatureInputException or ModelSpecException or OptimizerSpecException or DataSetException or TorchLoadException or ArgumentException)
        {
            Console.Error.WriteLine($"nqm curvature: {e.Message}");
            return ExitCodes.BadInput;
        }
    }
}
