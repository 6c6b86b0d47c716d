using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using NqmValidate.Common;

namespace NqmValidate.Formats;

/// <summary>A table file that cannot be read as its format says: missing, malformed, a column missing, a cell unreadable. The message names the file (and row and column).</summary>
public sealed class TableFileException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// One column of a table file: its header name, the cell a row writes into it, and whether a reader needs it.
/// A table's writer and its readers use the same column objects, so a header and a reader cannot drift apart.
/// </summary>
public abstract class Column<TRow>(string name, bool required)
{
    public string Name { get; } = name;

    /// <summary>A file without this column is not this table (the format's original columns); any other may be absent in older files.</summary>
    public bool Required { get; } = required;

    /// <summary>The cell's text for <paramref name="row"/> (invariant culture; empty = no value).</summary>
    public abstract string Cell(TRow row);
}

/// <summary>A column whose cells hold values of type <typeparamref name="TValue"/>.</summary>
public sealed class Column<TRow, TValue>(string name, bool required, Func<TRow, TValue> get, Func<TValue, string> format, Func<string?, TValue> parse)
    : Column<TRow>(name, required)
{
    public override string Cell(TRow row) => format(get(row));

    /// <summary>The value of a cell as read; <paramref name="text"/> is null when the cell is empty or the column absent. Throws <see cref="CellException"/>.</summary>
    internal TValue Parse(string? text) => parse(text);
}

/// <summary>A cell that cannot be read; <see cref="TableRecord"/> adds the file, row and column.</summary>
sealed class CellException(string message) : Exception(message);

/// <summary>
/// The column kinds of the project's tables: numbers in the invariant culture, doubles in their shortest
/// round-trip form ("R"), an empty cell for no value.
/// </summary>
public static class ColumnOf<TRow>
{
    public static Column<TRow, string> Text(string name, Func<TRow, string> get) =>
        new(name, true, get, v => v, t => t ?? "");

    /// <summary>A count; <paramref name="whenEmpty"/> stands in for an empty cell or, when the column is not required, an absent one.</summary>
    public static Column<TRow, int> Int(string name, Func<TRow, int> get, bool required = true, int? whenEmpty = null) =>
        new(name, required, get, v => Cells.Whole(v), t => checked((int?)Cells.ParseWhole(t)) ?? whenEmpty ?? throw new CellException("value required."));

    public static Column<TRow, long> Long(string name, Func<TRow, long> get, bool required = true, long? whenEmpty = null) =>
        new(name, required, get, v => Cells.Whole(v), t => Cells.ParseWhole(t) ?? whenEmpty ?? throw new CellException("value required."));

    public static Column<TRow, int?> OptionalInt(string name, Func<TRow, int?> get, bool required = false) =>
        new(name, required, get, v => Cells.Whole(v), t => checked((int?)Cells.ParseWhole(t)));

    public static Column<TRow, long?> OptionalLong(string name, Func<TRow, long?> get, bool required = false) =>
        new(name, required, get, v => Cells.Whole(v), Cells.ParseWhole);

    public static Column<TRow, double> Real(string name, Func<TRow, double> get) =>
        new(name, true, get, v => Cells.Real(v), t => Cells.ParseReal(t) ?? throw new CellException("value required."));

    public static Column<TRow, double?> OptionalReal(string name, Func<TRow, double?> get, bool required = false) =>
        new(name, required, get, Cells.Real, Cells.ParseReal);
}

static class Cells
{
    public static string Whole(long? x) => x?.ToString(CultureInfo.InvariantCulture) ?? "";
    public static string Real(double? x) => x?.ToString("R", CultureInfo.InvariantCulture) ?? "";

    public static double? ParseReal(string? text) =>
        text is null ? null
        : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
        : throw new CellException($"'{text}' is not a number.");

    /// <summary>A whole number; "64.0" or "1e3" are read too (tables written by other tools), "64.5" is an error, not a truncation.</summary>
    public static long? ParseWhole(string? text)
    {
        if (text is null) return null;
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v)) return v;
        double d = ParseReal(text)!.Value;
        return d == Math.Floor(d) && Math.Abs(d) < 9e18 ? (long)d : throw new CellException($"'{text}' is not a whole number.");
    }
}

/// <summary>One data row of a table file as read: its cells by (trimmed, lower-case) column name.</summary>
public sealed class TableRecord
{
    readonly string _path;
    readonly int _index;
    readonly IReadOnlyDictionary<string, string> _cells;

    internal TableRecord(string path, int index, IReadOnlyDictionary<string, string> cells) => (_path, _index, _cells) = (path, index, cells);

    /// <summary>The value of <paramref name="column"/> in this row (an absent column reads as an empty cell).</summary>
    public TValue Get<TRow, TValue>(Column<TRow, TValue> column)
    {
        string? text = _cells.TryGetValue(column.Name, out var t) && !string.IsNullOrWhiteSpace(t) ? t : null;
        try { return column.Parse(text); }
        catch (Exception e) when (e is CellException or OverflowException)
        {
            throw new TableFileException($"{_path}: row {_index + 2}, column {column.Name}: {(e is CellException ? e.Message : $"'{text}' is out of range.")}", e);
        }
    }
}

/// <summary>A table file as read: its header (trimmed, lower case) and its rows.</summary>
public sealed record TableContents(string Path, IReadOnlyList<string> Header, IReadOnlyList<TableRecord> Records);

/// <summary>Writing and reading the project's table files (docs/formats.md: comma-separated, header row, invariant culture).</summary>
public static class Table
{
    /// <summary>The file's text: the columns' names, then one line per row with each column's cell.</summary>
    public static string Text<TRow>(IReadOnlyList<Column<TRow>> columns, IEnumerable<TRow> rows, string newLine = "\n")
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = new CsvWriter(text, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = newLine }, leaveOpen: true))
        {
            foreach (var c in columns) csv.WriteField(c.Name);
            csv.NextRecord();
            foreach (var r in rows)
            {
                foreach (var c in columns) csv.WriteField(c.Cell(r));
                csv.NextRecord();
            }
        }
        return text.ToString();
    }

    /// <summary>Writes <see cref="Text{TRow}"/> atomically (UTF-8, no byte-order mark).</summary>
    public static void Write<TRow>(string path, IReadOnlyList<Column<TRow>> columns, IEnumerable<TRow> rows, string newLine = "\n") =>
        AtomicFile.WriteAllText(path, Text(columns, rows, newLine));

    /// <summary>Reads a table whose header must hold every required one of <paramref name="columns"/>; headers are matched trimmed and in lower case.</summary>
    public static TableContents Read<TRow>(string path, IEnumerable<Column<TRow>> columns)
    {
        if (!File.Exists(path)) throw new TableFileException($"{path}: file not found.");
        try
        {
            using var reader = new StreamReader(path);
            using var csv = new CsvReader(reader, new CsvConfiguration(CultureInfo.InvariantCulture) { MissingFieldFound = null, HeaderValidated = null });
            if (!csv.Read() || !csv.ReadHeader())
                throw new TableFileException($"{path}: empty file (no header row).");
            string[] header = csv.HeaderRecord!.Select(h => h.Trim().ToLowerInvariant()).ToArray();
            var missing = columns.Where(c => c.Required && !header.Contains(c.Name)).Select(c => c.Name).ToArray();
            if (missing.Length > 0)
                throw new TableFileException($"{path}: missing column(s) {string.Join(", ", missing)}; found {string.Join(", ", header)}.");
            var records = new List<TableRecord>();
            while (csv.Read())
            {
                var cells = new Dictionary<string, string>(header.Length);
                for (int i = 0; i < header.Length; i++) cells[header[i]] = csv.GetField(i) ?? "";
                records.Add(new TableRecord(path, records.Count, cells));
            }
            return new TableContents(path, header, records);
        }
        catch (CsvHelperException e)
        {
            throw new TableFileException($"{path}: malformed CSV ({e.Message.Split('\n')[0]}).", e);
        }
    }
}
