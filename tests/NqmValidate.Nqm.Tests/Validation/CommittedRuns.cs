namespace NqmValidate.Nqm.Tests.Validation;

/// <summary>Where the committed runs are: experiments/results/&lt;run&gt; of the checkout the tests were built from.</summary>
internal static class CommittedRuns
{
    public static string Run(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NqmValidate.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        return Path.Combine(dir.FullName, "experiments", "results", name);
    }
}
