using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using NqmValidate.Common;

namespace NqmValidate.Training.Trials;

/// <summary>curve.csv: one row per logged step (docs/formats.md); empty cell = not evaluated at that step.</summary>
public static class CurveFile
{
    public const string FileName = "curve.csv";

    static readonly string[] Header =
        ["step", "examples_seen", "train_seconds", "minibatch_loss", "train_loss", "validation_loss", "validation_error", "learning_rate"];

    /// <summary>Writes the curve atomically. Numbers use the invariant culture's shortest round-trip form.</summary>
    public static void Write(string path, IEnumerable<CurvePoint> points) => AtomicFile.WriteStream(path, stream =>
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        using var csv = new CsvWriter(writer, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" });
        foreach (var h in Header) csv.WriteField(h);
        csv.NextRecord();
        foreach (var p in points)
        {
            foreach (var f in new[] {
                Format(p.Step), Format(p.ExamplesSeen), Format(p.TrainSeconds), Format(p.MinibatchLoss),
                Format(p.TrainLoss), Format(p.ValidationLoss), Format(p.ValidationError), Format(p.LearningRate) })
                csv.WriteField(f);
            csv.NextRecord();
        }
        csv.Flush();
    });

    /// <summary>Reads a curve written by <see cref="Write"/> (extra columns are ignored).</summary>
    public static IReadOnlyList<CurvePoint> Read(string path)
    {
        using var reader = new StreamReader(path);
        using var csv = new CsvReader(reader, CultureInfo.InvariantCulture);
        var points = new List<CurvePoint>();
        if (!csv.Read()) return points;
        csv.ReadHeader();
        while (csv.Read())
        {
            double? D(string name) => csv.TryGetField(name, out string? s) && s is { Length: > 0 } ? double.Parse(s, CultureInfo.InvariantCulture) : null;
            points.Add(new CurvePoint(
                long.Parse(csv.GetField("step")!, CultureInfo.InvariantCulture),
                long.Parse(csv.GetField("examples_seen")!, CultureInfo.InvariantCulture),
                D("train_seconds") ?? 0, D("minibatch_loss"), D("train_loss"), D("validation_loss"), D("validation_error"),
                D("learning_rate")));
        }
        return points;
    }

    static string Format(long v) => v.ToString(CultureInfo.InvariantCulture);
    static string Format(double? v) => v is { } d ? d.ToString("R", CultureInfo.InvariantCulture) : "";
}
