namespace NqmValidate.Nqm;

/// <summary>A spectrum (or its source text) is malformed: the message names the row/field and the fault.</summary>
public sealed class SpectrumFormatException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>An NQM request is outside the model's domain (e.g. negative learning rate, batch size &lt;= 0).</summary>
public sealed class NqmArgumentException(string message) : ArgumentException(message);
