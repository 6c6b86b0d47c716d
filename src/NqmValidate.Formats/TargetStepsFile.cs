namespace NqmValidate.Formats;

/// <summary>
/// One row of a sweep's steps-by-target.csv: a study (optimizer × batch size) at one target, over its seeds
/// (docs/formats.md). A sweep with looser targets records each trial's first crossing of every one of them on the
/// way to the study's own target; per seed the study's steps at a target are the fewest over its trials, and
/// <see cref="StepsToTarget"/> is the lower median over seeds (as steps.csv's). The study's own target has its rows
/// here too (equal to steps.csv's), so the file holds one S(B) curve per target. <c>learning_rate</c> is the best
/// trial's at this target (of the median seed): a looser target may be met first at another learning rate than the
/// study's own; <c>trials_reached</c> counts the trials that met it within what counts of them (pruning applied).
/// </summary>
public sealed record TargetStepsRow(
    double Target, string Optimizer, int BatchSize, long? StepsToTarget, double? LearningRate,
    int TrialsReached, long? StepsMin, double? StepsMedian, long? StepsMax);

/// <summary>steps-by-target.csv: its columns, its text, and its reader.</summary>
public static class TargetStepsFile
{
    public const string FileName = "steps-by-target.csv";

    public static readonly Column<TargetStepsRow, double> Target = ColumnOf<TargetStepsRow>.Real("target", r => r.Target);
    public static readonly Column<TargetStepsRow, string> Optimizer = ColumnOf<TargetStepsRow>.Text("optimizer", r => r.Optimizer);
    public static readonly Column<TargetStepsRow, int> BatchSize = ColumnOf<TargetStepsRow>.Int("batch_size", r => r.BatchSize);
    public static readonly Column<TargetStepsRow, long?> StepsToTarget = ColumnOf<TargetStepsRow>.OptionalLong("steps_to_target", r => r.StepsToTarget, required: true);
    public static readonly Column<TargetStepsRow, double?> LearningRate = ColumnOf<TargetStepsRow>.OptionalReal("learning_rate", r => r.LearningRate);
    public static readonly Column<TargetStepsRow, int> TrialsReached = ColumnOf<TargetStepsRow>.Int("trials_reached", r => r.TrialsReached);
    public static readonly Column<TargetStepsRow, long?> StepsMin = ColumnOf<TargetStepsRow>.OptionalLong("steps_min", r => r.StepsMin);
    public static readonly Column<TargetStepsRow, double?> StepsMedian = ColumnOf<TargetStepsRow>.OptionalReal("steps_median", r => r.StepsMedian);
    public static readonly Column<TargetStepsRow, long?> StepsMax = ColumnOf<TargetStepsRow>.OptionalLong("steps_max", r => r.StepsMax);

    public static IReadOnlyList<Column<TargetStepsRow>> Columns { get; } =
        [Target, Optimizer, BatchSize, StepsToTarget, LearningRate, TrialsReached, StepsMin, StepsMedian, StepsMax];

    public static string Text(IEnumerable<TargetStepsRow> rows) => Table.Text(Columns, rows);

    /// <summary>Reads steps-by-target.csv; throws <see cref="TableFileException"/> naming the file, row and column of a fault.</summary>
    public static IReadOnlyList<TargetStepsRow> Read(string path) =>
        Table.Read(path, Columns).Records.Select(r => new TargetStepsRow(
            r.Get(Target), r.Get(Optimizer), r.Get(BatchSize), r.Get(StepsToTarget), r.Get(LearningRate),
            r.Get(TrialsReached), r.Get(StepsMin), r.Get(StepsMedian), r.Get(StepsMax))).ToList();
}
