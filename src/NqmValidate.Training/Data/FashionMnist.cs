using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Data;

/// <summary>
/// A split held in memory: images <c>[N, 1, 28, 28]</c> float32 (normalised) and labels <c>[N]</c> int64,
/// on the trial's device. Splits of one data set may share storage (views), so dispose the data set, not a split.
/// </summary>
public sealed record DataSplit(string Name, Tensor Images, Tensor Labels)
{
    public long Count => Labels.shape[0];
}

/// <summary>Pixel normalisation: x ↦ (x/255 − Mean)/Std, with Mean and Std of the training split's pixels.</summary>
public sealed record PixelNormalization(double Mean, double Std);

/// <summary>How to split and where to hold Fashion-MNIST.</summary>
/// <param name="ValidationExamples">Held out of the end of the 60,000 training images (Shallue et al.: 55,000/5,000).</param>
/// <param name="EvalExamples">Size of the fixed evaluation subset (the first examples of the training split) used for training-loss targets.</param>
/// <param name="Device">Where the tensors live (null = CPU).</param>
/// <param name="Cache">Where the decoded cache lives (null = from the environment, <see cref="DataCacheLocation.FromEnvironment"/>).</param>
public sealed record FashionMnistOptions(int ValidationExamples = FashionMnist.ValidationExamples, int EvalExamples = 10_000, Device? Device = null,
    DataCacheLocation? Cache = null);

/// <summary>The loaded data set. <see cref="TrainEval"/> is a fixed subset of <see cref="Train"/>.</summary>
public sealed record FashionMnistData(
    string Directory, DataSplit Train, DataSplit Validation, DataSplit TrainEval, DataSplit Test,
    PixelNormalization Normalization) : IDisposable
{
    public void Dispose()
    {
        foreach (var split in new[] { TrainEval, Validation, Train, Test })
        {
            split.Images.Dispose();
            split.Labels.Dispose();
        }
    }
}

/// <summary>Loads the real Fashion-MNIST (IDX files, gzip or plain) into memory as tensors.</summary>
/// <summary>Where a run's data came from and a hash of its files (<see cref="FashionMnist.Identity"/>).</summary>
public sealed record DataIdentity(string Directory, string Sha256);

public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const string InstallHint = "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian package), or pass --data-dir DIR with the four IDX files.";
    public const int Classes = 10, Height = 28, Width = 28, ValidationExamples = 5_000;
    public const string TrainImages = "train-images-idx3-ubyte", TrainLabels = "train-labels-idx1-ubyte",
        TestImages = "t10k-images-idx3-ubyte", TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>The data directory to use: the given one, else $NQM_DATA_DIR, else the Debian package's.</summary>
    public static string ResolveDirectory(string? dataDir) =>
        !string.IsNullOrWhiteSpace(dataDir) ? dataDir
        : Environment.GetEnvironmentVariable("NQM_DATA_DIR") is { Length: > 0 } env ? env
        : DefaultDirectory;

    /// <summary>
    /// What identifies the data a run trained on: the resolved directory and a SHA-256 over the four files' bytes in a
    /// fixed order (the same data in another folder has the same hash; another copy or format does not).
    /// </summary>
    public static DataIdentity Identity(string? dataDir)
    {
        string dir = Path.GetFullPath(ResolveDirectory(dataDir));
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var name in new[] { TrainImages, TrainLabels, TestImages, TestLabels })
        {
            string file = FindFile(dir, name);
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(file) + "\n"));
            sha.AppendData(File.ReadAllBytes(file));
        }
        return new DataIdentity(dir, Convert.ToHexStringLower(sha.GetHashAndReset()));
    }

    /// <summary>
    /// Checks, without loading, that the data directory holds the four files and returns the number of
    /// training examples (the training file's count minus the validation split), read from the label
    /// file's IDX header: a sweep checks its batch sizes against it before any trial starts.
    /// </summary>
    public static int TrainingExamples(string? dataDir, int validationExamples = ValidationExamples)
    {
        string dir = ResolveDirectory(dataDir);
        if (!System.IO.Directory.Exists(dir))
            throw new DataSetException(dir, DataFault.Missing, $"the Fashion-MNIST directory does not exist. {InstallHint}");
        foreach (var name in new[] { TrainImages, TestImages, TestLabels }) FindFile(dir, name);
        string labels = FindFile(dir, TrainLabels);
        var header = new byte[8];
        try
        {
            using var file = File.OpenRead(labels);
            using Stream stream = labels.EndsWith(".gz", StringComparison.Ordinal) ? new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress) : file;
            stream.ReadExactly(header);
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException)
        {
            throw new DataSetException(labels, DataFault.CorruptGzip, $"cannot read the IDX header ({e.Message}). Reinstall the file.", e);
        }
        int count = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        if (header[2] != 0x08 || header[3] != 1 || count <= validationExamples)
            throw new DataSetException(labels, DataFault.WrongMagic, $"not an IDX label file with more than {validationExamples} labels.");
        return count - validationExamples;
    }

    /// <summary>
    /// Loads the training file (split into train/validation), the fixed evaluation subset and the test file.
    /// Throws <see cref="DataSetException"/> naming the file and the fault.
    /// </summary>
    public static FashionMnistData Load(string? dataDir = null, FashionMnistOptions? options = null)
    {
        options ??= new FashionMnistOptions();
        string dir = ResolveDirectory(dataDir);
        if (!System.IO.Directory.Exists(dir))
            throw new DataSetException(dir, DataFault.Missing, $"the Fashion-MNIST directory does not exist. {InstallHint}");

        // The decoded, normalised files come from the on-disk cache when it holds them (DecodedDataCache), else from Decode.
        using var decoded = DecodedDataCache.LoadOrDecode(dir, options.ValidationExamples, options.Cache ?? DataCacheLocation.FromEnvironment());
        if (options.EvalExamples < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "EvalExamples must be at least 1.");

        Device device = options.Device ?? CPU;
        int trainCount = (int)decoded.TrainLabels.shape[0];
        int fitCount = trainCount - options.ValidationExamples;
        Tensor allImages = OnDevice(decoded.TrainImages, device), allLabels = OnDevice(decoded.TrainLabels, device);
        int evalCount = Math.Min(options.EvalExamples, fitCount);
        var train = new DataSplit("train", Keep(allImages.narrow(0, 0, fitCount)), Keep(allLabels.narrow(0, 0, fitCount)));
        var validation = new DataSplit("validation",
            Keep(allImages.narrow(0, fitCount, options.ValidationExamples)), Keep(allLabels.narrow(0, fitCount, options.ValidationExamples)));
        // The evaluation subset is the first examples of the training split: the files are already in random order.
        var trainEval = new DataSplit("train_eval", Keep(allImages.narrow(0, 0, evalCount)), Keep(allLabels.narrow(0, 0, evalCount)));
        allImages.Dispose();
        allLabels.Dispose();

        var test = new DataSplit("test", OnDevice(decoded.TestImages, device), OnDevice(decoded.TestLabels, device));
        return new FashionMnistData(dir, train, validation, trainEval, test, decoded.Normalization);
    }

    /// <summary>
    /// Decodes the four files of <paramref name="dir"/> and normalises the images, on the CPU: the training file whole
    /// (its last <paramref name="validationExamples"/> images are the validation split, excluded from the statistics)
    /// and the test file. What <see cref="DecodedDataCache"/> stores.
    /// </summary>
    internal static DecodedFashionMnist Decode(string dir, int validationExamples)
    {
        var (trainX, trainY) = ReadPair(dir, TrainImages, TrainLabels);
        var (testX, testY) = ReadPair(dir, TestImages, TestLabels);
        int trainCount = trainY.Length;
        if (validationExamples < 1 || validationExamples >= trainCount)
            throw new DataSetException(FindFile(dir, TrainLabels), DataFault.CountMismatch,
                $"{trainCount} training examples cannot hold out {validationExamples} for validation.");

        using var trainRaw = ToImageTensor(trainX, trainCount);
        int fitCount = trainCount - validationExamples;
        // Statistics of the training split only (the validation split stays unseen).
        var (mean, std) = PixelStatistics(trainX.AsSpan(0, fitCount * Height * Width));
        var normalization = new PixelNormalization(mean, std);
        using var testRaw = ToImageTensor(testX, testY.Length);
        return new DecodedFashionMnist(
            Normalize(trainRaw, normalization), Keep(tensor(trainY, dtype: ScalarType.Int64)),
            Normalize(testRaw, normalization), Keep(tensor(testY, dtype: ScalarType.Int64)), normalization);
    }

    /// <summary>The four files <see cref="Load"/> reads from <paramref name="dir"/> (each NAME.gz, else NAME).</summary>
    public static string[] SourceFiles(string dir) => [.. new[] { TrainImages, TrainLabels, TestImages, TestLabels }.Select(name => FindFile(dir, name))];

    // Tensors of the data set outlive any dispose scope the caller may have open.
    static Tensor Keep(Tensor t) => t.DetachFromDisposeScope();

    /// <summary>A tensor of its own (disposed apart from <paramref name="t"/>) on <paramref name="device"/>: a copy, or on the same device an alias.</summary>
    static Tensor OnDevice(Tensor t, Device device)
    {
        var moved = t.to(device);
        return Keep(ReferenceEquals(moved, t) ? t.alias() : moved);
    }

    static (byte[] Images, long[] Labels) ReadPair(string dir, string imagesName, string labelsName)
    {
        string imagesPath = FindFile(dir, imagesName), labelsPath = FindFile(dir, labelsName);
        var images = IdxReader.Read(imagesPath, 3);
        var labels = IdxReader.Read(labelsPath, 1);
        if (images.Dimensions[1] != Height || images.Dimensions[2] != Width)
            throw new DataSetException(imagesPath, DataFault.WrongShape,
                $"images are {images.Dimensions[1]}×{images.Dimensions[2]}, Fashion-MNIST's are {Height}×{Width}.");
        if (images.Count != labels.Count)
            throw new DataSetException(imagesPath, DataFault.CountMismatch,
                $"{images.Count} images but {labelsPath} holds {labels.Count} labels.");
        var result = new long[labels.Count];
        for (int i = 0; i < result.Length; i++)
        {
            byte label = labels.Data[i];
            if (label >= Classes)
                throw new DataSetException(labelsPath, DataFault.LabelOutOfRange,
                    $"label {label} at index {i} is outside 0..{Classes - 1}.");
            result[i] = label;
        }
        return (images.Data, result);
    }

    /// <summary>The gzip file if present, else the plain one; a Missing fault naming both otherwise.</summary>
    static string FindFile(string dir, string name)
    {
        string gz = Path.Combine(dir, name + ".gz"), plain = Path.Combine(dir, name);
        if (File.Exists(gz)) return gz;
        if (File.Exists(plain)) return plain;
        throw new DataSetException(gz, DataFault.Missing, $"file not found (nor {plain}). {InstallHint}");
    }

    static Tensor ToImageTensor(byte[] pixels, long count) =>
        tensor(pixels, new long[] { count, 1, Height, Width }, dtype: ScalarType.Byte);

    /// <summary>Mean and sample standard deviation of pixel/255, exactly, from a histogram of the byte values.</summary>
    static (double Mean, double Std) PixelStatistics(ReadOnlySpan<byte> pixels)
    {
        var histogram = new long[256];
        foreach (byte b in pixels) histogram[b]++;
        double n = pixels.Length, mean = 0;
        for (int v = 0; v < 256; v++) mean += histogram[v] * (v / 255.0);
        mean /= n;
        double squares = 0;
        for (int v = 0; v < 256; v++) squares += histogram[v] * (v / 255.0 - mean) * (v / 255.0 - mean);
        return (mean, Math.Sqrt(squares / (n - 1)));
    }

    static Tensor Normalize(Tensor raw, PixelNormalization n)
    {
        Tensor result;
        using (NewDisposeScope())
        {
            result = raw.to_type(ScalarType.Float32).div_(255.0).sub_(n.Mean).div_(n.Std).MoveToOuterDisposeScope();
        }
        return Keep(result);
    }
}
