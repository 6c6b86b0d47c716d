using System.Reflection;
using NqmValidate.Bench;

// Every IBenchmark in this assembly is a subcommand: nqm-bench NAME [args].
var benchmarks = Assembly.GetExecutingAssembly().GetTypes()
    .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name)
    .ToList();

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: scripts/bench NAME [args]\n\nbenchmarks:");
    foreach (var b in benchmarks) Console.WriteLine($"  {b.Name,-20} {b.Description}");
    return args.Length == 0 ? 2 : 0;
}
var chosen = benchmarks.FirstOrDefault(b => b.Name == args[0]);
if (chosen is null)
{
    Console.Error.WriteLine($"unknown benchmark '{args[0]}'; valid: {string.Join(", ", benchmarks.Select(b => b.Name))}");
    return 2;
}
return chosen.Run(args[1..]);
