using NqmValidate.Training.Sweeps;
using NqmValidate.Common;
using Spectre.Console;

namespace NqmValidate.Cli.Commands;

/// <summary>
/// Shows a running sweep: a live Spectre.Console display on a terminal (studies and trials done,
/// the best steps so far of the studies being run, time left), plain lines every 30 s and at
/// each finished study when the output is not a terminal or CI=true.
/// </summary>
public static class SweepProgressView
{
    /// <summary>Keeps only the latest snapshot; the view polls it.</summary>
    sealed class Latest : IProgress<SweepProgress>
    {
        volatile SweepProgress? _value;
        public SweepProgress? Value => _value;
        public void Report(SweepProgress value) => _value = value;
    }

    public static async Task<T> RunAsync<T>(string mode, Func<IProgress<SweepProgress>, Task<T>> work)
    {
        if (mode == "auto")
        {
            bool ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
            mode = !ci && !Console.IsOutputRedirected && !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive ? "live" : "plain";
        }
        var latest = new Latest();
        return mode switch
        {
            "none" => await work(latest),
            "live" => await Live(latest, work),
            "plain" => await Plain(latest, work),
            _ => throw new SpecException($"--progress: must be one of `auto`, `live`, `plain`, `none` (got \"{mode}\")."),
        };
    }

    static string Eta(TimeSpan? t) => t is { } v ? (v.TotalHours >= 1 ? $"{v.TotalHours:F1} h" : $"{v.TotalMinutes:F0} min") : "?";

    static async Task<T> Plain<T>(Latest latest, Func<IProgress<SweepProgress>, Task<T>> work)
    {
        var task = work(latest);
        int lastStudies = -1;
        var lastLine = DateTime.MinValue;
        while (!task.IsCompleted)
        {
            await Task.WhenAny(task, Task.Delay(1000));
            if (latest.Value is not { } p) continue;
            if (p.StudiesDone == lastStudies && DateTime.UtcNow - lastLine < TimeSpan.FromSeconds(30)) continue;
            lastStudies = p.StudiesDone;
            lastLine = DateTime.UtcNow;
            string best = string.Join(", ", p.Active.Select(a => $"{a.Study} best {a.Best?.ToString() ?? "-"}"));
            Console.Error.WriteLine($"[{p.Elapsed:hh\\:mm\\:ss}] studies {p.StudiesDone}/{p.StudiesTotal}, trials {p.TrialsDone}/{p.TrialsTotal} " +
                                    $"({p.Running} running), {p.StepsTrained} steps trained, ~{Eta(p.Remaining)} left; {best}");
        }
        return await task;
    }

    static async Task<T> Live<T>(Latest latest, Func<IProgress<SweepProgress>, Task<T>> work)
    {
        T result = default!;
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx =>
            {
                var studies = ctx.AddTask("studies");
                var trials = ctx.AddTask("trials");
                var best = ctx.AddTask("best so far", autoStart: true, maxValue: 1);
                best.IsIndeterminate = true;
                var task = work(latest);
                while (true)
                {
                    if (latest.Value is { } p)
                    {
                        studies.MaxValue = Math.Max(1, p.StudiesTotal);
                        studies.Value = p.StudiesDone;
                        studies.Description = $"studies {p.StudiesDone}/{p.StudiesTotal}";
                        trials.MaxValue = Math.Max(1, p.TrialsTotal);
                        trials.Value = p.TrialsDone;
                        trials.Description = $"trials {p.TrialsDone}/{p.TrialsTotal} ({p.Running} running, ~{Eta(p.Remaining)} left)";
                        // Spectre refuses an empty description.
                        best.Description = p.Active.Count == 0 ? "best so far: all studies done"
                            : "best so far: " + Markup.Escape(string.Join("  ", p.Active.Take(4).Select(a => $"{a.Study} {a.Best?.ToString() ?? "-"}")));
                    }
                    if (task.IsCompleted) break;
                    await Task.WhenAny(task, Task.Delay(500));
                }
                best.Value = 1;
                best.StopTask();
                result = await task;
            });
        return result;
    }
}
