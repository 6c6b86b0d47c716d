namespace NqmValidate.Formats;

/// <summary>
/// One row of a sweep's steps.csv: a study (optimizer × batch size), over its seeds (docs/formats.md). The
/// hyperparameters are the best trial's, as its record ran them. Columns older files lack read as their
/// documented default (counts 0, seeds 1) or, where there is none, as no value.
/// </summary>
public sealed record StepsRow(
    string Optimizer, int BatchSize, long? StepsToTarget, double? LearningRate, IReadOnlyDictionary<string, double> Hyperparameters,
    int TrialsRun, int TrialsReached, int TrialsDiverged, int TrialsPruned, int TrialsCrashed,
    int Seeds, long? StepsMin, double? StepsMedian, long? StepsMax,
    long? BudgetSteps, double? LearningRateMin, double? LearningRateMax, double? LearningRatePosition, long? StepsTrained)
{
    public double? Hyperparameter(string name) => Hyperparameters.TryGetValue(name, out double v) ? v : null;
}

/// <summary>steps.csv: its columns (the one definition its writer and its readers use), its text, and its reader.</summary>
public static class StepsFile
{
    public const string FileName = "steps.csv";

    static Column<StepsRow, double?> H(string name) => HyperparameterColumns.Of<StepsRow>(name, r => r.Hyperparameters);

    public static readonly Column<StepsRow, string> Optimizer = ColumnOf<StepsRow>.Text("optimizer", r => r.Optimizer);
    public static readonly Column<StepsRow, int> BatchSize = ColumnOf<StepsRow>.Int("batch_size", r => r.BatchSize);
    public static readonly Column<StepsRow, long?> StepsToTarget = ColumnOf<StepsRow>.OptionalLong("steps_to_target", r => r.StepsToTarget, required: true);
    public static readonly Column<StepsRow, double?> LearningRate = ColumnOf<StepsRow>.OptionalReal("learning_rate", r => r.LearningRate);
    public static readonly Column<StepsRow, int> TrialsRun = ColumnOf<StepsRow>.Int("trials_run", r => r.TrialsRun, required: false, whenEmpty: 0);
    public static readonly Column<StepsRow, int> TrialsReached = ColumnOf<StepsRow>.Int("trials_reached", r => r.TrialsReached, required: false, whenEmpty: 0);
    public static readonly Column<StepsRow, int> TrialsDiverged = ColumnOf<StepsRow>.Int("trials_diverged", r => r.TrialsDiverged, required: false, whenEmpty: 0);
    public static readonly Column<StepsRow, int> Seeds = ColumnOf<StepsRow>.Int("seeds", r => r.Seeds, required: false, whenEmpty: 1);
    public static readonly Column<StepsRow, long?> StepsMin = ColumnOf<StepsRow>.OptionalLong("steps_min", r => r.StepsMin);
    public static readonly Column<StepsRow, double?> StepsMedian = ColumnOf<StepsRow>.OptionalReal("steps_median", r => r.StepsMedian);
    public static readonly Column<StepsRow, long?> StepsMax = ColumnOf<StepsRow>.OptionalLong("steps_max", r => r.StepsMax);
    public static readonly Column<StepsRow, int> TrialsPruned = ColumnOf<StepsRow>.Int("trials_pruned", r => r.TrialsPruned, required: false, whenEmpty: 0);
    public static readonly Column<StepsRow, int> TrialsCrashed = ColumnOf<StepsRow>.Int("trials_crashed", r => r.TrialsCrashed, required: false, whenEmpty: 0);
    public static readonly Column<StepsRow, long?> BudgetSteps = ColumnOf<StepsRow>.OptionalLong("budget_steps", r => r.BudgetSteps);
    public static readonly Column<StepsRow, double?> LearningRateMin = ColumnOf<StepsRow>.OptionalReal("learning_rate_min", r => r.LearningRateMin);
    public static readonly Column<StepsRow, double?> LearningRateMax = ColumnOf<StepsRow>.OptionalReal("learning_rate_max", r => r.LearningRateMax);
    public static readonly Column<StepsRow, double?> LearningRatePosition = ColumnOf<StepsRow>.OptionalReal("learning_rate_position", r => r.LearningRatePosition);
    public static readonly Column<StepsRow, long?> StepsTrained = ColumnOf<StepsRow>.OptionalLong("steps_trained", r => r.StepsTrained);

    /// <summary>
    /// The columns in file order: the original ones, then those added over time (each at the end when it was added),
    /// then one per further hyperparameter (<see cref="HyperparameterColumns.Further"/>).
    /// </summary>
    public static IReadOnlyList<Column<StepsRow>> Columns(IReadOnlyList<string> furtherHyperparameters) =>
    [
        Optimizer, BatchSize, StepsToTarget, LearningRate, H(HyperparameterColumns.Momentum),
        TrialsRun, TrialsReached, TrialsDiverged, Seeds, StepsMin, StepsMedian, StepsMax, TrialsPruned, TrialsCrashed,
        H(HyperparameterColumns.Beta1), H(HyperparameterColumns.Epsilon),
        BudgetSteps, LearningRateMin, LearningRateMax, LearningRatePosition, StepsTrained,
        .. furtherHyperparameters.Select(H),
    ];

    public static string Text(IEnumerable<StepsRow> rows, IReadOnlyList<string> furtherHyperparameters) =>
        Table.Text(Columns(furtherHyperparameters), rows);

    /// <summary>Reads steps.csv; throws <see cref="TableFileException"/> naming the file, row and column of a fault.</summary>
    public static SweepTable<StepsRow> Read(string path)
    {
        var own = Columns([]);
        var table = Table.Read(path, own);
        var further = HyperparameterColumns.FurtherIn(table, own);
        var hyperparameters = HyperparameterColumns.Placed.Concat(further).ToList();
        var rows = table.Records.Select(r => new StepsRow(
            r.Get(Optimizer), r.Get(BatchSize), r.Get(StepsToTarget), r.Get(LearningRate), HyperparameterColumns.Read(r, hyperparameters),
            r.Get(TrialsRun), r.Get(TrialsReached), r.Get(TrialsDiverged), r.Get(TrialsPruned), r.Get(TrialsCrashed),
            r.Get(Seeds), r.Get(StepsMin), r.Get(StepsMedian), r.Get(StepsMax),
            r.Get(BudgetSteps), r.Get(LearningRateMin), r.Get(LearningRateMax), r.Get(LearningRatePosition), r.Get(StepsTrained))).ToList();
        return new SweepTable<StepsRow>(further, rows);
    }
}
