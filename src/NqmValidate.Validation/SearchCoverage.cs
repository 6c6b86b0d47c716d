using NqmValidate.Reports;

namespace NqmValidate.Validation;

/// <summary>
/// Whether the sweep's search was fine enough to show how the best hyperparameters move with the batch size (issue #10
/// item 7): when one optimizer's best trial sits on the same search point at every batch size from its critical batch
/// size up, the measured optimum cannot be seen to move there, and the report says so.
/// </summary>
public static class SearchCoverage
{
    /// <param name="measured">measured.csv's rows.</param>
    /// <param name="criticalBatchSize">The measured critical batch size per optimizer (null where the fit found none).</param>
    /// <returns>One sentence per optimizer whose optimum does not move across the batch sizes at or above its critical batch size.</returns>
    public static IReadOnlyList<string> SamePointAtLargeBatchSizes(IReadOnlyList<MeasuredRow> measured, IReadOnlyDictionary<string, double?> criticalBatchSize)
    {
        var notes = new List<string>();
        foreach (var group in measured.Where(m => m.StepsToTarget is not null && m.LearningRate is not null).GroupBy(m => m.Optimizer))
        {
            var rows = group.OrderBy(m => m.BatchSize).ToList();
            double? bCrit = criticalBatchSize.GetValueOrDefault(group.Key);
            // Without a measured critical batch size, the upper half of the measured batch sizes.
            var large = bCrit is double b ? rows.Where(r => r.BatchSize >= b).ToList() : rows.Skip(rows.Count / 2).ToList();
            if (large.Count < 2) continue;
            var point = (large[0].LearningRate, large[0].Momentum, large[0].Beta1);
            if (large.All(r => (r.LearningRate, r.Momentum, r.Beta1) == point))
            {
                string Inv(FormattableString f) => FormattableString.Invariant(f);
                string hyper = Inv($"learning rate {point.LearningRate:G4}") + (point.Momentum is double mu ? Inv($", momentum {mu:G4}") : "")
                               + (point.Beta1 is double b1 ? Inv($", β1 {b1:G4}") : "");
                string above = bCrit is double c ? Inv($" (≥ its critical batch size {Numbers.Figures3(c)})") : "";
                notes.Add(Inv($"{group.Key}: the best trial sits on the same search point ({hyper}) at every batch size from {large[0].BatchSize:G6} to {large[^1].BatchSize:G6}{above}: ")
                          + "the search is too coarse there to show the optimum move with B.");
            }
        }
        return notes;
    }
}
