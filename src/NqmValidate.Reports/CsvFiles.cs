using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using NqmValidate.Common;

namespace NqmValidate.Reports;

/// <summary>Thrown when a CSV file of a run is missing, malformed or lacks a column.</summary>
public sealed class RunFileException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>CSV reading and writing with the project's conventions: invariant culture, snake_case headers, atomic writes.</summary>
public static class CsvFiles
{
    static CsvConfiguration Config => new(CultureInfo.InvariantCulture)
    {
        PrepareHeaderForMatch = args => args.Header.Trim().ToLowerInvariant(),
        MissingFieldFound = null,
        HeaderValidated = null,
    };

    /// <summary>Writes records with the header given by their ClassMap (or snake_case property names), atomically.</summary>
    public static void Write<T>(string path, IEnumerable<T> records, ClassMap<T>? map = null)
    {
        AtomicFile.Write(path, writer =>
        {
            using var csv = new CsvWriter(writer, new CsvConfiguration(CultureInfo.InvariantCulture), leaveOpen: true);
            csv.Context.RegisterClassMap(map ?? new SnakeCaseMap<T>());
            csv.WriteRecords(records);
        });
    }

    /// <summary>Reads typed records written by <see cref="Write{T}"/> (headers matched ignoring case and underscores).</summary>
    public static IReadOnlyList<T> Read<T>(string path)
    {
        if (!File.Exists(path)) throw new RunFileException($"{path}: file not found.");
        try
        {
            using var reader = new StreamReader(path);
            using var csv = new CsvReader(reader, new CsvConfiguration(CultureInfo.InvariantCulture)
            {
                PrepareHeaderForMatch = args => args.Header.Replace("_", "").ToLowerInvariant(),
            });
            return csv.GetRecords<T>().ToList();
        }
        catch (CsvHelperException e)
        {
            throw new RunFileException($"{path}: malformed CSV ({e.Message.Split('\n')[0]}).", e);
        }
    }

    /// <summary>Reads every row as a dictionary from lower-case column name to raw text.</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, string>> ReadRows(string path, params string[] requiredColumns)
    {
        if (!File.Exists(path)) throw new RunFileException($"{path}: file not found.");
        try
        {
            using var reader = new StreamReader(path);
            using var csv = new CsvReader(reader, Config);
            if (!csv.Read() || !csv.ReadHeader())
                throw new RunFileException($"{path}: empty file (no header row).");
            string[] header = csv.HeaderRecord!.Select(h => h.Trim().ToLowerInvariant()).ToArray();
            var missing = requiredColumns.Where(c => !header.Contains(c)).ToArray();
            if (missing.Length > 0)
                throw new RunFileException($"{path}: missing column(s) {string.Join(", ", missing)}; found {string.Join(", ", header)}.");
            var rows = new List<IReadOnlyDictionary<string, string>>();
            while (csv.Read())
            {
                var row = new Dictionary<string, string>(header.Length);
                for (int i = 0; i < header.Length; i++) row[header[i]] = csv.GetField(i) ?? "";
                rows.Add(row);
            }
            return rows;
        }
        catch (CsvHelperException e)
        {
            throw new RunFileException($"{path}: malformed CSV ({e.Message.Split('\n')[0]}).", e);
        }
    }

    /// <summary>Parses an optional number ("" → null) with the invariant culture; names file, row and column on failure.</summary>
    public static double? OptionalDouble(IReadOnlyDictionary<string, string> row, string column, string path, int rowIndex)
    {
        if (!row.TryGetValue(column, out var text) || string.IsNullOrWhiteSpace(text)) return null;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)) return v;
        throw new RunFileException($"{path}: row {rowIndex + 2}, column {column}: '{text}' is not a number.");
    }

    public static double RequiredDouble(IReadOnlyDictionary<string, string> row, string column, string path, int rowIndex) =>
        OptionalDouble(row, column, path, rowIndex)
        ?? throw new RunFileException($"{path}: row {rowIndex + 2}, column {column}: value required.");

    /// <summary>A map whose headers are the snake_case forms of the property names.</summary>
    public sealed class SnakeCaseMap<T> : ClassMap<T>
    {
        public SnakeCaseMap()
        {
            AutoMap(CultureInfo.InvariantCulture);
            foreach (var member in MemberMaps)
                member.Name(SnakeCase(member.Data.Member!.Name));
        }
    }

    public static string SnakeCase(string name) =>
        string.Concat(name.Select((ch, i) => i > 0 && char.IsUpper(ch) && !char.IsUpper(name[i - 1]) ? "_" + char.ToLowerInvariant(ch) : char.ToLowerInvariant(ch).ToString()));
}
