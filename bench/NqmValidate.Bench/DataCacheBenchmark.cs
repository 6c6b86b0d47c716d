using System.Globalization;
using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;
using static TorchSharp.torch;

namespace NqmValidate.Bench;

/// <summary>
/// data-cache: wall time of <c>FashionMnist.Load</c> decoding the gzip files and normalising (cache off) against reading
/// the decoded cache (a hit), alternating in the same run, medians of the repeats; the ratio decoded / cached; the cost
/// of the cache key (stat and XxHash3 of the source files) inside a hit; the one-off cost of building the cache; whether
/// the loads gave the same bytes; and the load average. The cache is read both ways: tensors over the mapped file (the
/// default) and copies out of it (<c>ShareMappedMemory: false</c>). The cache is built in a temporary folder, deleted after.
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
        var copying = new FashionMnistOptions(Cache: new DataCacheLocation(folder, ShareMappedMemory: false));
        try
        {
            string before = BenchSupport.LoadAverage();
            Console.WriteLine($"data-cache: {dataDir}, threads {threads}, {repeats} repeats each, alternating; load average before: {before}");
            FashionMnist.Load(dataDir, off).Dispose(); // warm-up: JIT, page cache of the gzip files
            double build = Measure.Seconds(() => FashionMnist.Load(dataDir, on).Dispose());
            string file = Directory.GetFiles(folder).Single();

            var decoded = new List<double>(); var cached = new List<double>(); var copied = new List<double>(); var key = new List<double>();
            bool identical = true;
            for (int r = 0; r < repeats; r++)
            {
                FashionMnistData? a = null, b = null, c = null;
                decoded.Add(Measure.Seconds(() => a = FashionMnist.Load(dataDir, off)));
                cached.Add(Measure.Seconds(() => b = FashionMnist.Load(dataDir, on)));
                copied.Add(Measure.Seconds(() => c = FashionMnist.Load(dataDir, copying)));
                key.Add(Measure.Seconds(() => DecodedDataCache.Key(FashionMnist.SourceFiles(dataDir), FashionMnist.ValidationExamples)));
                using (a) using (b) using (c) identical &= Same(a!, b!) && Same(a!, c!);
            }
            double d = Measure.Median(decoded), m = Measure.Median(cached), k = Measure.Median(copied);
            Console.WriteLine(FormattableString.Invariant(
                $"decoded (gzip + normalise):          median {d:F3} s  ({decoded.Min():F3}..{decoded.Max():F3})"));
            Console.WriteLine(FormattableString.Invariant(
                $"cached, tensors over the mapped file: median {m:F3} s  ({cached.Min():F3}..{cached.Max():F3}), of which the key {Measure.Median(key) * 1000:F0} ms"));
            Console.WriteLine(FormattableString.Invariant(
                $"cached, copied out of the mapping:    median {k:F3} s  ({copied.Min():F3}..{copied.Max():F3})"));
            Console.WriteLine(FormattableString.Invariant(
                $"ratio decoded / cached: {d / m:F1} (mapped), {d / k:F1} (copied); building the cache once: {build:F3} s; cache file {new FileInfo(file).Length / 1e6:F0} MB"));
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
            Same(p.Item1.Images, p.Item2.Images) && Same(p.Item1.Labels, p.Item2.Labels));

    static bool Same(Tensor x, Tensor y)
    {
        using var cx = x.contiguous();
        using var cy = y.contiguous();
        return cx.dtype == cy.dtype && cx.bytes.SequenceEqual(cy.bytes);
    }
}
