using System.CommandLine;
using NqmValidate.Reports;
using NqmValidate.Validation;

namespace NqmValidate.Cli.Commands;

/// <summary>`nqm report DIR`: rebuilds report.md/report.html of a validation directory from its CSV files.</summary>
public static class ReportCommand
{
    static readonly Argument<DirectoryInfo> Directory = new("DIR") { Description = "A validation directory (the `validation/` folder of `nqm validate --out`, or the output of `nqm fit`)." };

    public static Command Create()
    {
        var command = new Command("report", "Rebuild the report (report.md, report.html, PNG figures) from the CSV files of a validation directory.") { Directory };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(Directory)!;
            string target = File.Exists(Path.Combine(dir.FullName, ValidationFileNames.Comparison)) ? dir.FullName : Path.Combine(dir.FullName, "validation");
            try
            {
                ValidationReport.Build(target).Save(target);
                Console.WriteLine(Path.Combine(target, "report.html"));
                foreach (var line in ValidationReport.Summary(target)) Console.WriteLine(line);
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
}
