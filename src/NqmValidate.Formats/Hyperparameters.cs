namespace NqmValidate.Formats;

/// <summary>
/// Optimizer hyperparameters as steps.csv and trials.csv carry them (docs/formats.md): momentum, beta1 and epsilon
/// where the tables have always had them, then every other one by name after the table's own columns. beta2 is not
/// a column: the tables predate it as a hyperparameter, and listing it would change every Adam sweep's tables.
/// </summary>
public static class HyperparameterColumns
{
    public const string Momentum = "momentum", Beta1 = "beta1", Epsilon = "epsilon";

    /// <summary>The hyperparameters with a fixed place among a table's columns.</summary>
    public static readonly IReadOnlyList<string> Placed = [Momentum, Beta1, Epsilon];

    static readonly string[] NotColumns = ["beta2"];

    /// <summary>The further hyperparameter columns for these hyperparameter names (in the order given, each once).</summary>
    public static IReadOnlyList<string> Further(IEnumerable<string> names) =>
        names.Where(n => !Placed.Contains(n) && !NotColumns.Contains(n)).Distinct().ToList();

    /// <summary>The column of one hyperparameter: the row's value by name, empty where the row has none.</summary>
    internal static Column<TRow, double?> Of<TRow>(string name, Func<TRow, IReadOnlyDictionary<string, double>> hyperparameters) =>
        ColumnOf<TRow>.OptionalReal(name, r => hyperparameters(r).TryGetValue(name, out double v) ? v : null);

    /// <summary>
    /// The header's further hyperparameter columns: every column after none of the table's own. A column a newer
    /// writer added is therefore read as a hyperparameter; the writer and its readers share this project, so such a
    /// column is added here, beside its writer, and every reader knows it.
    /// </summary>
    internal static IReadOnlyList<string> FurtherIn<TRow>(TableContents table, IEnumerable<Column<TRow>> own)
    {
        var names = own.Select(c => c.Name).ToHashSet();
        return table.Header.Where(h => !names.Contains(h)).Distinct().ToList();
    }

    /// <summary>A row's hyperparameters as read: the placed and further columns with a value.</summary>
    internal static IReadOnlyDictionary<string, double> Read(TableRecord record, IEnumerable<string> names)
    {
        var values = new Dictionary<string, double>();
        foreach (var n in names)
            if (record.Get(ColumnOf<TableRecord>.OptionalReal(n, _ => null)) is { } v) values[n] = v;
        return values;
    }
}

/// <summary>A sweep table as read: its rows and the further hyperparameter columns its header has (in order), so it can be written back as it was.</summary>
public sealed record SweepTable<TRow>(IReadOnlyList<string> FurtherHyperparameters, IReadOnlyList<TRow> Rows);
