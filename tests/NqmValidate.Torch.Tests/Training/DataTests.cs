using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

public class DataTests
{
    static readonly FashionMnistOptions Tiny = new(ValidationExamples: 10, EvalExamples: 20);

    public DataTests() => TorchRuntime.Initialize(1);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ValidFilesLoadIntoFixedSplitsWithTheirLabelsAndNormalisedPixels(bool gzip)
    {
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20, gzip: gzip);
        using var data = FashionMnist.Load(fx.Directory, Tiny);

        Assert.Equal(50, data.Train.Count);
        Assert.Equal(10, data.Validation.Count);
        Assert.Equal(20, data.TrainEval.Count);
        Assert.Equal(20, data.Test.Count);
        Assert.Equal(new long[] { 50, 1, 28, 28 }, data.Train.Images.shape);
        Assert.Equal(ScalarType.Float32, data.Train.Images.dtype);
        Assert.Equal(ScalarType.Int64, data.Train.Labels.dtype);

        // Labels: validation is the last 10 of the training file, the evaluation subset the first 20.
        Assert.Equal(Enumerable.Range(50, 10).Select(i => (long)IdxFixtures.Label(i)), data.Validation.Labels.data<long>().ToArray());
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)IdxFixtures.Label(i)), data.TrainEval.Labels.data<long>().ToArray());

        // Normalisation statistics come from the 50 training-split images only (independent oracle in doubles).
        var pixels = Enumerable.Range(0, 50).SelectMany(i => Enumerable.Range(0, 784).Select(k => IdxFixtures.Pixel(i, k / 28, k % 28) / 255.0)).ToArray();
        double mean = pixels.Average();
        double std = Math.Sqrt(pixels.Sum(p => (p - mean) * (p - mean)) / (pixels.Length - 1));
        Assert.Equal(mean, data.Normalization.Mean, 9);
        Assert.Equal(std, data.Normalization.Std, 9);
        // Pixel (image 53, row 4, col 9) lands in validation row 3.
        float expected = (float)((IdxFixtures.Pixel(53, 4, 9) / 255.0 - mean) / std);
        Assert.Equal(expected, data.Validation.Images[3, 0, 4, 9].item<float>(), 5);
        Assert.Equal((float)((IdxFixtures.Pixel(7, 27, 0) / 255.0 - mean) / std), data.Test.Images[7, 0, 27, 0].item<float>(), 5);
    }

    [Fact]
    public void MissingDirectoryNamesTheAptPackage()
    {
        string dir = Path.Combine(Path.GetTempPath(), "nqm-no-such-dir-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(dir, Tiny));
        Assert.Equal(DataFault.Missing, e.Fault);
        Assert.Contains(dir, e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        using var fx = new IdxFixtures().WriteValid();
        File.Delete(Path.Combine(fx.Directory, FashionMnist.TestLabels + ".gz"));
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.Missing, e.Fault);
        Assert.Contains(FashionMnist.TestLabels, e.Message);
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
    }

    [Fact]
    public void WrongMagicIsNamed()
    {
        using var fx = new IdxFixtures().WriteValid();
        // A label file where the image file belongs: magic 0x801 instead of 0x803.
        string path = fx.Write(FashionMnist.TrainImages, IdxFixtures.LabelsIdx(60), gzip: true);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.WrongMagic, e.Fault);
        Assert.Equal(path, e.FilePath);
        Assert.Contains("0x00000801", e.Message);
    }

    [Fact]
    public void DimensionsThatDisagreeWithTheLengthAreNamed()
    {
        using var fx = new IdxFixtures().WriteValid();
        var images = IdxFixtures.ImagesIdx(60);
        string path = fx.Write(FashionMnist.TrainImages, images[..^784], gzip: false); // one image short
        File.Delete(path + ".gz");
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.LengthMismatch, e.Fault);
        Assert.Equal(path, e.FilePath);
        Assert.Contains("60×28×28", e.Message);
    }

    [Fact]
    public void TruncatedGzipIsNamed()
    {
        using var fx = new IdxFixtures().WriteValid();
        string path = Path.Combine(fx.Directory, FashionMnist.TrainImages + ".gz");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.CorruptGzip, e.Fault);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void AMultiMemberGzipIsReadAsTheConcatenationOfItsMembers()
    {
        // gzip allows concatenated members (e.g. `cat a.gz b.gz`); a reader that checks only the whole length against the
        // last member's ISIZE calls such a valid file corrupt.
        using var fx = new IdxFixtures().WriteValid(train: 60, test: 20, gzip: true);
        var idx = IdxFixtures.ImagesIdx(60);
        int cut = idx.Length / 3;
        File.WriteAllBytes(Path.Combine(fx.Directory, FashionMnist.TrainImages + ".gz"),
            [.. IdxFixtures.Gzip(idx[..cut]), .. IdxFixtures.Gzip(idx[cut..])]);
        using var data = FashionMnist.Load(fx.Directory, Tiny);
        // Oracle: the same bytes as one member.
        using var reference = new IdxFixtures().WriteValid(train: 60, test: 20, gzip: true);
        using var single = FashionMnist.Load(reference.Directory, Tiny);
        Assert.Equal(single.Train.Images.shape, data.Train.Images.shape);
        Assert.True(data.Train.Images.eq(single.Train.Images).all().item<bool>());
        Assert.True(data.Validation.Images.eq(single.Validation.Images).all().item<bool>());
    }

    [Fact]
    public void CorruptGzipIsNamed()
    {
        using var fx = new IdxFixtures().WriteValid();
        string path = Path.Combine(fx.Directory, FashionMnist.TrainLabels + ".gz");
        var bytes = File.ReadAllBytes(path);
        for (int i = 12; i < bytes.Length - 8; i++) bytes[i] ^= 0x5A; // scramble the deflate blocks, keep header and trailer
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.CorruptGzip, e.Fault);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void LabelOutOfRangeIsNamedWithItsIndex()
    {
        using var fx = new IdxFixtures().WriteValid();
        string path = fx.Write(FashionMnist.TestLabels, IdxFixtures.LabelsIdx(20, i => i == 13 ? (byte)12 : (byte)1), gzip: true);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.LabelOutOfRange, e.Fault);
        Assert.Equal(path, e.FilePath);
        Assert.Contains("label 12 at index 13", e.Message);
    }

    [Fact]
    public void ImageAndLabelCountsThatDifferAreNamed()
    {
        using var fx = new IdxFixtures().WriteValid();
        fx.Write(FashionMnist.TrainLabels, IdxFixtures.LabelsIdx(59), gzip: true);
        var e = Assert.Throws<DataSetException>(() => FashionMnist.Load(fx.Directory, Tiny));
        Assert.Equal(DataFault.CountMismatch, e.Fault);
        Assert.Contains("60 images", e.Message);
        Assert.Contains("59 labels", e.Message);
    }

    [Fact]
    public void EachEpochIsAPermutationThatDependsOnlyOnSeedAndEpoch()
    {
        using var a = new EpochShuffler(50, 10, dataSeed: 42);
        using var b = new EpochShuffler(50, 10, dataSeed: 42);
        using var c = new EpochShuffler(50, 10, dataSeed: 43);
        Assert.Equal(5, a.StepsPerEpoch);
        long[] Epoch(EpochShuffler s, int epoch) =>
            Enumerable.Range(1 + 5 * epoch, 5).SelectMany(step => { using var t = s.BatchIndices(step); return t.data<long>().ToArray(); }).ToArray();

        var a0 = Epoch(a, 0);
        var a1 = Epoch(a, 1);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), a0.Order());
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), a1.Order());
        Assert.NotEqual(a0, a1);
        // The same batches whatever was asked before (b starts at epoch 1): a pure function of (seed, step).
        Assert.Equal(a1, Epoch(b, 1));
        Assert.Equal(a0, Epoch(b, 0));
        Assert.NotEqual(a0, Epoch(c, 0));
    }

    [Fact]
    public void RealFashionMnistHasTheDocumentedSplits()
    {
        Assert.True(Directory.Exists(FashionMnist.DefaultDirectory),
            $"{FashionMnist.DefaultDirectory} is missing: install it with `sudo apt-get install dataset-fashion-mnist` (scripts/test does).");
        using var data = FashionMnist.Load(null, new FashionMnistOptions(EvalExamples: 10_000));
        Assert.Equal(55_000, data.Train.Count);
        Assert.Equal(5_000, data.Validation.Count);
        Assert.Equal(10_000, data.TrainEval.Count);
        Assert.Equal(10_000, data.Test.Count);
        // Fashion-MNIST's pixel mean and std are about 0.286 and 0.353; classes are balanced in the test set.
        Assert.InRange(data.Normalization.Mean, 0.27, 0.30);
        Assert.InRange(data.Normalization.Std, 0.34, 0.37);
        var counts = data.Test.Labels.bincount(null).data<long>().ToArray();
        Assert.All(counts, n => Assert.Equal(1000, n));
    }
}
