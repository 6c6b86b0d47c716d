
namespace NqmValidate.Curvature;

/// <summary>Where in training curvature is measured: at initialisation (Steps = 0) or after Steps warm-up updates.</summary>
public sealed record Checkpoint(long Steps)
{
    public string Label => Steps == 0 ? "init" : $"warmup-{Steps}";
    public override string ToString() => Steps == 0 ? "init" : $"warmup:{Steps}";

    /// <summary>Parses "init" or "warmup:STEPS"; a comma-separated list gives several checkpoints.</summary>
    public static IReadOnlyList<Checkpoint> ParseList(string text)
    {
        var list = new List<Checkpoint>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part == "init") list.Add(new Checkpoint(0));
            else if (part.StartsWith("warmup:", StringComparison.Ordinal) && long.TryParse(part["warmup:".Length..], out long steps) && steps >= 0)
                list.Add(new Checkpoint(steps));
            else throw new CurvatureInputException($"--checkpoint: '{part}' is not 'init' or 'warmup:STEPS' (STEPS a non-negative integer).");
        }
        if (list.Count == 0) throw new CurvatureInputException("--checkpoint: no checkpoint given (use init or warmup:STEPS).");
        if (list.Select(c => c.Steps).Distinct().Count() != list.Count) throw new CurvatureInputException($"--checkpoint: '{text}' repeats a checkpoint.");
        return list.OrderBy(c => c.Steps).ToList();
    }
}
