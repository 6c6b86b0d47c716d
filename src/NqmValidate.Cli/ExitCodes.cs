namespace NqmValidate.Cli;

/// <summary>Exit codes of every `nqm` command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The work failed (a crash, a failed stage).</summary>
    public const int Failure = 1;
    /// <summary>Bad usage or bad input (spec, data files, arguments).</summary>
    public const int BadInput = 2;
    /// <summary>Interrupted by Ctrl-C / SIGTERM; partial results are kept.</summary>
    public const int Interrupted = 130;
}
