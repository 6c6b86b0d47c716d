namespace NqmValidate.Common;

/// <summary>
/// A spec, a section of it or a command-line value that cannot be used; the message names the file or flag,
/// the field and the fault (and, where there is a choice, the allowed values). One type for every stage
/// (the sweep's spec and the fit's section alike), so that the CLI maps it to one exit code (2, bad input).
/// </summary>
public sealed class SpecException(string message, Exception? inner = null) : Exception(message, inner);
