using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Channels;
using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Stacks;
using NqmValidate.Training.Workloads;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Trials;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm worker` (hidden; started by a sweep, see <see cref="WorkerTrialRunner"/>): runs trials one after another in one
/// process, the data set loaded once. Each request on stdin names an attempt directory (<see cref="WorkerProtocol"/>); the
/// worker runs its config.json exactly as `nqm train --config DIR/config.json --out DIR --quiet` would (same code, same
/// files, same exit codes, the trial's output on stderr) and answers on stdout. It exits when stdin closes (between trials
/// at the end of a sweep; during a trial when the sweep died: the trial then stops as interrupted, so a dead sweep leaves
/// no worker behind), on SIGINT/SIGTERM (after the running trial has stopped and written its files, as `nqm train` does),
/// and after a trial that crashed (a fresh worker is safer than a runtime in an unknown state).
/// </summary>
public static class WorkerCommand
{
    static readonly Option<string> Trials = new(WorkerProtocol.TrialsOption) { Description = "The sweep's trials directory: every attempt this worker runs is below it.", Required = true };
    static readonly Option<string> DataDir = new(WorkerProtocol.DataDirOption) { Description = "The Fashion-MNIST directory of every trial this worker runs.", Required = true };
    static readonly Option<int> Threads = new(WorkerProtocol.ThreadsOption) { Description = "The thread count of every trial this worker runs.", Required = true };
    static readonly Option<string> Device = new(WorkerProtocol.DeviceOption) { Description = "The device of every trial this worker runs.", DefaultValueFactory = _ => "cpu" };

    public static Command Create()
    {
        var command = new Command(WorkerProtocol.Command, "Run trials one after another for a sweep (requests on stdin; started by `nqm sweep`).") { Hidden = true };
        foreach (var o in new Option[] { Trials, DataDir, Threads, Device }) command.Options.Add(o);
        command.SetAction(Run);
        return command;
    }

    static int Run(ParseResult parse)
    {
        string trialsRoot = Path.GetFullPath(parse.GetValue(Trials)!);
        string dataDir = Path.GetFullPath(parse.GetValue(DataDir)!);
        int threads = parse.GetValue(Threads);
        string device = parse.GetValue(Device)!;
        if (threads < 1)
        {
            Console.Error.WriteLine($"nqm worker: --threads must be at least 1 (got {threads}).");
            return ExitCodes.BadInput;
        }

        // stdout carries only the replies; whatever a trial prints goes to stderr, which the sweep routes to its trial.log.
        var replies = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        Console.SetOut(Console.Error);

        using var stop = new CancellationTokenSource();
        void Stop(PosixSignalContext context) { context.Cancel = true; stop.Cancel(); }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

        // Requests are read on their own thread so that the end of stdin is seen while a trial runs: the sweep is gone.
        var requests = Channel.CreateUnbounded<string>();
        var reader = new Thread(() =>
        {
            try
            {
                using var input = new StreamReader(Console.OpenStandardInput(), new UTF8Encoding(false));
                while (input.ReadLine() is { } line)
                    if (line.Length > 0) requests.Writer.TryWrite(line);
            }
            catch (IOException) { }
            requests.Writer.TryComplete();
            stop.Cancel();
        }) { IsBackground = true, Name = "worker requests" };
        reader.Start();

        var host = new Host(trialsRoot, dataDir, threads, device);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                string line;
                try { line = requests.Reader.ReadAsync(stop.Token).AsTask().GetAwaiter().GetResult(); }
                catch (Exception e) when (e is OperationCanceledException or ChannelClosedException) { break; }
                int code = WorkerProtocol.ParseWaveRequest(line) is { } wave
                    ? host.RunWave(wave, stop.Token, (attempt, c) => replies.WriteLine(WorkerProtocol.FormatMemberReply(attempt, c)))
                    : host.RunOne(line, stop.Token);
                Console.Error.WriteLine(WorkerProtocol.EndOfTrial);
                Console.Error.Flush();
                replies.WriteLine(WorkerProtocol.FormatReply(code));
                if (code is not (ExitCodes.Ok or ExitCodes.BadInput)) break;
                // Everything of the trial is disposed; collect what only finalizers release before the next one starts.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
            }
        }
        finally
        {
            host.Dispose();
        }
        return ExitCodes.Ok;
    }

    /// <summary>The worker's state between trials: the data set, loaded by the first trial and kept.</summary>
    sealed class Host(string trialsRoot, string dataDir, int threads, string device) : IDisposable
    {
        FashionMnistData? _data;
        int _trials;

        /// <summary>Runs the trial of one request; returns the exit code `nqm train` would have returned.</summary>
        public int RunOne(string line, CancellationToken stop)
        {
            string? attempt = WorkerProtocol.ParseRequest(line);
            if (attempt is null)
            {
                Console.Error.WriteLine($"nqm worker: not a request: {line}");
                return ExitCodes.BadInput;
            }
            attempt = Path.GetFullPath(attempt);
            // Recovery finds a worker through the trials directory on its command line: it must hold every attempt run here.
            if (!attempt.StartsWith(trialsRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                Console.Error.WriteLine($"nqm worker: {attempt} is not below this worker's trials directory {trialsRoot}.");
                return ExitCodes.BadInput;
            }
            _trials++;
            try
            {
                var started = DateTime.UtcNow;
                var config = TrialConfig.Load(Path.Combine(attempt, ProcessTrialRunner.ConfigFileName));
                var resolved = config.Resolve();
                if (resolved.DataDir != dataDir || resolved.Threads != threads || resolved.Device != device)
                    throw new TrialConfigException(
                        $"this worker runs trials on {dataDir} with {threads} thread(s) on {device}; the trial in {attempt} asks for " +
                        $"{resolved.DataDir} with {resolved.Threads} thread(s) on {resolved.Device} (it needs a worker of its own).");
                if (threads > Environment.ProcessorCount)
                    Console.Error.WriteLine($"note: --threads {threads} on {Environment.ProcessorCount} cores: oversubscribed threads make training much slower.");
                // As `nqm train`: the trial's threads are set before the machine record and before anything runs.
                TorchRuntime.Initialize(threads);
                double loadSeconds = 0;
                if (_data is null)
                {
                    var clock = Stopwatch.StartNew();
                    _data = FashionMnist.Load(dataDir, new FashionMnistOptions(Device: TorchRuntime.ResolveDevice(device)));
                    loadSeconds = clock.Elapsed.TotalSeconds;
                }
                string[] commandLine = [.. Environment.GetCommandLineArgs(), "<", WorkerProtocol.FormatRequest(attempt)];
                var result = TrialRunner.RunToDirectory(config, _data, loadSeconds, started, attempt, stop,
                    observer: null, commandLine, MachineProvenance.Current());
                Console.Error.WriteLine(TrainCommand.Summary(result.Record, attempt));
                return result.Record.Status == TrialStatus.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
            }
            catch (Exception e) when (TrainCommand.IsBadInput(e))
            {
                Console.Error.WriteLine($"nqm train: {e.Message}");
                return ExitCodes.BadInput;
            }
            catch (Exception e)
            {
                // As `nqm train` under NqmApp: one line, the trace in a log in the trial's directory.
                string log = Directory.Exists(attempt) ? NqmApp.WriteCrashLog(attempt, Environment.GetCommandLineArgs(), e) : "no log";
                Console.Error.WriteLine($"nqm worker: trial {_trials} failed: {e.Message.ReplaceLineEndings(" ")} (trace: {log})");
                return ExitCodes.Failure;
            }
        }

        /// <summary>
        /// Runs a wave: the trials of <paramref name="attempts"/> trained at once as one stacked model (<see cref="TrialStack"/>),
        /// each into its own directory with the files and the exit code `nqm train` would have given it, answered through
        /// <paramref name="answer"/> as it ends. Returns Ok, or Failure when a member crashed (the worker then exits).
        /// </summary>
        public int RunWave(IReadOnlyList<string> attempts, CancellationToken stop, Action<string, int> answer)
        {
            var members = new List<(string Attempt, TrialRunner.TrialDirectory Files)>();
            bool crashed = false;
            void Crash(string attempt, TrialRunner.TrialDirectory? files, Exception e)
            {
                crashed = true;
                files?.Crashed(e);
                string log = Directory.Exists(attempt) ? NqmApp.WriteCrashLog(attempt, Environment.GetCommandLineArgs(), e) : "no log";
                AppendLog(attempt, $"nqm worker: stacked trial failed: {e.Message.ReplaceLineEndings(" ")} (trace: {log})");
                answer(attempt, ExitCodes.Failure);
            }
            foreach (var raw in attempts)
            {
                string attempt = Path.GetFullPath(raw);
                _trials++;
                try
                {
                    if (!attempt.StartsWith(trialsRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                        throw new TrialConfigException($"{attempt} is not below this worker's trials directory {trialsRoot}.");
                    var started = DateTime.UtcNow;
                    var config = TrialConfig.Load(Path.Combine(attempt, ProcessTrialRunner.ConfigFileName));
                    var data = Data(config, out double loadSeconds);
                    string[] commandLine = [.. Environment.GetCommandLineArgs(), "<", WorkerProtocol.FormatWaveRequest(attempts)];
                    members.Add((attempt, new TrialRunner.TrialDirectory(config, data, loadSeconds, started, attempt, commandLine, MachineProvenance.Current())));
                }
                catch (Exception e) when (TrainCommand.IsBadInput(e))
                {
                    AppendLog(attempt, $"nqm train: {e.Message}");
                    answer(attempt, ExitCodes.BadInput);
                }
                catch (Exception e)
                {
                    Crash(attempt, null, e);
                }
            }
            if (members.Count == 0) return crashed ? ExitCodes.Failure : ExitCodes.Ok;
            using var stack = new TrialStack(new FashionMnistWorkload(_data!), TorchRuntime.ResolveDevice(device), members.Count);
            var running = new HashSet<string>();
            foreach (var (attempt, files) in members)
            {
                try
                {
                    stack.Add(files.Config, outcome =>
                    {
                        running.Remove(attempt);
                        if (outcome.Error is { } error) { Crash(attempt, files, error); return; }
                        var record = files.Finished(outcome.Result!).Record;
                        AppendLog(attempt, TrainCommand.Summary(record, attempt));
                        answer(attempt, record.Status == TrialStatus.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok);
                    }, cancel: stop);
                    running.Add(attempt);
                }
                catch (Exception e) when (TrainCommand.IsBadInput(e) || e is NotSupportedException or ArgumentException)
                {
                    AppendLog(attempt, $"nqm train: {e.Message}");
                    answer(attempt, ExitCodes.BadInput);
                }
            }
            try
            {
                while (stack.Step()) { }
            }
            catch (Exception e)
            {
                // The stacked update itself failed: every member still training crashed with it.
                foreach (var (attempt, files) in members.Where(m => running.Contains(m.Attempt))) Crash(attempt, files, e);
            }
            return crashed ? ExitCodes.Failure : ExitCodes.Ok;
        }

        /// <summary>The data set of a trial (loaded by the first; <paramref name="loadSeconds"/> is 0 after), checked against this worker's.</summary>
        FashionMnistData Data(TrialConfig config, out double loadSeconds)
        {
            var resolved = config.Resolve();
            if (resolved.DataDir != dataDir || resolved.Threads != threads || resolved.Device != device)
                throw new TrialConfigException(
                    $"this worker runs trials on {dataDir} with {threads} thread(s) on {device}; a trial asks for " +
                    $"{resolved.DataDir} with {resolved.Threads} thread(s) on {resolved.Device} (it needs a worker of its own).");
            TorchRuntime.Initialize(threads);
            loadSeconds = 0;
            if (_data is null)
            {
                var clock = Stopwatch.StartNew();
                _data = FashionMnist.Load(dataDir, new FashionMnistOptions(Device: TorchRuntime.ResolveDevice(device)));
                loadSeconds = clock.Elapsed.TotalSeconds;
            }
            return _data;
        }

        /// <summary>A line for one member's trial.log only (the worker's stderr goes to every running member's log).</summary>
        static void AppendLog(string attempt, string line)
        {
            try { if (Directory.Exists(attempt)) File.AppendAllText(Path.Combine(attempt, "trial.log"), line + "\n"); }
            catch (IOException) { }
        }

        public void Dispose() => _data?.Dispose();
    }
}
