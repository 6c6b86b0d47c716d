using System.Globalization;
using CsvHelper;
using NqmValidate.Common;

namespace NqmValidate.Reports;

/// <summary>A row of `nqm simulate`'s steps.csv (docs/formats.md); empty steps = target not reached.</summary>
public sealed record NqmStepsRecord(string Optimizer, double PrecondPower, double BatchSize, long? Steps, double LearningRate,
    double Momentum, double Decay, double EffectiveLearningRate, double LowerBound);

public static class NqmStepsCsv
{
    public static readonly string[] Columns =
        { "optimizer", "precond_power", "batch_size", "steps", "learning_rate", "momentum", "decay", "effective_learning_rate", "lower_bound" };

    /// <summary>Writes steps.csv atomically with exactly the documented columns, invariant culture, round-trip doubles.</summary>
    public static void Write(string path, IEnumerable<NqmStepsRecord> rows) => AtomicFile.Write(path, writer =>
    {
        using var csv = new CsvWriter(writer, CultureInfo.InvariantCulture);
        foreach (var c in Columns) csv.WriteField(c);
        csv.NextRecord();
        foreach (var r in rows)
        {
            csv.WriteField(r.Optimizer);
            csv.WriteField(F(r.PrecondPower));
            csv.WriteField(F(r.BatchSize));
            csv.WriteField(r.Steps?.ToString(CultureInfo.InvariantCulture) ?? "");
            csv.WriteField(F(r.LearningRate));
            csv.WriteField(F(r.Momentum));
            csv.WriteField(F(r.Decay));
            csv.WriteField(F(r.EffectiveLearningRate));
            csv.WriteField(F(r.LowerBound));
            csv.NextRecord();
        }
    });

    static string F(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";
}
