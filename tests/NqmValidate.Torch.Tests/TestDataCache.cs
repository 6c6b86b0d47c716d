using System.Runtime.CompilerServices;

namespace NqmValidate.Torch.Tests;

/// <summary>
/// The decoded data cache of this test run: a fresh folder, set as <c>NQM_CACHE_DIR</c> before any test runs (the `nqm`
/// processes the tests start inherit it), deleted when the run ends (or by a later run). So the tests go through the cache as users do
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
        // The test host is not always let finish its exit handler (vstest may stop it first), and a killed run never gets
        // there: remove the folders of runs that ended hours ago (a run takes minutes; the real set's cache is 220 MB).
        foreach (var stale in new DirectoryInfo(Path.GetTempPath()).EnumerateDirectories(Prefix + "*"))
            if (stale.LastWriteTimeUtc < DateTime.UtcNow.AddHours(-2))
                try { stale.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(Folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
    }
}
