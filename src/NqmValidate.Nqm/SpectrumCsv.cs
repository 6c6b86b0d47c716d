using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;

namespace NqmValidate.Nqm;

/// <summary>
/// Reads a spectrum from CSV text (docs/formats.md): columns <c>h, c, count</c> required, <c>s0</c>
/// optional (default 1), <c>precond</c> optional (a measured per-row preconditioner); when a
/// <c>layer</c> column exists only rows with <c>layer = total</c> are read. The caller opens the file.
/// </summary>
public static class SpectrumCsv
{
    /// <param name="reader">CSV text.</param>
    /// <param name="source">Name used in error messages (e.g. the file path).</param>
    public static Spectrum Read(TextReader reader, string source = "spectrum csv")
    {
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            TrimOptions = TrimOptions.Trim,
            PrepareHeaderForMatch = a => a.Header.Trim().ToLowerInvariant(),
            MissingFieldFound = null,
        };
        using var csv = new CsvReader(reader, config, leaveOpen: true);
        if (!csv.Read() || !csv.ReadHeader() || csv.HeaderRecord is null)
            throw new SpectrumFormatException($"{source}: empty file (expected a header with columns h, c, count)");
        var header = csv.HeaderRecord.Select(x => x.Trim().ToLowerInvariant()).ToArray();
        int Index(string name) => Array.IndexOf(header, name);
        foreach (var required in new[] { "h", "c", "count" })
            if (Index(required) < 0)
                throw new SpectrumFormatException($"{source}: missing required column '{required}' (header: {string.Join(",", header)})");
        int iLayer = Index("layer"), iS0 = Index("s0"), iP = Index("precond");
        var rows = new List<SpectrumRow>();
        while (csv.Read())
        {
            long line = csv.Parser.RawRow;
            if (iLayer >= 0 && !string.Equals((csv.GetField(iLayer) ?? "").Trim(), "total", StringComparison.OrdinalIgnoreCase)) continue;
            double Field(string name, double? fallback)
            {
                int i = Index(name);
                var text = i < csv.Parser.Count ? csv.GetField(i) : "";
                if (string.IsNullOrWhiteSpace(text))
                    return fallback ?? throw new SpectrumFormatException($"{source}, line {line}: column '{name}' is empty");
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                    throw new SpectrumFormatException($"{source}, line {line}: column '{name}' = '{text}' is not a number");
                return v;
            }
            double h = Field("h", null), c = Field("c", null), count = Field("count", null);
            double s0 = iS0 >= 0 ? Field("s0", 1.0) : 1.0;
            double? p = iP >= 0 ? Field("precond", double.NaN) : null;
            if (p is { } pv && double.IsNaN(pv)) p = null;
            rows.Add(new SpectrumRow(h, c, s0, count, p));
        }
        if (rows.Count == 0)
            throw new SpectrumFormatException(iLayer >= 0 ? $"{source}: no rows with layer = total" : $"{source}: no data rows");
        try { return new Spectrum(rows); }
        catch (SpectrumFormatException e) { throw new SpectrumFormatException($"{source}: {e.Message}", e); }
    }
}
