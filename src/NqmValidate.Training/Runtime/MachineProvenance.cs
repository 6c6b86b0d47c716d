using System.Collections;
using System.Runtime.InteropServices;
using TorchSharp;

namespace NqmValidate.Training.Runtime;

/// <summary>
/// What the numbers of a trial depend on besides its configuration and the code: the CPU (its model and the
/// instruction sets that choose LibTorch's and MKL's kernels), the LibTorch build, the thread settings and every
/// environment variable that changes numerics. Two runs of the same trial repeat bit for bit only when these match
/// (docs/training.md, "What repeats"). Recorded in every trial.json (<c>machine</c>), in a validate run's
/// provenance.json, in the report's footer and by <c>nqm doctor</c>.
/// </summary>
/// <param name="CpuModel">/proc/cpuinfo's "model name" (a virtual machine may show a generic name).</param>
/// <param name="CpuSignature">Vendor, family, model and stepping: names the micro-architecture when the model name does not.</param>
/// <param name="CpuFlags">The instruction-set flags that select vectorised code paths (<see cref="NumericsFlags"/>), as the kernel reports them.</param>
/// <param name="LogicalCores">Logical processors visible to the process.</param>
/// <param name="AtenCpuCapability">The vector instruction set ATen dispatches its CPU kernels to (e.g. AVX512, AVX2, DEFAULT).</param>
/// <param name="LibTorchConfig">LibTorch's own build description (at::show_config: compiler, BLAS, oneDNN, OpenMP versions, CPU capability).</param>
/// <param name="IntraOpThreads">torch.get_num_threads() when recorded.</param>
/// <param name="InterOpThreads">torch.get_num_interop_threads() when recorded.</param>
/// <param name="Environment">The numerics-relevant environment variables that are set (<see cref="IsNumericsVariable"/>).</param>
/// <param name="Notes">What could not be read, and why.</param>
public sealed record MachineProvenance(
    string? CpuModel,
    string? CpuSignature,
    IReadOnlyList<string> CpuFlags,
    int LogicalCores,
    string? AtenCpuCapability,
    string? LibTorchConfig,
    int? IntraOpThreads,
    int? InterOpThreads,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<string> Notes)
{
    /// <summary>Flags (prefixes ending in '*') that decide which SIMD kernels LibTorch, MKL and oneDNN run.</summary>
    public static readonly string[] NumericsFlags =
        ["sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512*", "avx_vnni", "amx*"];

    static readonly string[] VariablePrefixes = ["OMP_", "KMP_", "GOMP_", "MKL_", "ONEDNN_", "DNNL_", "OPENBLAS_", "ATEN_", "TORCH_"];

    /// <summary>True for variables that may change numerics: OpenMP, MKL, oneDNN, OpenBLAS, ATen and Torch settings.</summary>
    public static bool IsNumericsVariable(string name) =>
        VariablePrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));

    static readonly Lazy<(string? Model, string? Signature, string[] Flags, List<string> Notes)> Cpu = new(ReadCpuInfo);
    static readonly Lazy<(string? Capability, string? Config, string? Note)> Torch = new(ReadLibTorch);

    /// <summary>This process's machine now (loads LibTorch if needed; what cannot be read is null and named in <see cref="Notes"/>).</summary>
    public static MachineProvenance Current()
    {
        var (model, signature, flags, cpuNotes) = Cpu.Value;
        var notes = new List<string>(cpuNotes);
        var (capability, config, torchNote) = Torch.Value;
        if (torchNote is not null) notes.Add(torchNote);
        int? intra = null, inter = null;
        if (config is not null || capability is not null)
        {
            intra = torch.get_num_threads();
            inter = torch.get_num_interop_threads();
        }
        return new MachineProvenance(model, signature, flags, System.Environment.ProcessorCount, capability, config, intra, inter,
            NumericsEnvironment(System.Environment.GetEnvironmentVariables()), notes);
    }

    /// <summary>The numerics-relevant variables among <paramref name="variables"/>, sorted by name.</summary>
    public static IReadOnlyDictionary<string, string> NumericsEnvironment(IDictionary variables)
    {
        var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in variables)
            if (e.Key is string k && IsNumericsVariable(k)) env[k] = e.Value as string ?? "";
        return env;
    }

    /// <summary>One line for terminals and report footers.</summary>
    public string Describe()
    {
        string threads = IntraOpThreads is { } i ? $"{i} intra-op / {InterOpThreads} inter-op threads" : "threads unknown";
        string env = Environment.Count == 0 ? "none set" : string.Join(" ", Environment.Select(kv => $"{kv.Key}={kv.Value}"));
        return $"{CpuModel ?? "unknown CPU"} ({CpuSignature ?? "signature unknown"}), {LogicalCores} logical cores; " +
               $"SIMD: {(CpuFlags.Count == 0 ? "unknown" : string.Join(" ", CpuFlags))}; ATen CPU capability {AtenCpuCapability ?? "unknown"}; " +
               $"{threads}; numerics environment: {env}";
    }

    /// <summary>
    /// What differs between a recorded machine and this one, in words ("instruction sets: here lacks avx512f"),
    /// empty when they match. The LibTorch build description is compared whole, with its CPU-capability line
    /// (reported separately) and its thread lines left out.
    /// </summary>
    public static IReadOnlyList<string> Differences(MachineProvenance recorded, MachineProvenance here)
    {
        var d = new List<string>();
        void Field(string name, object? a, object? b)
        {
            string sa = a?.ToString() ?? "unknown", sb = b?.ToString() ?? "unknown";
            if (sa != sb) d.Add($"{name} ({sa} recorded, {sb} here)");
        }
        Field("CPU model", recorded.CpuModel, here.CpuModel);
        Field("CPU signature", recorded.CpuSignature, here.CpuSignature);
        var missing = recorded.CpuFlags.Except(here.CpuFlags).ToList();
        var extra = here.CpuFlags.Except(recorded.CpuFlags).ToList();
        if (missing.Count + extra.Count > 0)
            d.Add("instruction sets (" + string.Join("; ", new[]
            {
                missing.Count > 0 ? "only recorded: " + string.Join(" ", missing) : null,
                extra.Count > 0 ? "only here: " + string.Join(" ", extra) : null,
            }.Where(s => s is not null)) + ")");
        Field("logical cores", recorded.LogicalCores, here.LogicalCores);
        Field("ATen CPU capability", recorded.AtenCpuCapability, here.AtenCpuCapability);
        if (StableConfig(recorded.LibTorchConfig) != StableConfig(here.LibTorchConfig)) d.Add("LibTorch build configuration");
        Field("intra-op threads", recorded.IntraOpThreads, here.IntraOpThreads);
        Field("inter-op threads", recorded.InterOpThreads, here.InterOpThreads);
        foreach (var name in recorded.Environment.Keys.Union(here.Environment.Keys).Order(StringComparer.Ordinal))
        {
            string? a = recorded.Environment.GetValueOrDefault(name), b = here.Environment.GetValueOrDefault(name);
            if (a != b) d.Add($"{name} ({a ?? "unset"} recorded, {b ?? "unset"} here)");
        }
        return d;
    }

    static string? StableConfig(string? config) => config is null ? null : string.Join("\n", config.Split('\n')
        .Where(l => !l.Contains("CPU capability", StringComparison.Ordinal) && !l.Contains("threads", StringComparison.OrdinalIgnoreCase))
        .Select(l => l.TrimEnd()));

    static (string?, string?, string[], List<string>) ReadCpuInfo()
    {
        var notes = new List<string>();
        const string path = "/proc/cpuinfo";
        if (!File.Exists(path))
        {
            notes.Add($"{path} does not exist on this system: CPU model and flags unknown.");
            return (null, null, [], notes);
        }
        string? model = null, vendor = null, family = null, cpuModel = null, stepping = null;
        string[] flags = [];
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                if (line.Length == 0) break; // the first processor is enough: all cores of these machines are alike
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                switch (key)
                {
                    case "model name": model = value; break;
                    case "vendor_id": vendor = value; break;
                    case "cpu family": family = value; break;
                    case "model": cpuModel = value; break;
                    case "stepping": stepping = value; break;
                    case "flags": flags = value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(IsNumericsFlag).ToArray(); break;
                }
            }
        }
        catch (IOException e)
        {
            notes.Add($"{path}: {e.Message}");
        }
        string? signature = vendor is null ? null
            : FormattableString.Invariant($"{vendor} family {family ?? "?"} model {cpuModel ?? "?"} stepping {stepping ?? "?"}");
        if (flags.Length == 0) notes.Add($"{path} lists no flags (not x86?): instruction sets unknown.");
        return (model, signature, flags, notes);
    }

    static bool IsNumericsFlag(string flag) => NumericsFlags.Any(f =>
        f.EndsWith('*') ? flag.StartsWith(f[..^1], StringComparison.Ordinal) : flag == f);

    // TorchSharp 0.107 exposes neither torch.__config__.show() nor the CPU capability. LibTorch itself exports them as
    // C++ functions returning std::string (at::show_config, at::get_cpu_capability). On x86-64 Linux with libstdc++'s
    // C++11 ABI, such a function takes the address of the 32-byte result object as a hidden first argument and fills
    // it with {char* data, size_t length, ...}; that is all this call relies on. Elsewhere the fields stay null.
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr StdStringFunction(IntPtr result);

    static (string?, string?, string?) ReadLibTorch()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return (null, null, "LibTorch's build configuration is read only on x86-64 Linux; TorchSharp does not expose it.");
        try
        {
            TorchRuntime.EnsureLoaded();
        }
        catch (TorchLoadException e)
        {
            return (null, null, "LibTorch did not load: " + e.Message.Split('\n')[0]);
        }
        if (!TryLoadTorchCpu(out var handle))
            return (null, null, "libtorch_cpu.so not found: LibTorch's build configuration unknown (TorchSharp does not expose it).");
        string? capability = Call(handle, "_ZN2at18get_cpu_capabilityB5cxx11Ev");
        string? config = Call(handle, "_ZN2at11show_configB5cxx11Ev")?.TrimEnd();
        return (capability, config, capability is null || config is null
            ? "LibTorch does not export at::show_config/at::get_cpu_capability in this build: its configuration is unknown (TorchSharp does not expose it)."
            : null);
    }

    static bool TryLoadTorchCpu(out IntPtr handle)
    {
        // The bare name first: the dynamic loader then returns the copy TorchSharp already loaded (matched by soname).
        if (NativeLibrary.TryLoad("libtorch_cpu.so", out handle)) return true;
        foreach (var dir in new[] { Path.GetDirectoryName(typeof(torch).Assembly.Location), AppContext.BaseDirectory })
            if (dir is not null && NativeLibrary.TryLoad(Path.Combine(dir, "runtimes", "linux-x64", "native", "libtorch_cpu.so"), out handle))
                return true;
        return false;
    }

    static string? Call(IntPtr library, string symbol)
    {
        if (!NativeLibrary.TryGetExport(library, symbol, out var address)) return null;
        var function = Marshal.GetDelegateForFunctionPointer<StdStringFunction>(address);
        IntPtr result = Marshal.AllocHGlobal(64);
        try
        {
            for (int i = 0; i < 64; i += 8) Marshal.WriteInt64(result, i, 0);
            function(result);
            IntPtr data = Marshal.ReadIntPtr(result);
            long length = Marshal.ReadInt64(result, 8);
            if (data == IntPtr.Zero || length < 0 || length > 1 << 20) return null;
            // The string's own heap buffer (when longer than 15 bytes) is left alone: it was allocated by C++'s
            // operator new, read once per process, and a few kilobytes.
            return Marshal.PtrToStringUTF8(data, (int)length);
        }
        finally
        {
            Marshal.FreeHGlobal(result);
        }
    }
}
