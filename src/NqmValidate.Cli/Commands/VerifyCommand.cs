using System.CommandLine;
using System.Runtime.InteropServices;
using NqmValidate.Formats;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Sweeps;
using NqmValidate.Training.Verification;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm verify RUN_DIR [--sample N] [--scratch DIR]`: re-runs a deterministic sample of a run's trials from their
/// recorded configurations and says whether they repeat bit for bit. Exit 0 when they do, 1 when they differ,
/// 2 for bad input, 130 when interrupted.
/// </summary>
public static class VerifyCommand
{
    static readonly Argument<string> Dir = new("run-dir") { Description = "A run directory (of `nqm validate`, with sweep/) or a sweep directory." };
    static readonly Option<int?> Sample = new("--sample")
    {
        Description = "Trials to re-run (default: one per optimizer at the smallest and at the largest batch size; more are added in a fixed order).",
    };
    static readonly Option<string?> Scratch = new("--scratch") { Description = "Where the re-runs go (default: a new directory under the system's temp folder). Never inside the run." };

    public static Command Create()
    {
        var command = new Command("verify", "Re-run a sample of a finished run's trials and check that they repeat bit for bit (exit 0) or say how much they differ (exit 1).");
        command.Arguments.Add(Dir);
        command.Options.Add(Sample);
        command.Options.Add(Scratch);
        command.SetAction(parse =>
        {
            using var cancel = new CancellationTokenSource();
            void Stop(PosixSignalContext context) { context.Cancel = true; cancel.Cancel(); }
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            string runDir = parse.GetValue(Dir)!;
            string scratch = parse.GetValue(Scratch)
                ?? Path.Combine(Path.GetTempPath(), $"nqm-verify-{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(runDir)))}-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
            try
            {
                if (parse.GetValue(Sample) is < 1) throw new VerifyInputException("--sample: must be at least 1.");
                bool started = false;
                void Starting(TrialsRow _)
                {
                    if (!started) Console.WriteLine($"re-running into {scratch}");
                    started = true;
                }
                var report = new RunVerifier().RunAsync(new VerifyOptions(runDir, parse.GetValue(Sample), scratch),
                    t => Console.WriteLine("  " + t.Describe()), cancel.Token, Starting).GetAwaiter().GetResult();
                Console.WriteLine($"{report.Trials.Count(t => t.Identical)} of {report.Trials.Count} trials bit-identical.");
                Console.WriteLine(report.Conclusion());
                return report.ReproducesExactly ? ExitCodes.Ok : ExitCodes.Failure;
            }
            catch (VerifyInputException e) { Console.Error.WriteLine($"nqm verify: {e.Message}"); return ExitCodes.BadInput; }
            catch (OperationCanceledException) { Console.Error.WriteLine($"nqm verify: interrupted (re-runs so far in {scratch})."); return ExitCodes.Interrupted; }
            catch (Exception e) when (e is VerifyReplayException or TrialLaunchException or TorchLoadException)
            {
                Console.Error.WriteLine($"nqm verify: {e.Message}");
                return ExitCodes.Failure;
            }
        });
        return command;
    }
}
