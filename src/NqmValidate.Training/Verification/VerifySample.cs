using System.Security.Cryptography;
using System.Text;
using NqmValidate.Formats;

namespace NqmValidate.Training.Verification;

/// <summary>
/// Which trials <c>nqm verify</c> re-runs: a deterministic choice (the same run and N always give the same trials)
/// that covers every optimizer at the smallest and at the largest batch size. Each study contributes the trial its
/// steps-to-target comes from (the best reached trial; a study that reached nothing, its longest-running trial), so
/// the sample re-measures the numbers the validation uses. Beyond the covering trials, further studies and then
/// further trials follow in the order of a hash of their ids: spread over the run, yet fixed.
/// </summary>
public static class VerifySample
{
    static readonly string[] Unusable = ["crashed", "interrupted", "running"];

    /// <summary>The covering trials: per optimizer (in the run's order), its study at the smallest and at the largest batch size.</summary>
    public static IReadOnlyList<TrialsRow> Covering(IReadOnlyList<TrialsRow> rows)
    {
        var candidates = StudyCandidates(rows);
        var chosen = new List<TrialsRow>();
        foreach (var optimizer in candidates.Select(r => r.Optimizer).Distinct())
        {
            var ofOptimizer = candidates.Where(r => r.Optimizer == optimizer).ToList();
            int min = ofOptimizer.Min(r => r.BatchSize), max = ofOptimizer.Max(r => r.BatchSize);
            foreach (int b in new[] { min, max }.Distinct())
                chosen.Add(ofOptimizer.Where(r => r.BatchSize == b).OrderBy(r => r.Replicate).First());
        }
        return chosen;
    }

    /// <summary>
    /// <paramref name="count"/> trials (null: just the covering ones), in trials.csv order. Throws when
    /// <paramref name="count"/> is below the covering size or above the number of usable trials.
    /// </summary>
    public static IReadOnlyList<TrialsRow> Choose(IReadOnlyList<TrialsRow> rows, int? count)
    {
        var covering = Covering(rows);
        if (covering.Count == 0) throw new VerifyInputException("the run has no finished trial to re-run (all crashed or interrupted).");
        int n = count ?? covering.Count;
        if (n < covering.Count)
            throw new VerifyInputException($"--sample {n}: covering every optimizer at the smallest and the largest batch size takes {covering.Count} trials.");
        var usable = rows.Where(r => !Unusable.Contains(r.Status)).ToList();
        if (n > usable.Count)
            throw new VerifyInputException($"--sample {n}: the run has only {usable.Count} finished trials.");
        var chosen = new List<TrialsRow>(covering);
        chosen.AddRange(StudyCandidates(rows).Except(covering).OrderBy(Hash).Take(n - chosen.Count));
        chosen.AddRange(usable.Except(chosen).OrderBy(Hash).Take(n - chosen.Count));
        return rows.Where(chosen.Contains).ToList();
    }

    /// <summary>Per study the trial its steps-to-target comes from (fewest steps, ties to the first trial), or its longest run.</summary>
    static List<TrialsRow> StudyCandidates(IReadOnlyList<TrialsRow> rows) => rows
        .Where(r => !Unusable.Contains(r.Status))
        .GroupBy(r => r.Study)
        .Select(g => g.Where(r => r.Status == "reached" && r.StepsToTarget is not null)
                         .OrderBy(r => r.StepsToTarget).ThenBy(r => r.Trial, StringComparer.Ordinal).FirstOrDefault()
                     ?? g.OrderByDescending(r => r.StepsRun).ThenBy(r => r.Trial, StringComparer.Ordinal).First())
        .ToList();

    static string Hash(TrialsRow r) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{r.Study}/{r.Trial}")));
}
