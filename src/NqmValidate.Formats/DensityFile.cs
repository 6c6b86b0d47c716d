namespace NqmValidate.Formats;

/// <summary>
/// One row of the curvature stage's density.csv (docs/formats.md): a node of the stochastic Lanczos quadrature
/// spectral density of one operator (hessian or ggn); the weights sum to 1 per operator. <see cref="Probe"/> (which
/// probe gave the node) is absent in older files.
/// </summary>
public sealed record DensityRow(string Operator, double Eigenvalue, double Weight, int? Probe = null);

/// <summary>density.csv: its columns (one definition for its writer and its readers), its text, and its reader.</summary>
public static class DensityFile
{
    public const string FileName = "density.csv";

    /// <summary>density.csv has CRLF line ends (CsvHelper's default, which the curvature stage's writer has always used).</summary>
    public const string NewLine = "\r\n";

    public static readonly Column<DensityRow, string> Operator = ColumnOf<DensityRow>.Text("operator", r => r.Operator);
    public static readonly Column<DensityRow, double> Eigenvalue = ColumnOf<DensityRow>.Real("eigenvalue", r => r.Eigenvalue);
    public static readonly Column<DensityRow, double> Weight = ColumnOf<DensityRow>.Real("weight", r => r.Weight);
    public static readonly Column<DensityRow, int?> Probe = ColumnOf<DensityRow>.OptionalInt("probe", r => r.Probe);

    public static IReadOnlyList<Column<DensityRow>> Columns { get; } = [Operator, Eigenvalue, Weight, Probe];

    public static string Text(IEnumerable<DensityRow> rows) => Table.Text(Columns, rows, NewLine);

    /// <summary>Writes density.csv atomically.</summary>
    public static void Write(string path, IEnumerable<DensityRow> rows) => Table.Write(path, Columns, rows, NewLine);

    /// <summary>Reads density.csv; throws <see cref="TableFileException"/> naming the file, row and column of a fault.</summary>
    public static IReadOnlyList<DensityRow> Read(string path) =>
        Table.Read(path, Columns).Records.Select(r => new DensityRow(r.Get(Operator), r.Get(Eigenvalue), r.Get(Weight), r.Get(Probe))).ToList();
}
