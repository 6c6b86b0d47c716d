using System.Diagnostics;
using TorchSharp;

namespace NqmValidate.Training.Runtime;

/// <summary>Thrown when LibTorch cannot be loaded; the message names the real cause.</summary>
public sealed class TorchLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Loads TorchSharp's native libraries once and turns TorchSharp's generic load error (which
/// blames a missing libtorch package) into one that names the real cause, found with <c>ldd</c>.
/// </summary>
public static class TorchRuntime
{
    static readonly object Gate = new();
    static bool _loaded;

    /// <summary>Loads LibTorch for the CPU and sets the intra-op thread count.</summary>
    public static void Initialize(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        EnsureLoaded();
        torch.set_num_threads(threads);
    }

    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded) return;
            try
            {
                // Any call that touches the native library forces the load.
                torch.InitializeDeviceType(DeviceType.CPU);
                _loaded = true;
            }
            catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException)
            {
                throw new TorchLoadException(Diagnose(), e);
            }
        }
    }

    /// <summary>True when TorchSharp's CUDA backend is present and sees a GPU.</summary>
    public static bool CudaAvailable()
    {
        EnsureLoaded();
        try { return torch.cuda.is_available(); }
        catch (Exception) { return false; }
    }

    /// <summary>Resolves a device name ("cpu" or "cuda"), failing clearly when CUDA is absent.</summary>
    public static torch.Device ResolveDevice(string name)
    {
        switch (name.ToLowerInvariant())
        {
            case "cpu": EnsureLoaded(); return torch.CPU;
            case "cuda":
                if (!CudaAvailable())
                    throw new TorchLoadException(
                        "--device cuda: TorchSharp's CUDA backend is not available in this build or no GPU is visible. " +
                        "Build with `dotnet build -p:TorchBackend=cuda` (needs the TorchSharp-cuda-linux package) on a machine with an NVIDIA driver, or use --device cpu.");
                return torch.CUDA;
            default:
                throw new ArgumentException($"Unknown device '{name}'. Valid: cpu, cuda.", nameof(name));
        }
    }

    static string Diagnose()
    {
        string baseDir = AppContext.BaseDirectory;
        string lib = Path.Combine(baseDir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(lib))
            return $"TorchSharp's native library is missing: {lib} does not exist. Rebuild with `dotnet build` so the TorchSharp-cpu package copies it.";
        string missing = LddMissing(lib);
        if (missing.Length == 0)
            return $"LibTorch failed to load from {lib}, and ldd reports no missing dependency. See the inner exception.";
        string hint = missing.Contains("GLIBCXX_3.4.32")
            ? " This machine's libstdc++ lacks GLIBCXX_3.4.32 (GCC 13). The project's build marks that requirement weak in the output copy; " +
              "rebuild with `dotnet build` (without -p:NqmSkipGlibcxxFix=true), or install a newer libstdc++."
            : "";
        return $"LibTorch failed to load: ldd {lib} reports:{Environment.NewLine}{missing}{hint}";
    }

    static string LddMissing(string lib)
    {
        try
        {
            var psi = new ProcessStartInfo("ldd", [lib]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return string.Join(Environment.NewLine, output.Split('\n')
                .Where(l => l.Contains("not found")).Select(l => "  " + l.Trim()));
        }
        catch (Exception) { return ""; }
    }
}
