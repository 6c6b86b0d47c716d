using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NqmValidate.Training.Sweeps;

/// <summary>Who holds a run directory: pid, host and start time of the owning process.</summary>
public sealed record RunLockOwner(
    [property: JsonPropertyName("pid")] int Pid,
    [property: JsonPropertyName("host")] string Host,
    [property: JsonPropertyName("started_utc")] DateTime StartedUtc,
    [property: JsonPropertyName("process_start_utc")] DateTime? ProcessStartUtc)
{
    public override string ToString() =>
        $"pid {Pid} on host {Host}, since {StartedUtc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC";

    /// <summary>The current process.</summary>
    public static RunLockOwner Current()
    {
        DateTime? start = null;
        try { start = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime(); }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception) { }
        return new RunLockOwner(Environment.ProcessId, Environment.MachineName, DateTime.UtcNow, start);
    }

    /// <summary>
    /// True when this owner is a process still running on this host (same pid and, where known,
    /// the same start time, so a recycled pid does not count). Unknown for another host: false.
    /// </summary>
    public bool IsAliveHere()
    {
        if (Host != Environment.MachineName) return false;
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(Pid);
            if (p.HasExited) return false;
            if (ProcessStartUtc is { } recorded)
                return Math.Abs((p.StartTime.ToUniversalTime() - recorded).TotalSeconds) < 2;
            return true;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            return false;
        }
    }
}

/// <summary>A second live process asked for a run directory that another one holds.</summary>
public sealed class RunLockedException(string directory, RunLockOwner? owner, string message) : Exception(message)
{
    public string Directory { get; } = directory;
    public RunLockOwner? Owner { get; } = owner;
}

/// <summary>
/// Ownership of a run directory by one live process: an advisory lock on DIR/run.lock (held open
/// for the whole run, so the kernel releases it when the owner dies, even on SIGKILL) plus
/// DIR/run.owner naming the owner (pid, host, start). A lock left by a dead owner is taken over.
/// The owner file also guards file systems whose locks are not enforced: an owner recorded as
/// running on this host (same pid and start time) is respected even if the lock could be taken.
/// Slurm shards each run in their own directory (OUT/shards/shard-i), so they never contend.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string LockFileName = "run.lock";
    public const string OwnerFileName = "run.owner";

    readonly FileStream _handle;
    readonly string _ownerPath;

    /// <summary>The previous owner whose stale lock this run took over, if any.</summary>
    public RunLockOwner? TookOverFrom { get; }

    RunLock(FileStream handle, string ownerPath, RunLockOwner? tookOverFrom)
    {
        _handle = handle;
        _ownerPath = ownerPath;
        TookOverFrom = tookOverFrom;
    }

    /// <summary>Takes the directory (creating it), or throws <see cref="RunLockedException"/> naming the live owner.</summary>
    public static RunLock Acquire(string directory)
    {
        directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(directory);
        string lockPath = Path.Combine(directory, LockFileName);
        string ownerPath = Path.Combine(directory, OwnerFileName);
        FileStream handle;
        try
        {
            // FileShare.None is an exclusive flock on Unix: a second opener fails while we hold it.
            handle = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(lockPath))
        {
            var holder = ReadOwner(ownerPath);
            throw Locked(directory, holder);
        }
        var previous = ReadOwner(ownerPath);
        if (previous is not null && previous.Pid != Environment.ProcessId && previous.IsAliveHere())
        {
            handle.Dispose();
            throw Locked(directory, previous);
        }
        var me = RunLockOwner.Current();
        Common.AtomicFile.WriteAllText(ownerPath, JsonSerializer.Serialize(me));
        return new RunLock(handle, ownerPath, previous is not null && previous.Pid != me.Pid ? previous : null);
    }

    static RunLockedException Locked(string directory, RunLockOwner? owner) => new(directory, owner,
        $"{directory} is in use by another run ({owner?.ToString() ?? "owner unknown"}); two runs on one directory " +
        "would corrupt it. Wait for it to finish, stop it, or use another --out.");

    /// <summary>The recorded owner of a run directory, or null (none, or unreadable).</summary>
    public static RunLockOwner? ReadOwner(string ownerPath)
    {
        try { return File.Exists(ownerPath) ? JsonSerializer.Deserialize<RunLockOwner>(File.ReadAllText(ownerPath)) : null; }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException) { return null; }
    }

    public void Dispose()
    {
        // Remove the owner record first: a reader never sees a released lock that names us.
        try { if (ReadOwner(_ownerPath)?.Pid == Environment.ProcessId) File.Delete(_ownerPath); }
        catch (IOException) { }
        _handle.Dispose();
    }
}
