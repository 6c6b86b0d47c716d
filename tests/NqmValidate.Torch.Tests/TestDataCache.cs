using System.Runtime.CompilerServices;

namespace NqmValidate.Torch.Tests;

/// <summary>
/// The decoded data cache of this test run: a fresh folder, set as <c>NQM_CACHE_DIR</c> before any test runs (the `nqm`
/// processes the tests start inherit it), deleted when the run ends. So the tests go through the cache as users do
/// (the first load of a data folder builds it, later loads and worker processes read it), never see a cache left by
/// another run or another branch, and leave nothing in the user's ~/.cache (their fixture folders are temporary).
/// </summary>
static class TestDataCache
{
    const string Prefix = "nqm-test-data-cache-";

    public static string Folder { get; } = Path.Combine(Path.GetTempPath(), Prefix + Guid.NewGuid().ToString("N"));

    [ModuleInitializer]
    internal static void Initialize()
    {
        Environment.SetEnvironmentVariable("NQM_CACHE_DIR", Folder);
        // A run that was killed never deleted its folder (a real data set's cache is 220 MB): remove those a day old.
        foreach (var stale in new DirectoryInfo(Path.GetTempPath()).EnumerateDirectories(Prefix + "*"))
            if (stale.LastWriteTimeUtc < DateTime.UtcNow.AddDays(-1))
                try { stale.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(Folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
    }
}
