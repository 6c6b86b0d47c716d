using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using NqmValidate.Training.Trials;
using NqmValidate.Common;

namespace NqmValidate.Training.Sweeps;

/// <summary>A sweep directory that cannot be used as asked (another spec, unreadable trial).</summary>
public sealed class SweepStoreException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The results store of a sweep directory:
/// <code>
/// DIR/spec.json                          the resolved spec (a resumed sweep must match it)
/// DIR/trials/&lt;study&gt;/&lt;trial&gt;/             a finished trial (trial.json, curve.csv, trial.log)
/// DIR/trials/&lt;study&gt;/.&lt;trial&gt;.attempt-*/   a trial being run (renamed into place when finished)
/// DIR/steps.csv, DIR/trials.csv           the tables (rewritten at the end of every run)
/// </code>
/// A trial directory exists only once the trial finished (the rename is atomic), so a finished
/// trial is never rerun and a killed sweep never leaves a half-written trial that looks finished.
/// </summary>
public sealed class ResultsStore
{
    public string Root { get; }
    public string TrialsRoot => Path.Combine(Root, "trials");
    public string SpecPath => Path.Combine(Root, "spec.json");

    public ResultsStore(string root) => Root = Path.GetFullPath(root);

    public string TrialDirectory(string study, string trial) => Path.Combine(TrialsRoot, study, trial);

    /// <summary>The spec as it matters for results: everything but how many processes run at once and how trials are
    /// hosted (workers or a process per trial give the same results bit for bit).</summary>
    public static string ResultsKey(ExperimentSpec spec) => SpecLoader.ToJson(spec with { Jobs = 1, TrialProcesses = null });

    /// <summary>Creates DIR and its spec.json, or checks that an existing DIR was made by the same spec.</summary>
    public void Open(ExperimentSpec spec)
    {
        Directory.CreateDirectory(TrialsRoot);
        string key = ResultsKey(spec);
        if (File.Exists(SpecPath))
        {
            ExperimentSpec stored;
            try { stored = SpecLoader.Parse(File.ReadAllText(SpecPath), SpecPath); }
            catch (SpecException e) { throw new SweepStoreException($"{SpecPath}: cannot read the stored spec: {e.Message}", e); }
            string storedKey = ResultsKey(stored);
            if (storedKey != key)
                throw new SweepStoreException(
                    $"{Root} holds a sweep of a different spec: {FirstDifference(JsonNode.Parse(storedKey), JsonNode.Parse(key), "")} " +
                    $"(stored in {SpecPath}). Results of different specs must not mix: use another --out directory.");
            return;
        }
        AtomicFile.WriteAllText(SpecPath, key);
    }

    /// <summary>The first field where two specs differ, as "`path` is X there, Y now".</summary>
    static string FirstDifference(JsonNode? stored, JsonNode? given, string path)
    {
        string Show(JsonNode? n) => n?.ToJsonString() ?? "absent";
        string Name(string key) => path == "" ? key : $"{path}.{key}";
        if (stored is JsonObject a && given is JsonObject b)
        {
            foreach (var key in a.Select(p => p.Key).Union(b.Select(p => p.Key)))
            {
                a.TryGetPropertyValue(key, out var x);
                b.TryGetPropertyValue(key, out var y);
                if (!JsonNode.DeepEquals(x, y)) return FirstDifference(x, y, Name(key));
            }
        }
        if (stored is JsonArray l && given is JsonArray r && l.Count == r.Count)
            for (int i = 0; i < l.Count; i++)
                if (!JsonNode.DeepEquals(l[i], r[i])) return FirstDifference(l[i], r[i], $"{path}[{i}]");
        return $"`{(path == "" ? "(whole spec)" : path)}` is {Show(stored)} there, {Show(given)} now";
    }

    public string DataPath => Path.Combine(Root, "data.json");

    /// <summary>
    /// Records which data the sweep trains on (DIR/data.json), or checks that a resumed sweep trains on the same: the
    /// data directory is not part of the spec's results key ($NQM_DATA_DIR, or shards on machines with other paths), so
    /// the files' hash is what must match.
    /// </summary>
    public void CheckData(Data.DataIdentity data)
    {
        if (File.Exists(DataPath))
        {
            Data.DataIdentity? stored;
            try { stored = TrialJson.Read<Data.DataIdentity>(DataPath); }
            catch (JsonException e) { throw new SweepStoreException($"{DataPath}: unreadable ({e.Message}); delete it to record the data again.", e); }
            if (stored.Sha256 != data.Sha256)
                throw new SweepStoreException(
                    $"{Root} holds trials trained on the data set in {stored.Directory} (sha256 {stored.Sha256[..12]}…), but this run would use " +
                    $"{data.Directory} (sha256 {data.Sha256[..12]}…): results of different data must not mix. Use the same data " +
                    "(--data-dir, workload.data.dir or NQM_DATA_DIR) or another --out directory.");
            return;
        }
        TrialJson.Write(DataPath, data);
    }

    /// <summary>The stored spec of a sweep directory.</summary>
    public ExperimentSpec ReadSpec()
    {
        if (!File.Exists(SpecPath)) throw new SweepStoreException($"{Root}: not a sweep directory ({SpecPath} missing).");
        try { return SpecLoader.Parse(File.ReadAllText(SpecPath), SpecPath); }
        catch (SpecException e) { throw new SweepStoreException(e.Message, e); }
    }

    /// <summary>The log of a finished trial, or null when it has not finished.</summary>
    public TrialLog? TryRead(string study, string trial)
    {
        string dir = TrialDirectory(study, trial);
        return Directory.Exists(dir) ? ReadLog(dir) : null;
    }

    /// <summary>Deletes a finished trial so that it runs again (its log was run with another cap).</summary>
    public void Discard(string study, string trial)
    {
        string dir = TrialDirectory(study, trial);
        if (!Directory.Exists(dir)) return;
        // Rename first (atomic), then delete: a killed sweep never leaves half a trial in place.
        string doomed = Path.Combine(TrialsRoot, study, $".{trial}.discarded-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.Move(dir, doomed);
        Directory.Delete(doomed, true);
    }

    /// <summary>A new, empty attempt directory for a trial.</summary>
    public string NewAttempt(string study, string trial)
    {
        string dir = Path.Combine(TrialsRoot, study, $".{trial}.attempt-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Records the pid of the process running an attempt (so a later run can stop an orphan).</summary>
    public static void RecordPid(string attempt, int pid) =>
        AtomicFile.WriteAllText(Path.Combine(attempt, "sweep.pid"), pid.ToString(CultureInfo.InvariantCulture));

    /// <summary>Moves a finished attempt into place (atomic rename).</summary>
    public void Commit(string attempt, string study, string trial)
    {
        string final = TrialDirectory(study, trial);
        if (Directory.Exists(final)) { Directory.Delete(attempt, true); return; }
        Directory.Move(attempt, final);
    }

    /// <summary>
    /// Marks an attempt whose process died as crashed: the sweep writes its trial.json, a <see cref="TrialRecord"/>
    /// with status crashed, the trial's configuration and the process's exit code and last stderr lines as its error.
    /// What the dead process had written itself is kept beside it as trial.crashed-process.json.
    /// </summary>
    public static void RecordCrash(string attempt, TrialRequest request, TrialExit exit)
    {
        string trialJson = Path.Combine(attempt, "trial.json");
        if (File.Exists(trialJson)) File.Move(trialJson, Path.Combine(attempt, "trial.crashed-process.json"), true);
        var (commit, dirty) = GitInfo.Current;
        TrialJson.Write(trialJson, new TrialRecord
        {
            Status = TrialStatus.Crashed,
            Error = $"the trial process exited with code {exit.ExitCode}" + (exit.StderrTail.Length > 0 ? $":\n{exit.StderrTail}" : ""),
            Config = request.Config,
            StartedUtc = DateTime.UtcNow,
            GitCommit = commit,
            GitDirty = dirty,
            Versions = VersionInfo.Current(),
        });
    }

    /// <summary>
    /// Cleans up attempts left by a killed sweep: an attempt whose trial finished is adopted
    /// (its result is as valid as a fresh run's); otherwise its process is stopped if it still
    /// runs (only a process whose command line names that attempt) and the attempt is deleted.
    /// Returns the number adopted.
    /// </summary>
    public int RecoverAttempts()
    {
        int adopted = 0;
        if (!Directory.Exists(TrialsRoot)) return 0;
        foreach (var studyDir in Directory.GetDirectories(TrialsRoot))
        foreach (var attempt in Directory.GetDirectories(studyDir, ".*.attempt-*"))
        {
            string name = Path.GetFileName(attempt);
            string trial = name[1..name.IndexOf(".attempt-", StringComparison.Ordinal)];
            // A trial whose sweep still runs is not an orphan: leave it (and its attempt) alone.
            if (!StopOrphan(attempt)) continue;
            var log = ReadLog(attempt, tolerant: true);
            if (log is not null && log.Status is TrialStatus.Reached or TrialStatus.BudgetExhausted or TrialStatus.Diverged
                && !Directory.Exists(Path.Combine(studyDir, trial)))
            {
                Directory.Move(attempt, Path.Combine(studyDir, trial));
                adopted++;
            }
            else Directory.Delete(attempt, true);
        }
        return adopted;
    }

    /// <summary>
    /// Stops the processes still running an attempt (<see cref="ProcessesRunning"/>: a trial process whose command line
    /// names the attempt directory, found through /proc so it works even when the sweep was killed before it could record
    /// the pid, or the trial worker the attempt's sweep.pid names). A process whose parent is still the sweep that made the
    /// attempt (its pid is in the attempt's name) is not an orphan: it is left running and
    /// false is returned. (The run lock already keeps a second sweep out; this is the last line.)
    /// </summary>
    static bool StopOrphan(string attempt)
    {
        int? sweepPid = AttemptSweepPid(attempt);
        var pids = ProcessesRunning(attempt);
        if (sweepPid is { } owner && owner != Environment.ProcessId && pids.Any(pid => ParentPid(pid) == owner)) return false;
        foreach (int pid in pids)
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Gone already.
            }
        }
        return true;
    }

    /// <summary>The pid of the sweep that made an attempt (`.TRIAL.attempt-PID-GUID`), or null.</summary>
    public static int? AttemptSweepPid(string attempt)
    {
        string name = Path.GetFileName(attempt);
        int at = name.IndexOf(".attempt-", StringComparison.Ordinal);
        if (at < 0) return null;
        var parts = name[(at + ".attempt-".Length)..].Split('-');
        return parts.Length >= 1 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : null;
    }

    /// <summary>The parent pid of a process (from /proc/PID/stat), or null when unknown.</summary>
    public static int? ParentPid(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so parse after the last ')'.
            var rest = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return rest.Length > 1 && int.TryParse(rest[1], NumberStyles.None, CultureInfo.InvariantCulture, out int ppid) ? ppid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Pids of the processes running an attempt: a trial process names the attempt directory on its command line
    /// (<see cref="ProcessesNaming"/>); a trial worker (`nqm worker`) names only its sweep's trials directory, and the sweep
    /// records the worker's pid in the attempt's sweep.pid before it sends the trial, so the recorded pid counts when that
    /// process is a worker of this attempt's trials directory (a recycled pid naming something else never does). A worker
    /// whose sweep died exits by itself when its stdin closes; this finds one that has not yet.
    /// </summary>
    public static IReadOnlyList<int> ProcessesRunning(string attempt)
    {
        var pids = ProcessesNaming(attempt).ToList();
        string trialsRoot = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(attempt)) ?? "") ?? "";
        try
        {
            string recorded = Path.Combine(attempt, "sweep.pid");
            if (File.Exists(recorded)
                && int.TryParse(File.ReadAllText(recorded).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
                && pid != Environment.ProcessId && !pids.Contains(pid)
                && WorkerProtocol.IsWorkerOf(CommandLine(pid), trialsRoot))
                pids.Add(pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* attempt deleted meanwhile */ }
        return pids;
    }

    /// <summary>The arguments of a running process (from /proc/PID/cmdline), or none when it is gone.</summary>
    public static IReadOnlyList<string> CommandLine(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }

    /// <summary>Pids of the processes whose command line contains <paramref name="path"/>.</summary>
    public static IReadOnlyList<int> ProcessesNaming(string path)
    {
        var pids = new List<int>();
        if (!Directory.Exists("/proc")) return pids;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == Environment.ProcessId) continue;
            try
            {
                // Arguments are NUL-separated; the attempt path is one whole argument (--out PATH).
                if (File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0').Contains(path)) pids.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Exited while we looked, or not ours to read.
            }
        }
        return pids;
    }

    /// <summary>Reads a trial directory's trial.json (a <see cref="TrialRecord"/>) and curve.csv.</summary>
    /// <param name="dir">The trial directory.</param>
    /// <param name="tolerant">Return null instead of throwing on unreadable files (attempts of killed runs).</param>
    public static TrialLog? ReadLog(string dir, bool tolerant = false)
    {
        string path = Path.Combine(dir, "trial.json");
        try
        {
            if (!File.Exists(path))
                throw new SweepStoreException($"{path}: missing; the trial directory is incomplete (delete {dir} to rerun it).");
            var record = TrialJson.Read<TrialRecord>(path);
            if (record.Status == TrialStatus.Reached && record.StepsToTarget is null)
                throw new SweepStoreException($"{path}: status `reached` without `steps_to_target`.");
            return new TrialLog(record, ReadTrainLoss(Path.Combine(dir, "curve.csv")));
        }
        catch (Exception e) when (tolerant && e is SweepStoreException or JsonException or IOException or CsvHelperException or FormatException)
        {
            return null;
        }
        catch (Exception e) when (e is JsonException or CsvHelperException or FormatException)
        {
            throw new SweepStoreException($"{dir}: unreadable trial files ({e.Message}); delete the directory to run the trial again.", e);
        }
    }

    /// <summary>Accepts the snake_case names of docs/formats.md and the enum's own names.</summary>
    public static TrialStatus ParseStatus(string text, string source)
    {
        foreach (var v in Enum.GetValues<TrialStatus>())
            if (string.Equals(v.ToString(), text.Replace("_", ""), StringComparison.OrdinalIgnoreCase)) return v;
        throw new SweepStoreException($"{source}: unknown status \"{text}\" (expected one of running, reached, budget_exhausted, diverged, interrupted, crashed).");
    }

    static IReadOnlyList<(long, double)> ReadTrainLoss(string path) =>
        File.Exists(path)
            ? CurveFile.Read(path).Where(p => p.TrainLoss is not null).Select(p => (p.Step, p.TrainLoss!.Value)).ToList()
            : [];
}
