using System.Globalization;
using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// data-cache: wall time of <c>FashionMnist.Load</c> decoding the gzip files and normalising (cache off) against reading
/// the decoded cache (a hit), alternating in the same run, medians of the repeats; the ratio decoded / cached; the cost
/// of the cache key (stat and XxHash3 of the source files) inside a hit; the one-off cost of building the cache; whether
/// the two loads gave the same bytes; and the load average. The cache is built in a temporary folder, deleted after.
/// Args: [--data-dir DIR] [--repeats N] [--threads N]
/// </summary>
public sealed class DataCacheBenchmark : IBenchmark
{
    public string Name => "data-cache";
    public string Description => "Fashion-MNIST load: gzip decode + normalise vs the decoded cache (median of 5 each), ratio [--data-dir DIR] [--repeats N]";

    public int Run(string[] args)
    {
        string dataDir = FashionMnist.ResolveDirectory(BenchSupport.Arg(args, "--data-dir"));
        int repeats = int.Parse(BenchSupport.Arg(args, "--repeats") ?? "5", CultureInfo.InvariantCulture);
        int threads = int.Parse(BenchSupport.Arg(args, "--threads") ?? "1", CultureInfo.InvariantCulture);
        TorchRuntime.Initialize(threads);
        string folder = Path.Combine(Path.GetTempPath(), "nqm-bench-data-cache-" + Guid.NewGuid().ToString("N"));
        var off = new FashionMnistOptions(Cache: DataCacheLocation.Off);
        var on = new FashionMnistOptions(Cache: new DataCacheLocation(folder));
        try
        {
            string before = BenchSupport.LoadAverage();
            Console.WriteLine($"data-cache: {dataDir}, threads {threads}, {repeats} repeats each, alternating; load average before: {before}");
            FashionMnist.Load(dataDir, off).Dispose(); // warm-up: JIT, page cache of the gzip files
            double build = Measure.Seconds(() => FashionMnist.Load(dataDir, on).Dispose());
            string file = Directory.GetFiles(folder).Single();

            var decoded = new List<double>(); var cached = new List<double>(); var key = new List<double>();
            bool identical = true;
            for (int r = 0; r < repeats; r++)
            {
                FashionMnistData? a = null, b = null;
                decoded.Add(Measure.Seconds(() => a = FashionMnist.Load(dataDir, off)));
                cached.Add(Measure.Seconds(() => b = FashionMnist.Load(dataDir, on)));
                key.Add(Measure.Seconds(() => DecodedDataCache.Key(FashionMnist.SourceFiles(dataDir), FashionMnist.ValidationExamples)));
                using (a) using (b) identical &= Same(a!, b!);
            }
            double d = Measure.Median(decoded), c = Measure.Median(cached);
            Console.WriteLine(FormattableString.Invariant(
                $"decoded (gzip + normalise): median {d:F3} s  ({decoded.Min():F3}..{decoded.Max():F3})"));
            Console.WriteLine(FormattableString.Invariant(
                $"cached (memory-mapped):     median {c:F3} s  ({cached.Min():F3}..{cached.Max():F3}), of which the key {Measure.Median(key) * 1000:F0} ms"));
            Console.WriteLine(FormattableString.Invariant(
                $"ratio decoded / cached: {d / c:F1}; building the cache once: {build:F3} s; cache file {new FileInfo(file).Length / 1e6:F0} MB"));
            Console.WriteLine($"bit-identical: {(identical ? "yes" : "NO")}");
            Console.WriteLine($"load average after: {BenchSupport.LoadAverage()} (before: {before})");
            return identical ? 0 : 1;
        }
        finally
        {
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Every split's images and labels byte for byte, and the normalisation exactly.</summary>
    static bool Same(FashionMnistData a, FashionMnistData b) =>
        a.Normalization == b.Normalization
        && new[] { (a.Train, b.Train), (a.Validation, b.Validation), (a.TrainEval, b.TrainEval), (a.Test, b.Test) }.All(p =>
            p.Item1.Images.contiguous().bytes.SequenceEqual(p.Item2.Images.contiguous().bytes)
            && p.Item1.Labels.contiguous().bytes.SequenceEqual(p.Item2.Labels.contiguous().bytes));
}
