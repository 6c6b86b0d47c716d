namespace NqmValidate.Formats;

/// <summary>
/// One row of a sweep's trials.csv (docs/formats.md): a trial and how it counted in its study. <see cref="Status"/> is
/// that count (reached, budget_exhausted, diverged, pruned, crashed) and <see cref="StepsRun"/> the steps that count;
/// how the trial's process itself ended is in its trial.json. Columns older files lack: rank and step cap read as no
/// value, the replicate (seed index) as 0.
/// </summary>
public sealed record TrialsRow(
    string Study, string Optimizer, int BatchSize, string Trial, long Seed, double LearningRate, IReadOnlyDictionary<string, double> Hyperparameters,
    string Status, long? StepsToTarget, long StepsRun, double? InitialLoss, double? FinalLoss, int? Rank, long? StepCap, int Replicate)
{
    public double? Hyperparameter(string name) => Hyperparameters.TryGetValue(name, out double v) ? v : null;
}

/// <summary>trials.csv: its columns (the one definition its writer and its readers use), its text, and its reader.</summary>
public static class TrialsFile
{
    public const string FileName = "trials.csv";

    static Column<TrialsRow, double?> H(string name) => HyperparameterColumns.Of<TrialsRow>(name, r => r.Hyperparameters);

    public static readonly Column<TrialsRow, string> Study = ColumnOf<TrialsRow>.Text("study", r => r.Study);
    public static readonly Column<TrialsRow, string> Optimizer = ColumnOf<TrialsRow>.Text("optimizer", r => r.Optimizer);
    public static readonly Column<TrialsRow, int> BatchSize = ColumnOf<TrialsRow>.Int("batch_size", r => r.BatchSize);
    public static readonly Column<TrialsRow, string> Trial = ColumnOf<TrialsRow>.Text("trial", r => r.Trial);
    public static readonly Column<TrialsRow, long> Seed = ColumnOf<TrialsRow>.Long("seed", r => r.Seed);
    public static readonly Column<TrialsRow, double> LearningRate = ColumnOf<TrialsRow>.Real("learning_rate", r => r.LearningRate);
    public static readonly Column<TrialsRow, string> Status = ColumnOf<TrialsRow>.Text("status", r => r.Status);
    public static readonly Column<TrialsRow, long?> StepsToTarget = ColumnOf<TrialsRow>.OptionalLong("steps_to_target", r => r.StepsToTarget);
    public static readonly Column<TrialsRow, long> StepsRun = ColumnOf<TrialsRow>.Long("steps_run", r => r.StepsRun, whenEmpty: 0);
    public static readonly Column<TrialsRow, double?> InitialLoss = ColumnOf<TrialsRow>.OptionalReal("initial_loss", r => r.InitialLoss);
    public static readonly Column<TrialsRow, double?> FinalLoss = ColumnOf<TrialsRow>.OptionalReal("final_loss", r => r.FinalLoss);
    public static readonly Column<TrialsRow, int?> Rank = ColumnOf<TrialsRow>.OptionalInt("rank", r => r.Rank);
    public static readonly Column<TrialsRow, long?> StepCap = ColumnOf<TrialsRow>.OptionalLong("step_cap", r => r.StepCap);
    public static readonly Column<TrialsRow, int> Replicate = ColumnOf<TrialsRow>.Int("replicate", r => r.Replicate, required: false, whenEmpty: 0);

    /// <summary>The columns in file order: the original ones, the added ones, then one per further hyperparameter (<see cref="HyperparameterColumns.Further"/>).</summary>
    public static IReadOnlyList<Column<TrialsRow>> Columns(IReadOnlyList<string> furtherHyperparameters) =>
    [
        Study, Optimizer, BatchSize, Trial, Seed, LearningRate,
        H(HyperparameterColumns.Momentum), H(HyperparameterColumns.Beta1), H(HyperparameterColumns.Epsilon),
        Status, StepsToTarget, StepsRun, InitialLoss, FinalLoss, Rank, StepCap, Replicate,
        .. furtherHyperparameters.Select(H),
    ];

    public static string Text(IEnumerable<TrialsRow> rows, IReadOnlyList<string> furtherHyperparameters) =>
        Table.Text(Columns(furtherHyperparameters), rows);

    /// <summary>Reads trials.csv; throws <see cref="TableFileException"/> naming the file, row and column of a fault.</summary>
    public static SweepTable<TrialsRow> Read(string path)
    {
        var own = Columns([]);
        var table = Table.Read(path, own);
        var further = HyperparameterColumns.FurtherIn(table, own);
        var hyperparameters = HyperparameterColumns.Placed.Concat(further).ToList();
        var rows = table.Records.Select(r => new TrialsRow(
            r.Get(Study), r.Get(Optimizer), r.Get(BatchSize), r.Get(Trial), r.Get(Seed), r.Get(LearningRate), HyperparameterColumns.Read(r, hyperparameters),
            r.Get(Status), r.Get(StepsToTarget), r.Get(StepsRun), r.Get(InitialLoss), r.Get(FinalLoss), r.Get(Rank), r.Get(StepCap), r.Get(Replicate))).ToList();
        return new SweepTable<TrialsRow>(further, rows);
    }
}
