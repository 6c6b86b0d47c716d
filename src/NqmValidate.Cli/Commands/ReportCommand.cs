using System.CommandLine;
using NqmValidate.Reports;
using NqmValidate.Validation;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// `nqm report DIR...`: rebuilds report.md/report.html of each validation directory from its CSV files; with
/// `--combined OUT`, writes instead one page over all of them (OUT/combined.md, OUT/combined.html), one column per run.
/// </summary>
public static class ReportCommand
{
    static readonly Argument<DirectoryInfo[]> Directories = new("DIR")
    {
        Description = "Validation directories (the `validation/` folder of `nqm validate --out`, the run folder holding it, or the output of `nqm fit`).",
        Arity = ArgumentArity.OneOrMore,
    };

    static readonly Option<DirectoryInfo> Combined = new("--combined")
    {
        Description = "Write one page putting every DIR's verdicts, errors and critical batch sizes side by side into this folder (combined.md, combined.html); the runs' own reports are left as they are.",
    };

    public static Command Create()
    {
        var command = new Command("report", "Rebuild the report (report.md, report.html, PNG figures) from the CSV files of a validation directory, or combine several runs into one page.") { Directories, Combined };
        command.SetAction(parse =>
        {
            var targets = parse.GetValue(Directories)!.Select(Resolve).ToArray();
            var combined = parse.GetValue(Combined);
            try
            {
                if (combined is not null)
                {
                    Directory.CreateDirectory(combined.FullName);
                    CombinedReport.Build(targets).Save(combined.FullName, CombinedReport.BaseName);
                    Console.WriteLine(Path.Combine(combined.FullName, CombinedReport.BaseName + ".html"));
                    return ExitCodes.Ok;
                }
                foreach (var target in targets)
                {
                    ValidationReport.Build(target).Save(target);
                    Console.WriteLine(Path.Combine(target, "report.html"));
                    foreach (var line in ValidationReport.Summary(target)) Console.WriteLine(line);
                }
                return ExitCodes.Ok;
            }
            catch (RunFileException e)
            {
                Console.Error.WriteLine($"nqm report: {e.Message}");
                return ExitCodes.BadInput;
            }
        });
        return command;
    }

    /// <summary>A validation directory as given, or the `validation/` folder inside a run folder.</summary>
    static string Resolve(DirectoryInfo dir) =>
        File.Exists(Path.Combine(dir.FullName, ValidationFileNames.Comparison)) ? dir.FullName : Path.Combine(dir.FullName, "validation");
}
