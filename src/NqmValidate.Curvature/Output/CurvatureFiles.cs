using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using CsvHelper;
using NqmValidate.Training.Trials;
using NqmValidate.Common;

namespace NqmValidate.Curvature.Output;

/// <summary>
/// Writes a <see cref="CurvatureReport"/> as the files of docs/formats.md (Curvature section), each atomically:
/// spectrum.csv, eigen.csv, density.csv, summary.json, optionally parameters.bin, and PNG plots.
/// </summary>
public static class CurvatureFiles
{
    public const string SpectrumFile = "spectrum.csv", EigenFile = "eigen.csv", DensityFile = "density.csv",
        SummaryFile = "summary.json", ParametersFile = "parameters.bin";

    /// <summary>Magic bytes at the start of parameters.bin (format version 1).</summary>
    public static readonly byte[] ParametersMagic = "NQMCURV1"u8.ToArray();

    /// <summary>The per-parameter arrays of parameters.bin, in file order.</summary>
    public static readonly string[] ParameterArrays = ["h_ggn", "h_mc", "c", "mean_gradient", "second_moment"];

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void WriteAll(CurvatureReport report, string dir, bool parametersBin, bool plots, Action<string>? warn = null)
    {
        Directory.CreateDirectory(dir);
        WriteSpectrum(report, Path.Combine(dir, SpectrumFile));
        WriteEigen(report, Path.Combine(dir, EigenFile));
        WriteDensity(report, Path.Combine(dir, DensityFile));
        if (parametersBin) WriteParameters(report.Diagonals, Path.Combine(dir, ParametersFile));
        if (plots)
        {
            try { CurvaturePlots.WriteAll(report, dir); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Plots are a view of the files above; a rendering failure must not lose the measurement.
                warn?.Invoke($"plots not written: {e.GetType().Name}: {e.Message}");
            }
        }
        WriteSummary(report, Path.Combine(dir, SummaryFile));
    }

    static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string F(double? v) => v is { } x ? F(x) : "";

    static void WriteCsv(string path, string[] header, IEnumerable<string[]> rows) => AtomicFile.WriteStream(path, stream =>
    {
        using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true);
        using var csv = new CsvWriter(writer, CultureInfo.InvariantCulture);
        foreach (var h in header) csv.WriteField(h);
        csv.NextRecord();
        foreach (var row in rows)
        {
            foreach (var cell in row) csv.WriteField(cell);
            csv.NextRecord();
        }
    });

    public static void WriteSpectrum(CurvatureReport report, string path) => WriteCsv(path,
        ["layer", "h", "c", "count", "s0", "grad_mean_sq", "second_moment", "h_lo", "h_hi"],
        report.Bins.Select(b => new[] { b.Layer, F(b.H), F(b.C), b.Count.ToString(CultureInfo.InvariantCulture), F(b.S0), F(b.GradMeanSq), F(b.SecondMoment), F(b.HLo), F(b.HHi) }));

    public static void WriteEigen(CurvatureReport report, string path) => WriteCsv(path,
        ["operator", "index", "eigenvalue", "noise_variance", "mean_grad_projection_sq", "residual"],
        report.Eigen.Select(e => new[] { e.Operator, e.Index.ToString(CultureInfo.InvariantCulture), F(e.Eigenvalue), F(e.NoiseVariance), F(e.MeanGradProjectionSq), F(e.Residual) }));

    /// <summary>density.csv through its one column definition (<see cref="NqmValidate.Formats.DensityFile"/>), which the fit reads with.</summary>
    public static void WriteDensity(CurvatureReport report, string path) => NqmValidate.Formats.DensityFile.Write(path,
        report.Density.SelectMany(d => d.Value.OrderBy(n => n.Eigenvalue).Select(n => new NqmValidate.Formats.DensityRow(d.Key, n.Eigenvalue, n.Weight, n.Probe))));

    /// <summary>
    /// parameters.bin, little-endian: magic "NQMCURV1"; int32 tensor count T; per tensor: int32 byte length and
    /// UTF-8 name, int32 byte length and UTF-8 layer, int32 path (0 fast, 1 loop), int32 rank R, R × int64 dims;
    /// int64 total D; int32 array count A (5); per array: int32 byte length and UTF-8 name, then D float64 values in
    /// tensor order (row-major within a tensor). Arrays: h_ggn, h_mc, c, mean_gradient, second_moment; an array that
    /// was not computed holds NaN.
    /// </summary>
    public static void WriteParameters(CurvatureDiagonals d, string path) => AtomicFile.WriteStream(path, stream =>
    {
        using var w = new BinaryWriter(stream, new UTF8Encoding(false), leaveOpen: true);
        void Text(string s) { var b = Encoding.UTF8.GetBytes(s); w.Write(b.Length); w.Write(b); }
        w.Write(ParametersMagic);
        w.Write(d.Parameters.Count);
        foreach (var p in d.Parameters)
        {
            Text(p.Name);
            Text(p.Layer);
            w.Write((int)p.Path);
            w.Write(p.Shape.Length);
            foreach (var dim in p.Shape) w.Write(dim);
        }
        w.Write(d.Dimension);
        var arrays = new Func<ParameterDiagonal, double[]?>[] { p => p.Ggn, p => p.McFisher, p => p.NoiseVariance, p => p.MeanGradient, p => p.SecondMoment };
        w.Write(arrays.Length);
        for (int a = 0; a < arrays.Length; a++)
        {
            Text(ParameterArrays[a]);
            foreach (var p in d.Parameters)
            {
                var values = arrays[a](p);
                int count = p.MeanGradient.Length;
                for (int i = 0; i < count; i++) w.Write(values is null ? double.NaN : values[i]);
            }
        }
    });

    /// <summary>Reads parameters.bin back: array name → D values (and the tensor names in order).</summary>
    public static (IReadOnlyList<string> Names, IReadOnlyDictionary<string, double[]> Arrays) ReadParameters(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        string Text() => Encoding.UTF8.GetString(r.ReadBytes(r.ReadInt32()));
        if (!r.ReadBytes(8).SequenceEqual(ParametersMagic)) throw new CurvatureInputException($"{path}: not a parameters.bin file (bad magic).");
        int tensors = r.ReadInt32();
        var names = new List<string>();
        for (int t = 0; t < tensors; t++)
        {
            names.Add(Text());
            Text();
            r.ReadInt32();
            int rank = r.ReadInt32();
            for (int k = 0; k < rank; k++) r.ReadInt64();
        }
        long total = r.ReadInt64();
        int count = r.ReadInt32();
        var arrays = new Dictionary<string, double[]>();
        for (int a = 0; a < count; a++)
        {
            string name = Text();
            var values = new double[total];
            for (long i = 0; i < total; i++) values[i] = r.ReadDouble();
            arrays[name] = values;
        }
        return (names, arrays);
    }

    public static void WriteSummary(CurvatureReport r, string path)
    {
        var s = r.Settings;
        var summary = new
        {
            checkpoint = r.Checkpoint,
            examples = r.Examples,
            parameters = r.Parameters,
            initial_loss = r.Loss,
            h_source = r.HSource,
            zero_curvature_parameters = r.ZeroCurvatureParameters,
            traces = new
            {
                ggn_diagonal = r.Traces.Ggn,
                mc_fisher_diagonal = r.Traces.McFisher,
                empirical_fisher = r.Traces.EmpiricalFisher,
                noise_variance = r.Traces.NoiseVariance,
                gradient_norm_sq = r.Traces.GradientNormSquared,
                max_h = r.Traces.MaxH,
            },
            hutchinson = r.Hutchinson.ToDictionary(h => h.Key, h => new { trace = h.Value.Trace, standard_error = h.Value.StandardError, probes = h.Value.Probes }),
            top_eigenvalues = r.Eigen.GroupBy(e => e.Operator).ToDictionary(g => g.Key, g => g.OrderBy(e => e.Index).Select(e => e.Eigenvalue).ToArray()),
            b_simple = r.NoiseScale.ToDictionary(n => n.Method, n => new
            {
                b_simple = n.BSimple, trace_sigma = n.TraceSigma, gradient_norm_sq = n.GradientNormSquared, small_batch = n.SmallBatch, big_batch = n.BigBatch,
            }),
            noise_vs_curvature = new
            {
                exponent = r.NoiseVsCurvature.Exponent, prefactor = r.NoiseVsCurvature.Prefactor,
                log_correlation = r.NoiseVsCurvature.LogCorrelation, points = r.NoiseVsCurvature.Points,
            },
            layers = r.Diagonals.Layers.Select(l => new { layer = l.Layer, kind = l.Kind, path = l.Path == PerExample.LayerPath.Fast ? "fast" : "loop", parameters = l.Parameters, reason = l.Reason }),
            seconds = r.Seconds.Append(new KeyValuePair<string, double>("diagonals_inner", r.Diagonals.Seconds)).ToDictionary(),
            gradient_pass_seconds = r.GradientPassSeconds,
            // Every stage's cost as a ratio to one gradient pass over the same examples (issue #10 item 5).
            cost_in_gradient_passes = r.Seconds.Select(kv => (Stage: kv.Key, Ratio: kv.Value / r.GradientPassSeconds))
                .Append((Stage: "total", Ratio: r.CostInGradientPasses)).ToDictionary(x => x.Stage, x => x.Ratio),
            bulk_below = r.Density.ToDictionary(d => d.Key, d =>
            {
                var (fraction, se, probes) = Spectral.SpectralDensity.FractionBelow(d.Value, CurvatureReport.BulkThreshold);
                // The standard error is the spread over probes; the bracket is what the quadrature nodes can resolve at all.
                var (low, high) = Spectral.SpectralDensity.FractionBelowBracket(d.Value, CurvatureReport.BulkThreshold);
                return new
                {
                    threshold = CurvatureReport.BulkThreshold, fraction, standard_error = se, probes, directions = fraction * r.Parameters,
                    quadrature_low = low, quadrature_high = high,
                };
            }),
            // The measurement under the optimizer's own diagonal preconditioner (an Adam trial's 1/(√v̂ + ε)); null without one.
            preconditioned = r.Preconditioned is not { } p ? null : new
            {
                source = p.Source, @operator = p.Operator, trace_noise = p.TraceNoise, trace_ggn_diagonal = p.TraceGgn,
                gradient_norm_sq = p.GradientNormSquared, b_simple = p.BSimple, min_p = p.MinP, median_p = p.MedianP, max_p = p.MaxP,
            },
            settings = new
            {
                chunk_size = s.ChunkSize, exact_ggn = s.ExactGgn, mc_samples = s.McSamples, paths = s.Paths.ToString().ToLowerInvariant(),
                top_k = s.TopK, lanczos_steps = s.LanczosSteps ?? Math.Max(3 * s.TopK, 30), hutchinson_probes = s.HutchinsonProbes,
                slq_probes = s.SlqProbes, slq_steps = s.SlqSteps, small_batch = s.SmallBatch, bins_per_decade = s.BinsPerDecade,
                operators = s.Operators, eigen_noise = s.EigenNoise, seed = s.Seed,
            },
        };
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(summary, Json) + "\n");
    }
}
