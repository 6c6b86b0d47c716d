using System.CommandLine;
using NqmValidate.Training.Sweeps;

namespace NqmValidate.Cli.Commands;

/// <summary>`nqm merge --out DIR SHARD...`: combines sweep directories (shards) into one.</summary>
public static class MergeCommand
{
    static readonly Argument<string[]> Sources = new("directories") { Description = "Sweep directories of one spec (e.g. shards).", Arity = ArgumentArity.OneOrMore };
    static readonly Option<string> Out = new("--out") { Description = "The merged sweep directory (created, or extended when it exists).", Required = true };

    public static Command Create()
    {
        var command = new Command("merge", "Combine sweep directories of one spec (cluster shards) into one, with its steps.csv and trials.csv.");
        command.Arguments.Add(Sources);
        command.Options.Add(Out);
        command.SetAction(parse =>
        {
            try
            {
                var summary = SweepMerge.Merge(parse.GetValue(Sources)!, parse.GetValue(Out)!);
                Console.WriteLine($"merged: {summary.TrialsCopied} trials copied, {summary.TrialsAlreadyThere} already there; " +
                                  $"{summary.Results.Count}/{summary.StudiesTotal} studies complete; tables in {Path.GetFullPath(parse.GetValue(Out)!)}");
                return summary.Results.Count == summary.StudiesTotal ? ExitCodes.Ok : ExitCodes.Failure;
            }
            catch (SweepStoreException e) { Console.Error.WriteLine(e.Message); return ExitCodes.BadInput; }
            catch (RunLockedException e) { Console.Error.WriteLine($"nqm merge: {e.Message}"); return ExitCodes.BadInput; }
        });
        return command;
    }
}
