using System.CommandLine;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Cli.Commands;

/// <summary>`nqm status DIR`: done / running / failed counts of a sweep directory.</summary>
public static class StatusCommand
{
    static readonly Argument<string> Dir = new("directory") { Description = "A sweep directory." };
    static readonly Option<bool> PerStudy = new("--studies") { Description = "One line per study." };

    public static Command Create()
    {
        var command = new Command("status", "Show how far a sweep directory is: studies complete, trials finished, running, crashed, pending.");
        command.Arguments.Add(Dir);
        command.Options.Add(PerStudy);
        command.SetAction(parse =>
        {
            try
            {
                var r = SweepStatus.Read(parse.GetValue(Dir)!);
                Console.WriteLine($"{r.Name}: studies {r.StudiesComplete}/{r.Studies.Count} complete; trials {r.TrialsFinished}/{r.TrialsTotal} finished " +
                                  $"({r.TrialsCrashed} crashed), {r.TrialsRunning} running, {r.TrialsPending} pending" +
                                  (r.Studies.Sum(s => s.Stale) is > 0 and var stale ? $", {stale} stale attempts (cleaned by the next run)" : ""));
                if (parse.GetValue(PerStudy))
                    foreach (var s in r.Studies)
                        Console.WriteLine($"  {s.Study,-22} {s.Finished,4}/{s.Trials,-4} finished, {s.Reached,4} reached, {s.Crashed} crashed, {s.Running} running" +
                                          (s.Complete ? $"  steps_to_target {s.StepsToTarget?.ToString() ?? "-"}" : ""));
                return ExitCodes.Ok;
            }
            catch (SweepStoreException e) { Console.Error.WriteLine(e.Message); return ExitCodes.BadInput; }
        });
        return command;
    }
}
