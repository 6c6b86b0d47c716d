using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>The decoded data cache (DecodedDataCache): bit-identical to decoding, invalidated by any change, never trusted when damaged.</summary>
public sealed class DataCacheTests : IDisposable
{
    const int Validation = 10;
    readonly string _cache = Path.Combine(Path.GetTempPath(), "nqm-cache-test-" + Guid.NewGuid().ToString("N"));
    readonly DataCacheLocation _location;

    public DataCacheTests()
    {
        TorchRuntime.Initialize(1);
        _location = new DataCacheLocation(_cache);
    }

    public void Dispose()
    {
        try { Directory.Delete(_cache, recursive: true); } catch (IOException) { }
    }

    static byte[] Bytes(Tensor t)
    {
        using var c = t.contiguous();
        return c.bytes.ToArray();
    }

    /// <summary>Every tensor byte for byte, and the normalisation's doubles exactly.</summary>
    static void AssertIdentical(DecodedFashionMnist expected, DecodedFashionMnist actual)
    {
        Assert.Equal(expected.Normalization, actual.Normalization);
        foreach (var (e, a) in new[] { (expected.TrainImages, actual.TrainImages), (expected.TrainLabels, actual.TrainLabels),
                     (expected.TestImages, actual.TestImages), (expected.TestLabels, actual.TestLabels) })
        {
            Assert.Equal(e.dtype, a.dtype);
            Assert.Equal(e.shape, a.shape);
            Assert.True(Bytes(e).AsSpan().SequenceEqual(Bytes(a)), $"{e.dtype} {string.Join("x", e.shape)} tensors differ");
        }
    }

    static void AssertIdentical(FashionMnistData expected, FashionMnistData actual)
    {
        Assert.Equal(expected.Normalization, actual.Normalization);
        foreach (var (e, a) in new[] { (expected.Train, actual.Train), (expected.Validation, actual.Validation),
                     (expected.TrainEval, actual.TrainEval), (expected.Test, actual.Test) })
        {
            Assert.Equal(e.Images.shape, a.Images.shape);
            Assert.True(Bytes(e.Images).AsSpan().SequenceEqual(Bytes(a.Images)), $"{e.Name} images differ");
            Assert.True(Bytes(e.Labels).AsSpan().SequenceEqual(Bytes(a.Labels)), $"{e.Name} labels differ");
        }
    }

    DataCacheResult Load(string dir) => DecodedDataCache.Load(dir, Validation, _location);

    string CacheFile(string dir) => DecodedDataCache.FilePath(_cache, dir, Validation);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheSplitsLoadedThroughTheCacheAreBitIdenticalToTheDecodedOnes(bool shareMappedMemory)
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        var options = new FashionMnistOptions(ValidationExamples: Validation, EvalExamples: 20);
        var location = _location with { ShareMappedMemory = shareMappedMemory };
        using var decoded = FashionMnist.Load(fx.Directory, options with { Cache = DataCacheLocation.Off });
        using var built = FashionMnist.Load(fx.Directory, options with { Cache = location });
        Assert.True(File.Exists(CacheFile(fx.Directory)));
        using var read = FashionMnist.Load(fx.Directory, options with { Cache = location });
        AssertIdentical(decoded, built);
        AssertIdentical(decoded, read);
        // The values are the normalised pixels, not merely equal bytes on both sides: (p/255 − mean)/std.
        float expected = (float)((IdxFixtures.Pixel(53, 4, 9) / 255.0 - read.Normalization.Mean) / read.Normalization.Std);
        Assert.Equal(expected, read.Validation.Images[3, 0, 4, 9].item<float>(), 5);
    }

    [Fact]
    public void TheFirstLoadBuildsTheCacheAndTheNextReadsIt()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        using var reference = DecodedDataCache.Load(fx.Directory, Validation, DataCacheLocation.Off).Data;
        var first = Load(fx.Directory);
        var second = Load(fx.Directory);
        using (first.Data)
        using (second.Data)
        {
            Assert.Equal((DataCacheOutcome.Built, (string?)null), (first.Outcome, first.Notice));
            Assert.Equal((DataCacheOutcome.Hit, (string?)null), (second.Outcome, second.Notice));
            AssertIdentical(reference, second.Data);
        }
        // Another validation split normalises with other statistics: a file of its own.
        using var other = DecodedDataCache.Load(fx.Directory, Validation + 5, _location).Data;
        Assert.NotEqual(CacheFile(fx.Directory), DecodedDataCache.FilePath(_cache, fx.Directory, Validation + 5));
        Assert.Equal(2, Directory.GetFiles(_cache).Length);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RealFashionMnistFromTheCacheIsBitIdenticalToDecoding(bool shareMappedMemory)
    {
        Assert.True(Directory.Exists(FashionMnist.DefaultDirectory),
            $"{FashionMnist.DefaultDirectory} is missing: install it with `sudo apt-get install dataset-fashion-mnist` (scripts/test does).");
        int validation = FashionMnist.ValidationExamples;
        using var reference = DecodedDataCache.Load(FashionMnist.DefaultDirectory, validation, DataCacheLocation.Off).Data;
        var location = _location with { ShareMappedMemory = shareMappedMemory };
        DecodedDataCache.Load(FashionMnist.DefaultDirectory, validation, location).Data.Dispose();
        var read = DecodedDataCache.Load(FashionMnist.DefaultDirectory, validation, location);
        using (read.Data)
        {
            Assert.Equal(DataCacheOutcome.Hit, read.Outcome);
            Assert.Equal(new long[] { 60_000, 1, 28, 28 }, read.Data.TrainImages.shape);
            AssertIdentical(reference, read.Data);
        }
    }

    [Fact]
    public void WritingToATensorOverTheMappedCacheNeitherFailsNorReachesTheFile()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        using var reference = DecodedDataCache.Load(fx.Directory, Validation, DataCacheLocation.Off).Data;
        Load(fx.Directory).Data.Dispose();
        var fileBefore = File.ReadAllBytes(CacheFile(fx.Directory));
        var read = Load(fx.Directory);
        using (read.Data)
        {
            Assert.Equal(DataCacheOutcome.Hit, read.Outcome);
            read.Data.TrainImages.mul_(2.0f); // copy-on-write: this process's pages only
            read.Data.TestLabels.zero_();
            Assert.Equal(0, read.Data.TestLabels.sum().item<long>());
            using var doubled = reference.TrainImages * 2.0f;
            Assert.True(Bytes(doubled).AsSpan().SequenceEqual(Bytes(read.Data.TrainImages)));
        }
        Assert.Equal(fileBefore, File.ReadAllBytes(CacheFile(fx.Directory)));
        var again = Load(fx.Directory);
        using (again.Data)
        {
            Assert.Equal(DataCacheOutcome.Hit, again.Outcome);
            AssertIdentical(reference, again.Data);
        }
    }

    static bool IsMapped(string file) => File.ReadAllText("/proc/self/maps").Contains(Path.GetFullPath(file));

    [Fact]
    public void MappedTensorsShareTheFileUntilTheirLastViewIsDisposed()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        Load(fx.Directory).Data.Dispose();
        string file = CacheFile(fx.Directory);
        Assert.False(IsMapped(file));

        var read = Load(fx.Directory);
        Assert.Equal(DataCacheOutcome.Hit, read.Outcome);
        Assert.True(IsMapped(file)); // the tensors are the file's pages, not a copy
        var view = read.Data.TrainImages.narrow(0, 50, 10); // as the validation split is
        read.Data.Dispose();
        Assert.True(IsMapped(file)); // a view still holds the storage
        Assert.Equal(10, view.shape[0]);
        view.Dispose();
        Assert.False(IsMapped(file)); // LibTorch's deleter unmapped it with the last view

        var copied = DecodedDataCache.Load(fx.Directory, Validation, _location with { ShareMappedMemory = false });
        using (copied.Data)
        {
            Assert.Equal(DataCacheOutcome.Hit, copied.Outcome);
            Assert.False(IsMapped(file)); // copies of their own; the mapping is gone once read
        }
    }

    [Fact]
    public void MappedTensorsOutliveTheCacheFileBeingDeletedOrReplaced()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        using var reference = DecodedDataCache.Load(fx.Directory, Validation, DataCacheLocation.Off).Data;
        Load(fx.Directory).Data.Dispose();
        var held = Load(fx.Directory);
        using (held.Data)
        {
            Assert.Equal(DataCacheOutcome.Hit, held.Outcome);
            File.Delete(CacheFile(fx.Directory)); // a user clearing the cache mid-run
            Load(fx.Directory).Data.Dispose(); // another process rebuilding it (a new file renamed into place)
            AssertIdentical(reference, held.Data);
        }
    }

    [Fact]
    public void TouchingASourceFileInvalidatesTheCache()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        Load(fx.Directory).Data.Dispose();
        string labels = Path.Combine(fx.Directory, FashionMnist.TestLabels + ".gz");
        File.SetLastWriteTimeUtc(labels, File.GetLastWriteTimeUtc(labels).AddSeconds(-10));

        var result = Load(fx.Directory);
        result.Data.Dispose();
        Assert.Equal(DataCacheOutcome.Rebuilt, result.Outcome);
        Assert.Contains("stale", result.Notice);
        Assert.DoesNotContain('\n', result.Notice!);
        Assert.Equal(DataCacheOutcome.Hit, Load(fx.Directory).Outcome);
    }

    [Fact]
    public void ASourceReplacedByOneOfTheSameLengthAndTimestampInvalidatesTheCache()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20, gzip: false);
        using (var before = Load(fx.Directory).Data)
            Assert.Equal(IdxFixtures.Label(3), before.TestLabels[3].item<long>());
        // Other labels, same length, old timestamp (as `cp -p` or `tar x` would leave them).
        string labels = Path.Combine(fx.Directory, FashionMnist.TestLabels);
        var stamp = File.GetLastWriteTimeUtc(labels);
        File.WriteAllBytes(labels, IdxFixtures.LabelsIdx(20, i => (byte)(9 - IdxFixtures.Label(i))));
        File.SetLastWriteTimeUtc(labels, stamp);

        var result = Load(fx.Directory);
        using (result.Data)
        {
            Assert.Equal(DataCacheOutcome.Rebuilt, result.Outcome);
            Assert.Equal(9 - IdxFixtures.Label(3), result.Data.TestLabels[3].item<long>());
        }
    }

    public static TheoryData<string> Damages => ["truncated", "empty", "magic", "version", "payload", "length-field"];

    [Theory]
    [MemberData(nameof(Damages))]
    public void ADamagedCacheFileIsRebuiltNotTrusted(string damage)
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        using var reference = DecodedDataCache.Load(fx.Directory, Validation, DataCacheLocation.Off).Data;
        Load(fx.Directory).Data.Dispose();
        string file = CacheFile(fx.Directory);
        long length = new FileInfo(file).Length;
        var bytes = File.ReadAllBytes(file);
        switch (damage)
        {
            case "truncated": bytes = bytes[..(bytes.Length - 1000)]; break;
            case "empty": bytes = []; break;
            case "magic": bytes[0] ^= 0xFF; break;
            case "version": bytes[8] += 1; break;
            case "payload": bytes[^500] ^= 0x01; break; // one bit of a test image
            case "length-field": bytes[88] += 4; break;
        }
        File.WriteAllBytes(file, bytes);

        var result = Load(fx.Directory);
        using (result.Data)
        {
            Assert.Equal(DataCacheOutcome.Rebuilt, result.Outcome);
            Assert.StartsWith("note: the decoded data cache", result.Notice);
            AssertIdentical(reference, result.Data);
        }
        Assert.Equal(length, new FileInfo(file).Length);
        using var again = Load(fx.Directory).Data;
        AssertIdentical(reference, again);
    }

    [Fact]
    public async Task LoadsRacingToBuildTheCacheAllGetTheDataAndLeaveOneWholeFile()
    {
        // Each load writes its own temporary file and renames it into place, as separate processes do: the last rename wins.
        using var fx = new IdxFixtures().WriteValid(train: 300, test: 50);
        using var reference = DecodedDataCache.Load(fx.Directory, Validation, DataCacheLocation.Off).Data;
        const int racers = 4;
        using var start = new Barrier(racers);
        var results = Enumerable.Range(0, racers)
            .Select(_ => Task.Run(() => { TorchRuntime.Initialize(1); start.SignalAndWait(); return Load(fx.Directory); }))
            .ToArray();
        foreach (var r in await Task.WhenAll(results))
            using (r.Data)
            {
                Assert.Contains(r.Outcome, new[] { DataCacheOutcome.Built, DataCacheOutcome.Hit });
                Assert.Null(r.Notice);
                AssertIdentical(reference, r.Data);
            }
        Assert.Equal([CacheFile(fx.Directory)], Directory.GetFiles(_cache)); // no temporary file left behind
        var after = Load(fx.Directory);
        using (after.Data)
        {
            Assert.Equal(DataCacheOutcome.Hit, after.Outcome);
            AssertIdentical(reference, after.Data);
        }
    }

    [Fact]
    public void AnUnwritableCacheFolderDecodesWithOneNotice()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        using var reference = DecodedDataCache.Load(fx.Directory, Validation, DataCacheLocation.Off).Data;
        // A folder under a regular file cannot be created, even by root.
        string blocker = Path.Combine(fx.Directory, "not-a-folder");
        File.WriteAllText(blocker, "");
        var result = DecodedDataCache.Load(fx.Directory, Validation, new DataCacheLocation(Path.Combine(blocker, "cache")));
        using (result.Data)
        {
            Assert.Equal(DataCacheOutcome.Unwritable, result.Outcome);
            Assert.StartsWith("note: cannot write the decoded data cache", result.Notice);
            Assert.DoesNotContain('\n', result.Notice!);
            AssertIdentical(reference, result.Data);
        }
    }

    [Fact]
    public void ABrokenSourceIsReportedAsWithoutACache()
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20);
        Load(fx.Directory).Data.Dispose();
        File.Delete(Path.Combine(fx.Directory, FashionMnist.TrainImages + ".gz"));
        var e = Assert.Throws<DataSetException>(() => Load(fx.Directory));
        Assert.Equal(DataFault.Missing, e.Fault);
    }

    [Theory]
    [InlineData("off", null, null, "/home/u", null)]
    [InlineData("0", "/c", null, "/home/u", null)]
    [InlineData("FALSE", null, null, "/home/u", null)]
    [InlineData(null, "/c", "/x", "/home/u", "/c")]
    [InlineData("on", null, "/x", "/home/u", "/x/nqm-validate")]
    [InlineData(null, null, "relative", "/home/u", "/home/u/.cache/nqm-validate")]
    [InlineData(null, null, null, "/home/u", "/home/u/.cache/nqm-validate")]
    [InlineData(null, null, null, null, null)]
    public void TheLocationComesFromTheEnvironment(string? dataCache, string? cacheDir, string? xdg, string? home, string? expected)
    {
        var variables = new Dictionary<string, string?>
        {
            ["NQM_DATA_CACHE"] = dataCache, ["NQM_CACHE_DIR"] = cacheDir, ["XDG_CACHE_HOME"] = xdg, ["HOME"] = home,
        };
        Assert.Equal(expected, DataCacheLocation.FromVariables(name => variables.GetValueOrDefault(name)).Folder);
    }
}
