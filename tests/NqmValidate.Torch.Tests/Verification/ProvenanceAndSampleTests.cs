using NqmValidate.Formats;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Verification;

namespace NqmValidate.Torch.Tests.Verification;

/// <summary>The machine record, the verify sample and the curve comparison, without re-running trials.</summary>
public class ProvenanceAndSampleTests
{
    /// <summary>The test's own reading of /proc/cpuinfo's first flags line (the oracle for the record's flags).</summary>
    static string[] CpuInfoFlags() => File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal))
        .Split(':')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void TheMachineRecordNamesTheCpuFlagsAndTheLibTorchBuild()
    {
        // (No environment variable is set here: the tiny real sweep's trial processes run beside this test and inherit them.)
        var m = MachineProvenance.Current();
        var flags = CpuInfoFlags();
        foreach (var f in new[] { "avx", "avx2", "fma", "avx512f" })
            Assert.Equal(flags.Contains(f), m.CpuFlags.Contains(f));
        Assert.DoesNotContain("sse2", m.CpuFlags); // not a numerics-selecting flag: every x86-64 has it
        Assert.All(m.CpuFlags, f => Assert.Contains(f, flags));
        Assert.Equal(Environment.ProcessorCount, m.LogicalCores);
        // LibTorch's own description, read through its exported C++ function (TorchSharp does not expose it).
        Assert.NotNull(m.LibTorchConfig);
        Assert.Contains("TORCH_VERSION=2.10.0", m.LibTorchConfig);
        Assert.Contains($"CPU capability usage: {m.AtenCpuCapability}", m.LibTorchConfig);
        Assert.Contains(m.AtenCpuCapability, new[] { "DEFAULT", "AVX2", "AVX512" });
        // trial.json carries it: it survives the trial JSON round trip.
        string json = System.Text.Json.JsonSerializer.Serialize(m, TrialJson.Options);
        var back = System.Text.Json.JsonSerializer.Deserialize<MachineProvenance>(json, TrialJson.Options)!;
        Assert.Empty(MachineProvenance.Differences(m, back));
        Assert.Contains("\"aten_cpu_capability\"", json);
    }

    [Fact]
    public void EveryNumericsVariableIsKeptAndNothingElse()
    {
        var env = new System.Collections.Hashtable
        {
            ["OMP_NUM_THREADS"] = "1", ["MKL_CBWR"] = "COMPATIBLE", ["ONEDNN_MAX_CPU_ISA"] = "AVX2", ["DNNL_VERBOSE"] = "0",
            ["ATEN_CPU_CAPABILITY"] = "default", ["OPENBLAS_CORETYPE"] = "Haswell", ["KMP_AFFINITY"] = "compact",
            ["PATH"] = "/usr/bin", ["HOME"] = "/root", ["DOTNET_gcServer"] = "0", ["XOMP_X"] = "no",
        };
        Assert.Equal(["ATEN_CPU_CAPABILITY", "DNNL_VERBOSE", "KMP_AFFINITY", "MKL_CBWR", "OMP_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE"],
            MachineProvenance.NumericsEnvironment(env).Keys);
        Assert.Equal("COMPATIBLE", MachineProvenance.NumericsEnvironment(env)["MKL_CBWR"]);
    }

    [Fact]
    public void DifferencesNameWhatDiffers()
    {
        var a = new MachineProvenance("CPU A", "GenuineIntel family 6 model 85 stepping 7", ["avx", "avx2", "avx512f"], 2, "AVX512",
            "- CPU capability usage: AVX512\n- BLAS_INFO=mkl", 1, 1, new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1" }, []);
        var b = a with
        {
            CpuModel = "CPU B", CpuFlags = ["avx", "avx2"], AtenCpuCapability = "AVX2", LibTorchConfig = "- CPU capability usage: AVX2\n- BLAS_INFO=mkl",
            Environment = new Dictionary<string, string> { ["OMP_NUM_THREADS"] = "1", ["MKL_CBWR"] = "AUTO" },
        };
        var d = MachineProvenance.Differences(a, b);
        Assert.Equal(
        [
            "CPU model (CPU A recorded, CPU B here)",
            "instruction sets (only recorded: avx512f)",
            "ATen CPU capability (AVX512 recorded, AVX2 here)",
            "MKL_CBWR (unset recorded, AUTO here)",
        ], d); // the build description differs only in its CPU-capability line, which is reported once, above
        Assert.Empty(MachineProvenance.Differences(a, a with { }));
    }

    static TrialsRow Row(string optimizer, int b, string trial, string status, long? steps, long run = 100) =>
        new($"{optimizer}-b{b}-r0", optimizer, b, trial, 1, 0.1, new Dictionary<string, double>(), status, steps, run, 2.3, 0.5, null, 1000, 0);

    static readonly TrialsRow[] Rows =
    [
        .. new[] { 16, 64, 256, 1024 }.SelectMany(b => new[]
        {
            Row("sgd", b, "t000", "reached", 400 / (b / 16)), Row("sgd", b, "t001", "reached", 300 / (b / 16)), Row("sgd", b, "t002", "diverged", null, 5),
            Row("adam", b, "t000", "pruned", null), Row("adam", b, "t001", "reached", 200 / (b / 16)), Row("adam", b, "t002", "crashed", null, 0),
        }),
    ];

    [Fact]
    public void TheSampleCoversEveryOptimizerAtTheSmallestAndLargestBatchSizeWithEachStudysBestTrial()
    {
        var covering = VerifySample.Choose(Rows, null);
        Assert.Equal(["adam-b1024-r0/t001", "adam-b16-r0/t001", "sgd-b1024-r0/t001", "sgd-b16-r0/t001"],
            covering.Select(r => $"{r.Study}/{r.Trial}").Order(StringComparer.Ordinal));
        var ten = VerifySample.Choose(Rows, 10);
        Assert.Equal(10, ten.Count);
        Assert.Subset(ten.ToHashSet(), covering.ToHashSet());
        // The other studies' best trials come before any further trial, and crashed trials are never chosen.
        foreach (int b in new[] { 64, 256 })
        {
            Assert.Contains(ten, r => r.Study == $"sgd-b{b}-r0" && r.Trial == "t001");
            Assert.Contains(ten, r => r.Study == $"adam-b{b}-r0" && r.Trial == "t001");
        }
        Assert.DoesNotContain(ten, r => r.Status == "crashed");
        Assert.Equal(ten, VerifySample.Choose(Rows.Reverse().ToArray(), 10).OrderBy(r => Array.IndexOf(Rows, r)));
        Assert.Throws<VerifyInputException>(() => VerifySample.Choose(Rows, 3));
        Assert.Throws<VerifyInputException>(() => VerifySample.Choose(Rows, 21)); // 24 trials, 4 crashed
    }

    [Fact]
    public void CurvesPartAtTheFirstLoggedStepThatDiffersIgnoringTimings()
    {
        CurvePoint P(long s, double? loss, double seconds = 0) => new(s, s * 16, seconds, s == 0 ? null : loss, s % 10 == 0 ? loss : null, null, null, s == 0 ? null : 0.1);
        var a = new[] { P(0, 2.3), P(1, 2.2), P(10, 1.5), P(20, 1.0) };
        Assert.Equal(new CurveComparison(true, 20, null), CurveComparison.Compare(a, a.Select(p => p with { TrainSeconds = 9 }).ToArray()));
        var b = new[] { P(0, 2.3), P(1, 2.2), P(10, BitConverter.Int64BitsToDouble(BitConverter.DoubleToInt64Bits(1.5) + 1)), P(20, 1.0) };
        Assert.Equal(new CurveComparison(false, 1, 10), CurveComparison.Compare(a, b));
        var c = new[] { P(0, 2.3), P(1, 2.2), P(10, 1.5), P(15, 1.2), P(20, 1.0) };
        Assert.Equal(new CurveComparison(false, 10, 15), CurveComparison.Compare(a, c));
        Assert.Equal(new CurveComparison(false, null, 0), CurveComparison.Compare(a, [P(0, 2.4), .. a[1..]]));
    }
}
