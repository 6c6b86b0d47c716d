using NqmValidate.Formats;
using NqmValidate.Reports;
using NqmValidate.Validation;

namespace NqmValidate.Nqm.Tests.Formats;

/// <summary>
/// steps.csv, trials.csv and density.csv have one column definition each (NqmValidate.Formats), used by the writer and
/// every reader: these tests fail if a writer and a reader disagree on a column (its name, its place, or which field
/// it holds), and pin the committed runs' tables byte for byte.
/// </summary>
public class TableFileTests : IDisposable
{
    readonly string _root = Path.Combine(Path.GetTempPath(), "nqm-formats-" + Guid.NewGuid().ToString("N")[..8]);

    public TableFileTests() => Directory.CreateDirectory(_root);

    public void Dispose() { try { Directory.Delete(_root, true); } catch (IOException) { } }

    static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "NqmValidate.sln"))) return d.FullName;
        throw new InvalidOperationException("NqmValidate.sln not found above " + AppContext.BaseDirectory);
    }

    static IEnumerable<string> Committed(string pattern) =>
        Directory.EnumerateFiles(Path.Combine(RepositoryRoot(), "experiments", "results"), pattern, SearchOption.AllDirectories).Order(StringComparer.Ordinal);

    public static TheoryData<string> CommittedRuns() => [.. Directory.GetDirectories(Path.Combine(RepositoryRoot(), "experiments", "results"))
        .Where(d => File.Exists(Path.Combine(d, "sweep", StepsFile.FileName))).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(CommittedRuns))]
    public void ACommittedRunsSweepTablesReadAndWrittenBackAreByteIdentical(string run)
    {
        string sweep = Path.Combine(RepositoryRoot(), "experiments", "results", run, "sweep");
        var steps = StepsFile.Read(Path.Combine(sweep, StepsFile.FileName));
        var trials = TrialsFile.Read(Path.Combine(sweep, TrialsFile.FileName));
        Assert.NotEmpty(steps.Rows);
        Assert.NotEmpty(trials.Rows);
        Assert.Equal(File.ReadAllBytes(Path.Combine(sweep, StepsFile.FileName)), Utf8(StepsFile.Text(steps.Rows, steps.FurtherHyperparameters)));
        Assert.Equal(File.ReadAllBytes(Path.Combine(sweep, TrialsFile.FileName)), Utf8(TrialsFile.Text(trials.Rows, trials.FurtherHyperparameters)));
    }

    [Fact]
    public void EveryCommittedDensityTableReadAndWrittenBackIsByteIdentical()
    {
        // The curvature stage writes density.csv itself (CRLF lines); the Formats definition reproduces its bytes.
        var files = Committed(DensityFile.FileName).ToList();
        Assert.True(files.Count >= 4, $"{files.Count} density.csv files under experiments/results");
        foreach (var f in files)
            Assert.True(File.ReadAllBytes(f).AsSpan().SequenceEqual(Utf8(DensityFile.Text(DensityFile.Read(f)))), f);
    }

    static byte[] Utf8(string s) => new System.Text.UTF8Encoding(false).GetBytes(s);

    /// <summary>A steps.csv row whose every field holds a value no other field holds.</summary>
    static StepsRow DistinctSteps(int i) => new(
        $"opt{i}", 16 + i, 1001 + i, 0.0123 + i, new Dictionary<string, double> { ["momentum"] = 0.91 + i, ["beta1"] = 0.81 + i, ["epsilon"] = 1e-7 + i, ["ema_decay"] = 0.71 + i },
        2 + i, 3 + i, 4 + i, 5 + i, 6 + i, 7 + i, 1002 + i, 1003.5 + i, 1004 + i, 20000 + i, 0.00301 + i, 3.01 + i, 0.4321 + i, 50001 + i);

    /// <summary>A trials.csv row whose every field holds a value no other field holds.</summary>
    static TrialsRow DistinctTrials(int i) => new(
        $"study{i}", $"opt{i}", 16 + i, $"t{i:000}", 123456789 + i, 0.0123 + i,
        new Dictionary<string, double> { ["momentum"] = 0.91 + i, ["beta1"] = 0.81 + i, ["epsilon"] = 1e-7 + i, ["ema_decay"] = 0.71 + i },
        $"status{i}", 1001 + i, 1002 + i, 2.31 + i, 0.51 + i, 8 + i, 1003 + i, 9 + i);

    static void AssertSame(IReadOnlyDictionary<string, double> expected, IReadOnlyDictionary<string, double> actual) =>
        Assert.Equal(expected.OrderBy(p => p.Key), actual.OrderBy(p => p.Key));

    [Fact]
    public void StepsRowsWrittenAndReadBackAreTheSameRowsField_ByField()
    {
        StepsRow[] rows = [DistinctSteps(0), DistinctSteps(10)];
        string path = Path.Combine(_root, StepsFile.FileName);
        File.WriteAllText(path, StepsFile.Text(rows, ["ema_decay"]));
        var read = StepsFile.Read(path);
        Assert.Equal(["ema_decay"], read.FurtherHyperparameters);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(rows[i], read.Rows[i] with { Hyperparameters = rows[i].Hyperparameters }); // a swapped column fails here
            AssertSame(rows[i].Hyperparameters, read.Rows[i].Hyperparameters);
        }
    }

    [Fact]
    public void TrialsRowsWrittenAndReadBackAreTheSameRowsField_ByField()
    {
        TrialsRow[] rows = [DistinctTrials(0), DistinctTrials(10)];
        string path = Path.Combine(_root, TrialsFile.FileName);
        File.WriteAllText(path, TrialsFile.Text(rows, ["ema_decay"]));
        var read = TrialsFile.Read(path);
        Assert.Equal(["ema_decay"], read.FurtherHyperparameters);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(rows[i], read.Rows[i] with { Hyperparameters = rows[i].Hyperparameters });
            AssertSame(rows[i].Hyperparameters, read.Rows[i].Hyperparameters);
        }
    }

    [Fact]
    public void DensityRowsWrittenAndReadBackAreTheSameRows()
    {
        DensityRow[] rows = [new("hessian", -0.5, 0.25, 3), new("ggn", 2.5, 0.75, 1)];
        string path = Path.Combine(_root, DensityFile.FileName);
        DensityFile.Write(path, rows);
        Assert.Equal(rows, DensityFile.Read(path));
    }

    /// <summary>
    /// Each column the writer writes is read from that column: garbling one cell makes the reader fail naming exactly
    /// that column. A reader that ignored a written column, or read a field from a column of another name, fails here.
    /// </summary>
    [Fact]
    public void TheReadersReadEveryColumnTheWritersWrite()
    {
        AssertEveryColumnIsRead(StepsFile.Columns(["ema_decay"]), StepsFile.Text([DistinctSteps(0)], ["ema_decay"]), p => StepsFile.Read(p));
        AssertEveryColumnIsRead(TrialsFile.Columns(["ema_decay"]), TrialsFile.Text([DistinctTrials(0)], ["ema_decay"]), p => TrialsFile.Read(p));
        AssertEveryColumnIsRead(DensityFile.Columns, DensityFile.Text([new DensityRow("ggn", 1.5, 1, 2)]), p => DensityFile.Read(p));
    }

    void AssertEveryColumnIsRead<TRow>(IReadOnlyList<Column<TRow>> columns, string text, Action<string> read)
    {
        var lines = text.Split('\n');
        Assert.Equal(columns.Select(c => c.Name), lines[0].TrimEnd('\r').Split(','));
        string path = Path.Combine(_root, "garbled.csv");
        for (int i = 0; i < columns.Count; i++)
        {
            var cells = lines[1].TrimEnd('\r').Split(',');
            if (columns[i] is Column<TRow, string>) continue; // any text is a valid text cell
            cells[i] = "not-a-number";
            File.WriteAllText(path, lines[0] + "\n" + string.Join(",", cells) + "\n");
            var e = Assert.Throws<TableFileException>(() => read(path));
            Assert.Contains($"column {columns[i].Name}:", e.Message);
        }
    }

    [Fact]
    public void TheHeadersAreExactlyTheTablesColumnsInTheirHistoricalOrder()
    {
        Assert.Equal("optimizer,batch_size,steps_to_target,learning_rate,momentum,trials_run,trials_reached,trials_diverged,seeds,steps_min,steps_median,steps_max," +
                     "trials_pruned,trials_crashed,beta1,epsilon,budget_steps,learning_rate_min,learning_rate_max,learning_rate_position,steps_trained,ema_decay\n",
            StepsFile.Text([], ["ema_decay"]));
        Assert.Equal("study,optimizer,batch_size,trial,seed,learning_rate,momentum,beta1,epsilon,status,steps_to_target,steps_run,initial_loss,final_loss," +
                     "rank,step_cap,replicate,ema_decay\n", TrialsFile.Text([], ["ema_decay"]));
        Assert.Equal("operator,eigenvalue,weight,probe\r\n", DensityFile.Text([]));
        // beta2 is never a column; the placed hyperparameters are not repeated at the end.
        Assert.Equal(["ema_decay", "gamma"], HyperparameterColumns.Further(["momentum", "beta1", "beta2", "epsilon", "ema_decay", "gamma", "ema_decay"]));
    }

    [Fact]
    public void AnOlderStepsTableReadsWithTheDocumentedDefaultsForTheColumnsItLacks()
    {
        string path = Path.Combine(_root, StepsFile.FileName);
        File.WriteAllText(path, "optimizer,batch_size,steps_to_target,learning_rate,momentum,trials_run,trials_reached,trials_diverged\nmomentum,64,,0.1,0.9,5,0,2\n");
        var row = Assert.Single(StepsFile.Read(path).Rows);
        Assert.Equal(new StepsRow("momentum", 64, null, 0.1, row.Hyperparameters, 5, 0, 2, 0, 0, 1, null, null, null, null, null, null, null, null), row);
        Assert.Equal(0.9, row.Hyperparameter("momentum"));
        Assert.Null(row.Hyperparameter("beta1"));
    }

    [Fact]
    public void AMissingOriginalColumnOrABadCellIsAnErrorNamingFileRowAndColumn()
    {
        string path = Path.Combine(_root, TrialsFile.FileName);
        File.WriteAllText(path, "study,optimizer,batch_size,learning_rate,status\ns,sgd,16,0.1,reached\n");
        var e = Assert.Throws<TableFileException>(() => TrialsFile.Read(path));
        Assert.Contains("missing column(s) trial, seed, steps_run", e.Message);
        File.WriteAllText(path, StepsFile.Text([DistinctSteps(0)], []).Replace(",16,", ",16.5,"));
        e = Assert.Throws<TableFileException>(() => StepsFile.Read(path));
        Assert.Equal($"{path}: row 2, column batch_size: '16.5' is not a whole number.", e.Message);
    }

    [Fact]
    public void TheValidationsViewOfASweepIsBuiltFromTheSharedRows()
    {
        string sweep = Path.Combine(_root, "sweep");
        Directory.CreateDirectory(sweep);
        var steps = DistinctSteps(0);
        var trial = DistinctTrials(0);
        File.WriteAllText(Path.Combine(sweep, StepsFile.FileName), StepsFile.Text([steps], ["ema_decay"]));
        File.WriteAllText(Path.Combine(sweep, TrialsFile.FileName), TrialsFile.Text([trial], ["ema_decay"]));
        var loaded = SweepResults.Load(sweep);
        Assert.Equal(new MeasuredStudy("opt0", 16, 1001, 0.0123, 0.91, 2, 3, 4, 1002, 1004, 0.81), Assert.Single(loaded.Studies));
        Assert.Equal(new MeasuredTrial("opt0", 16, 0.0123, 0.91, "status0", 1001, 1002, 2.31, 0.51, "study0", "t000"), Assert.Single(loaded.Trials));

        // A table fault reaches the validation's callers as the run-file error they handle.
        File.WriteAllText(Path.Combine(sweep, StepsFile.FileName), "optimizer,batch_size\nsgd,16\n");
        var e = Assert.Throws<RunFileException>(() => SweepResults.Load(sweep));
        Assert.Contains("missing column(s) steps_to_target", e.Message);
    }
}
