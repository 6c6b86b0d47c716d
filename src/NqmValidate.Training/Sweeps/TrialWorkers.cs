using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using NqmValidate.Training.Data;
using NqmValidate.Training.Trials;

namespace NqmValidate.Training.Sweeps;

/// <summary>How a sweep's trials are hosted (the spec's `trial_processes`).</summary>
public static class TrialHosting
{
    /// <summary>
    /// Persistent workers (<see cref="WorkerTrialRunner"/>, the default) or one process per trial
    /// (<see cref="ProcessTrialRunner"/>). The caller disposes the runner: that closes the workers' stdin and they exit.
    /// </summary>
    public static ITrialRunner Create(string mode, string executable, IReadOnlyList<string> prefixArguments) => mode switch
    {
        "worker" => new WorkerTrialRunner(executable, prefixArguments),
        "per-trial" => new ProcessTrialRunner(executable, prefixArguments),
        _ => throw new ArgumentException($"trial_processes: must be one of {string.Join(", ", SpecValidation.TrialProcessModes)} (got {mode}).", nameof(mode)),
    };

    /// <summary><see cref="Create"/> for the `nqm` beside the running assemblies.</summary>
    public static ITrialRunner ForCurrentNqm(string mode)
    {
        var (executable, prefix) = ProcessTrialRunner.CurrentNqm();
        return Create(mode, executable, prefix);
    }
}

/// <summary>
/// What a trial worker is for: the sweep's trials directory (its attempts are under it, and its command line names it so
/// that a later run's recovery can find it), the data set it holds in memory, and the thread count and device its trials
/// run with. Trials of another key never go to the worker: its data and its thread pools would be the wrong ones.
/// </summary>
public sealed record WorkerKey(string TrialsRoot, string DataDir, int Threads, string Device)
{
    /// <summary>The worker a trial needs: <paramref name="attempt"/> is its directory, `TRIALS/&lt;study&gt;/.&lt;trial&gt;.attempt-…`.</summary>
    public static WorkerKey For(TrialRequest request, string attempt)
    {
        var config = request.Config;
        string trials = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(attempt)))
                        ?? throw new ArgumentException($"{attempt}: an attempt directory has a study directory and a trials directory above it.", nameof(attempt));
        return new WorkerKey(trials, Path.GetFullPath(FashionMnist.ResolveDirectory(config.DataDir)), config.Threads, config.Device);
    }
}

/// <summary>
/// The line protocol between <see cref="WorkerTrialRunner"/> and `nqm worker`. The sweep writes one request per line on
/// the worker's stdin: a JSON object naming an attempt directory whose config.json the worker runs. The worker writes
/// the trial's own output on stderr, then <see cref="EndOfTrial"/> on stderr, then the reply <c>done CODE</c> on stdout,
/// CODE being the exit code `nqm train` would have had (0 finished, 2 bad input, 1 crashed, 130 interrupted). The marker
/// comes first so that the sweep, on reading the reply, can wait until every stderr line of that trial has gone to its
/// trial.log and none is attributed to the next trial.
/// </summary>
public static class WorkerProtocol
{
    /// <summary>The hidden `nqm` command that runs a worker.</summary>
    public const string Command = "worker";
    public const string TrialsOption = "--trials", DataDirOption = "--data-dir", ThreadsOption = "--threads", DeviceOption = "--device";
    const string ReplyPrefix = "nqm-worker: done ";
    /// <summary>Written on stderr after a trial's last line of output, before the reply.</summary>
    public const string EndOfTrial = "nqm-worker: end of trial";

    sealed record Request([property: JsonPropertyName("attempt")] string Attempt);
    sealed record WaveRequest([property: JsonPropertyName("stack")] IReadOnlyList<string> Attempts);
    sealed record MemberReply([property: JsonPropertyName("attempt")] string Attempt, [property: JsonPropertyName("code")] int Code);
    const string MemberReplyPrefix = "nqm-worker: member ";

    /// <summary>The arguments after `nqm` that start a worker for <paramref name="key"/>.</summary>
    public static IReadOnlyList<string> Arguments(WorkerKey key) =>
    [
        Command, TrialsOption, key.TrialsRoot, DataDirOption, key.DataDir,
        ThreadsOption, key.Threads.ToString(CultureInfo.InvariantCulture), DeviceOption, key.Device,
    ];

    /// <summary>One request line (JSON, so that any path, even one with a line break, stays on one line).</summary>
    public static string FormatRequest(string attempt) => JsonSerializer.Serialize(new Request(attempt));

    /// <summary>The attempt directory a request line names, or null when the line is not a request.</summary>
    public static string? ParseRequest(string line)
    {
        try { return JsonSerializer.Deserialize<Request>(line)?.Attempt is { Length: > 0 } a ? a : null; }
        catch (JsonException) { return null; }
    }

    public static string FormatReply(int exitCode) => ReplyPrefix + exitCode.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A wave: trials the worker trains at once as one stacked model (<see cref="Stacks.TrialStack"/>). The worker answers
    /// each member with a <see cref="FormatMemberReply"/> line as it ends (its output goes to its own trial.log), and after
    /// the last one with the plain reply of the wave (<see cref="FormatReply"/>).
    /// </summary>
    public static string FormatWaveRequest(IReadOnlyList<string> attempts) => JsonSerializer.Serialize(new WaveRequest(attempts));

    /// <summary>The attempt directories a wave request names, or null when the line is not one.</summary>
    public static IReadOnlyList<string>? ParseWaveRequest(string line)
    {
        if (!line.StartsWith("{\"stack\"", StringComparison.Ordinal)) return null;
        try { return JsonSerializer.Deserialize<WaveRequest>(line)?.Attempts is { Count: > 0 } a && a.All(x => x.Length > 0) ? a : null; }
        catch (JsonException) { return null; }
    }

    /// <summary>The reply for one member of a wave: the exit code `nqm train` would have had for it.</summary>
    public static string FormatMemberReply(string attempt, int exitCode) => MemberReplyPrefix + JsonSerializer.Serialize(new MemberReply(attempt, exitCode));

    /// <summary>(attempt, exit code) of a member reply, or null when the line is not one.</summary>
    public static (string Attempt, int Code)? ParseMemberReply(string line)
    {
        if (!line.StartsWith(MemberReplyPrefix, StringComparison.Ordinal)) return null;
        try { return JsonSerializer.Deserialize<MemberReply>(line.AsSpan(MemberReplyPrefix.Length)) is { Attempt.Length: > 0 } r ? (r.Attempt, r.Code) : null; }
        catch (JsonException) { return null; }
    }

    /// <summary>The exit code a reply line carries, or null when the line is not a reply.</summary>
    public static int? ParseReply(string line) =>
        line.StartsWith(ReplyPrefix, StringComparison.Ordinal)
        && int.TryParse(line.AsSpan(ReplyPrefix.Length), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int code) ? code : null;

    /// <summary>True when a command line (NUL-separated arguments, as in /proc/PID/cmdline) is a worker of <paramref name="trialsRoot"/>.</summary>
    public static bool IsWorkerOf(IReadOnlyList<string> arguments, string trialsRoot)
    {
        int command = -1;
        for (int i = 0; i < arguments.Count; i++)
            if (arguments[i] == Command) { command = i; break; }
        if (command < 0) return false;
        for (int i = command + 1; i + 1 < arguments.Count; i++)
            if (arguments[i] == TrialsOption && arguments[i + 1] == trialsRoot) return true;
        return false;
    }
}

/// <summary>
/// Runs trials in persistent worker processes (`nqm worker`), one per sweep job slot: a worker loads the data set once and
/// runs trials one after another from their config.json, so a short trial no longer pays for starting .NET and LibTorch
/// and decoding Fashion-MNIST. Each trial still has its own attempt directory, config.json and trial.log, and a worker is a
/// separate process, so a trial that crashes the native runtime kills only its worker: the trial ends with the worker's
/// exit code (recorded as crashed by the sweep, as for a trial process) and the next trial gets a fresh worker.
/// Workers start lazily, are never shared between data sets, thread counts, devices or sweep directories
/// (<see cref="WorkerKey"/>), run with the environment of a trial process (<see cref="ProcessTrialRunner.SetTrialEnvironment"/>),
/// get SIGTERM when their trial is cancelled (the trial records interrupted, as `nqm train` does) and exit when their stdin
/// closes: at <see cref="Dispose"/>, or when the sweep dies, so a dead sweep never leaves workers behind.
/// </summary>
public sealed class WorkerTrialRunner : ITrialRunner, IWaveRunner, IDisposable
{
    readonly string _executable;
    readonly IReadOnlyList<string> _prefix;
    readonly object _gate = new();
    readonly Dictionary<WorkerKey, Stack<TrialWorker>> _idle = new();
    readonly List<TrialWorker> _all = new();
    bool _disposed;

    /// <param name="executable">What to start (e.g. `dotnet`, or the `nqm` apphost).</param>
    /// <param name="prefixArguments">Arguments before `worker` (e.g. the path of nqm.dll).</param>
    public WorkerTrialRunner(string executable, IReadOnlyList<string> prefixArguments)
    {
        _executable = executable;
        _prefix = prefixArguments;
    }

    /// <summary>The runner for the `nqm` beside the running assemblies (as <see cref="ProcessTrialRunner.ForCurrentNqm"/>).</summary>
    public static WorkerTrialRunner ForCurrentNqm()
    {
        var (executable, prefix) = ProcessTrialRunner.CurrentNqm();
        return new WorkerTrialRunner(executable, prefix);
    }

    /// <summary>Worker processes started so far (crashed and retired ones included).</summary>
    public int WorkersStarted { get { lock (_gate) return _all.Count; } }

    public async Task<TrialExit> RunAsync(TrialRequest request, string directory, Action<int> started, CancellationToken cancel)
    {
        directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(directory);
        TrialJson.Write(Path.Combine(directory, ProcessTrialRunner.ConfigFileName), request.Config);
        var key = WorkerKey.For(request, directory);
        var worker = TakeIdle(key) ?? Start(key);
        if (!await worker.SendAsync(""))
        {
            // An idle worker that died meanwhile (killed from outside) has not seen this trial: take a fresh one.
            worker.Retire();
            worker = Start(key);
        }

        using var log = new StreamWriter(Path.Combine(directory, "trial.log"), append: false, new UTF8Encoding(false)) { AutoFlush = true };
        await log.WriteLineAsync($"$ {worker.CommandLine}  # worker pid {worker.Pid}, its trial {worker.TrialsRun + 1}: {directory}");
        var trial = worker.Begin(log);
        started(worker.Pid);
        bool cancelled = false;
        int? reply = null;
        try
        {
            if (await worker.SendAsync(WorkerProtocol.FormatRequest(directory)))
                reply = await worker.WaitAsync(trial, cancel);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            cancelled = true;
            // Ask the trial to stop cleanly (it records `interrupted` and the worker exits), then insist.
            reply = await worker.StopAsync(trial, TimeSpan.FromSeconds(10));
        }
        int exitCode;
        if (reply is { } code)
        {
            // The end-of-trial marker precedes the reply on the worker's side; waiting for it keeps this trial's last stderr
            // lines in its own log (bounded: a worker that dies right after replying closes stderr, which also ends the wait).
            await Task.WhenAny(trial.Ended, worker.Exited, Task.Delay(TimeSpan.FromSeconds(10)));
            exitCode = code;
        }
        else
        {
            await worker.Exited;
            exitCode = worker.ExitCode;
        }
        worker.End(trial);
        // A worker goes on only after a trial that finished or rejected its arguments; after a crash or an interruption
        // it exits by itself, and one that stopped answering is not trusted with another trial.
        if (!cancelled && reply is 0 or 2) Release(key, worker);
        else worker.Retire();
        return new TrialExit(exitCode, trial.StderrTail, cancelled);
    }

    /// <summary>
    /// Runs <paramref name="members"/> (one study's wave: same workload, model, batch size and stacked rule) in one worker
    /// as one stacked model. Returns one task per member, in order, completing with its exit as it ends; a worker that
    /// dies ends every member it had not answered with its exit code (recorded as crashed by the sweep). Each member keeps
    /// its attempt directory, config.json and trial.log.
    /// </summary>
    public IReadOnlyList<Task<TrialExit>> RunWave(IReadOnlyList<(TrialRequest Request, string Directory)> members, Action<int> started, CancellationToken cancel)
    {
        if (members.Count == 0) return [];
        var directories = members.Select(m => Path.GetFullPath(m.Directory)).ToList();
        foreach (var ((request, _), directory) in members.Zip(directories))
        {
            Directory.CreateDirectory(directory);
            TrialJson.Write(Path.Combine(directory, ProcessTrialRunner.ConfigFileName), request.Config);
        }
        var key = WorkerKey.For(members[0].Request, directories[0]);
        var wave = new Wave(directories);
        var done = RunWaveAsync(key, wave, started, cancel);
        return directories.Select(d => wave.ExitOf(d, done)).ToList();
    }

    async Task RunWaveAsync(WorkerKey key, Wave wave, Action<int> started, CancellationToken cancel)
    {
        var worker = TakeIdle(key) ?? Start(key);
        if (!await worker.SendAsync(""))
        {
            worker.Retire();
            worker = Start(key);
        }
        foreach (var d in wave.Attempts)
            await File.WriteAllTextAsync(Path.Combine(d, "trial.log"),
                $"$ {worker.CommandLine}  # worker pid {worker.Pid}, stacked with {wave.Attempts.Count - 1} other trial(s): {d}\n", cancel);
        var trial = worker.Begin(wave);
        started(worker.Pid);
        bool cancelled = false;
        int? reply = null;
        try
        {
            if (await worker.SendAsync(WorkerProtocol.FormatWaveRequest(wave.Attempts)))
                reply = await worker.WaitAsync(trial, cancel);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            cancelled = true;
            reply = await worker.StopAsync(trial, TimeSpan.FromSeconds(10));
        }
        if (reply is not null) await Task.WhenAny(trial.Ended, worker.Exited, Task.Delay(TimeSpan.FromSeconds(10)));
        else await worker.Exited;
        worker.End(trial);
        wave.Close(worker.ExitCode, trial.StderrTail, cancelled);
        if (!cancelled && reply is 0 && wave.AllAnswered(0, 2)) Release(key, worker);
        else worker.Retire();
    }

    TrialWorker? TakeIdle(WorkerKey key)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_idle.TryGetValue(key, out var stack)) return null;
            while (stack.TryPop(out var w))
                if (w.Alive) return w;
            return null;
        }
    }

    void Release(WorkerKey key, TrialWorker worker)
    {
        lock (_gate)
        {
            if (_disposed || !worker.Alive) { worker.Retire(); return; }
            if (!_idle.TryGetValue(key, out var stack)) _idle[key] = stack = new Stack<TrialWorker>();
            stack.Push(worker);
        }
    }

    TrialWorker Start(WorkerKey key)
    {
        var info = new ProcessStartInfo(_executable)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in _prefix.Concat(WorkerProtocol.Arguments(key))) info.ArgumentList.Add(a);
        // The same environment as a trial process: the OpenMP/MKL pools and the GC are what the numbers depend on.
        ProcessTrialRunner.SetTrialEnvironment(info, key.Threads);
        var worker = TrialWorker.Start(info, _executable);
        lock (_gate) _all.Add(worker);
        return worker;
    }

    /// <summary>Closes every worker's stdin (they exit) and waits for them; kills one that does not exit within 10 s.</summary>
    public void Dispose()
    {
        List<TrialWorker> all;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            all = [.. _all];
            _idle.Clear();
        }
        foreach (var w in all) w.Retire();
        foreach (var w in all) w.WaitOrKill(TimeSpan.FromSeconds(10));
    }

    /// <summary>The sweep's handle on one worker process: its pipes, and where its output goes.</summary>
    sealed class TrialWorker
    {
        readonly Process _process;
        readonly object _gate = new();
        readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
        readonly List<string> _between = new(); // output while no trial runs (goes to the next trial's log)
        Trial? _current;
        bool _stdoutClosed, _stderrClosed, _retired;

        public int Pid { get; }
        public string CommandLine { get; }
        public int TrialsRun { get; private set; }
        public Task Exited => _exited.Task;
        public bool Alive => !_retired && !_exited.Task.IsCompleted;
        public int ExitCode => _process.HasExited ? _process.ExitCode : -1;

        TrialWorker(Process process, string commandLine)
        {
            _process = process;
            Pid = process.Id;
            CommandLine = commandLine;
        }

        public static TrialWorker Start(ProcessStartInfo info, string executable)
        {
            var process = new Process { StartInfo = info, EnableRaisingEvents = true };
            TrialWorker? worker = null;
            process.OutputDataReceived += (_, e) => worker?.OnLine(e.Data, error: false);
            process.ErrorDataReceived += (_, e) => worker?.OnLine(e.Data, error: true);
            try
            {
                process.Start();
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new TrialLaunchException($"cannot start `{executable}`: {e.Message}", e);
            }
            worker = new TrialWorker(process, executable + " " + string.Join(" ", info.ArgumentList));
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _ = worker.WatchExitAsync();
            return worker;
        }

        async Task WatchExitAsync()
        {
            await _process.WaitForExitAsync(); // returns once the process exited and its redirected streams are drained
            _exited.TrySetResult();
        }

        void OnLine(string? line, bool error)
        {
            lock (_gate)
            {
                if (line is null)
                {
                    if (error) _stderrClosed = true; else _stdoutClosed = true;
                    if (_stdoutClosed) _current?.Replied.TrySetResult(null);
                    if (_stderrClosed) _current?.EndedSource.TrySetResult();
                    return;
                }
                if (!error && WorkerProtocol.ParseReply(line) is { } code) { _current?.Replied.TrySetResult(code); return; }
                if (!error && WorkerProtocol.ParseMemberReply(line) is var (attempt, memberCode)) { _current?.Wave?.Answer(attempt, memberCode); return; }
                if (error && line == WorkerProtocol.EndOfTrial) { _current?.EndedSource.TrySetResult(); return; }
                if (_current is null) { if (_between.Count < 200) _between.Add(line); return; }
                _current.Write(line, error);
            }
        }

        public Trial Begin(StreamWriter log) => Begin(new Trial(log));

        public Trial Begin(Wave wave) => Begin(new Trial(null, wave));

        Trial Begin(Trial trial)
        {
            lock (_gate)
            {
                foreach (var line in _between) trial.Write(line, error: true);
                _between.Clear();
                _current = trial;
                if (_stdoutClosed) trial.Replied.TrySetResult(null);
                if (_stderrClosed) trial.EndedSource.TrySetResult();
                return trial;
            }
        }

        public void End(Trial trial)
        {
            lock (_gate)
            {
                if (_current == trial) _current = null;
                TrialsRun++;
            }
        }

        /// <summary>Sends a request; false when the worker is gone (its stdin is a broken pipe).</summary>
        public async Task<bool> SendAsync(string line)
        {
            try
            {
                await _process.StandardInput.WriteLineAsync(line);
                await _process.StandardInput.FlushAsync();
                return true;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                return false;
            }
        }

        /// <summary>The trial's exit code from the reply, or null when the worker exited without one.</summary>
        public async Task<int?> WaitAsync(Trial trial, CancellationToken cancel)
        {
            await Task.WhenAny(trial.Replied.Task, _exited.Task).WaitAsync(cancel);
            return trial.Replied.Task.IsCompleted ? trial.Replied.Task.Result : null;
        }

        /// <summary>SIGTERM (the worker interrupts its trial, replies and exits), then SIGKILL after <paramref name="grace"/>.</summary>
        public async Task<int?> StopAsync(Trial trial, TimeSpan grace)
        {
            if (!_exited.Task.IsCompleted) _ = Kill(Pid, SigTerm);
            var done = await Task.WhenAny(trial.Replied.Task, _exited.Task, Task.Delay(grace));
            if (done == trial.Replied.Task) return trial.Replied.Task.Result;
            if (!_exited.Task.IsCompleted)
            {
                try { _process.Kill(entireProcessTree: true); }
                catch (InvalidOperationException) { /* exited meanwhile */ }
            }
            await _exited.Task;
            return trial.Replied.Task.IsCompleted ? trial.Replied.Task.Result : null;
        }

        /// <summary>Closes stdin: the worker finishes nothing more and exits.</summary>
        public void Retire()
        {
            lock (_gate)
            {
                if (_retired) return;
                _retired = true;
            }
            try { _process.StandardInput.Close(); }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException) { /* gone already */ }
        }

        public void WaitOrKill(TimeSpan grace)
        {
            if (_exited.Task.Wait(grace)) { _process.Dispose(); return; }
            try { _process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            _exited.Task.Wait(grace);
            _process.Dispose();
        }

        // SIGTERM rather than SIGINT: a sweep started in the background inherits an ignored SIGINT, and so would its workers.
        const int SigTerm = 15;

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        static extern int Kill(int pid, int signal);
    }

    /// <summary>
    /// The members of a wave and their answers. The worker writes each member's own lines to its trial.log; what it
    /// writes on stderr meanwhile (native warnings, a crash) goes to the log of every member still running.
    /// </summary>
    sealed class Wave(IReadOnlyList<string> attempts)
    {
        readonly Dictionary<string, TaskCompletionSource<int>> _answers = attempts.ToDictionary(a => a, _ => new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously));
        (int ExitCode, string Tail, bool Cancelled)? _closed;

        public IReadOnlyList<string> Attempts { get; } = attempts;

        public void Answer(string attempt, int code)
        {
            if (_answers.TryGetValue(attempt, out var answer)) answer.TrySetResult(code);
        }

        public bool AllAnswered(params int[] codes) =>
            _answers.Values.All(a => a.Task.IsCompletedSuccessfully && codes.Contains(a.Task.Result));

        /// <summary>Appends a worker line to the trial.log of every member not answered yet.</summary>
        public void Write(string line)
        {
            foreach (var (attempt, answer) in _answers)
                if (!answer.Task.IsCompleted)
                    try { File.AppendAllText(Path.Combine(attempt, "trial.log"), "[worker] " + line + "\n"); }
                    catch (IOException) { }
        }

        /// <summary>The wave is over: members not answered end with the worker's exit.</summary>
        public void Close(int exitCode, string tail, bool cancelled)
        {
            lock (_answers) _closed = (exitCode, tail, cancelled);
            foreach (var a in _answers.Values) a.TrySetCanceled();
        }

        public async Task<TrialExit> ExitOf(string attempt, Task waveDone)
        {
            var answer = _answers[attempt].Task;
            await Task.WhenAny(answer, waveDone);
            if (answer.IsCompletedSuccessfully)
            {
                // The wave's last answer ends only once the worker is back in the pool (or retired): the sweep frees the
                // wave's job slot when its last member ends, and a wave launched into that slot before the release would
                // start a worker more than the sweep's jobs.
                if (_answers.Values.All(a => a.Task.IsCompleted)) await waveDone;
                return new TrialExit(answer.Result, "", false);
            }
            await waveDone; // Close has run: every member not answered ends with the worker's exit
            var (exitCode, tail, cancelled) = _closed!.Value;
            return new TrialExit(exitCode, tail, cancelled);
        }
    }

    /// <summary>One trial's share of a worker's output: its trial.log and the last stderr lines (for a crash record).</summary>
    sealed class Trial(StreamWriter? log, Wave? wave = null)
    {
        public Wave? Wave { get; } = wave;
        readonly Queue<string> _tail = new();
        public readonly TaskCompletionSource<int?> Replied = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource EndedSource = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Ended => EndedSource.Task;

        public void Write(string line, bool error)
        {
            lock (_tail)
            {
                if (Wave is not null) Wave.Write(line);
                else
                    try { log!.WriteLine(line); }
                    catch (ObjectDisposedException) { return; } // a line after the trial's log was closed (a late native message)
                if (!error) return;
                _tail.Enqueue(line);
                if (_tail.Count > 20) _tail.Dequeue();
            }
        }

        public string StderrTail { get { lock (_tail) return string.Join("\n", _tail); } }
    }
}
