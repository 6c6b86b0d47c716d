using System.Buffers.Binary;
using System.IO.Hashing;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using NqmValidate.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Data;

/// <summary>
/// Fashion-MNIST decoded and normalised, on the CPU, before it is split and moved to a device: the whole training file
/// (images <c>[N,1,28,28]</c> float32, labels <c>[N]</c> int64), the test file, and the statistics the images were
/// normalised with. What <see cref="DecodedDataCache"/> stores.
/// </summary>
public sealed record DecodedFashionMnist(Tensor TrainImages, Tensor TrainLabels, Tensor TestImages, Tensor TestLabels,
    PixelNormalization Normalization) : IDisposable
{
    public void Dispose()
    {
        TrainImages.Dispose();
        TrainLabels.Dispose();
        TestImages.Dispose();
        TestLabels.Dispose();
    }
}

/// <summary>Where the decoded cache lives; <see cref="Folder"/> null means no cache (decode every time).</summary>
/// <param name="Folder">The cache folder (created when needed), or null for none.</param>
/// <param name="ShareMappedMemory">
/// Whether tensors read from the cache are the mapped file's pages themselves (shared by every process that maps the
/// file; nothing copied), or copies LibTorch owns (one copy per process). The values are the same either way.
/// </param>
public sealed record DataCacheLocation(string? Folder, bool ShareMappedMemory = true)
{
    /// <summary>Decode every time; read and write no cache.</summary>
    public static DataCacheLocation Off { get; } = new((string?)null);

    /// <summary>
    /// Off if <c>$NQM_DATA_CACHE</c> is <c>off</c>, <c>0</c>, <c>false</c> or <c>no</c>; else <c>$NQM_CACHE_DIR</c>, else
    /// <c>$XDG_CACHE_HOME/nqm-validate</c>, else <c>~/.cache/nqm-validate</c> (off when there is no home folder either).
    /// </summary>
    public static DataCacheLocation FromEnvironment() => FromVariables(Environment.GetEnvironmentVariable);

    /// <summary><see cref="FromEnvironment"/> over the given variables (<c>HOME</c> included).</summary>
    public static DataCacheLocation FromVariables(Func<string, string?> variable)
    {
        string? switchValue = variable("NQM_DATA_CACHE")?.Trim().ToLowerInvariant();
        if (switchValue is "off" or "0" or "false" or "no") return Off;
        if (variable("NQM_CACHE_DIR") is { Length: > 0 } explicitFolder) return new(explicitFolder);
        // The XDG base-directory rule: a relative XDG_CACHE_HOME is invalid and ignored.
        if (variable("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg)) return new(Path.Combine(xdg, "nqm-validate"));
        return variable("HOME") is { Length: > 0 } home ? new(Path.Combine(home, ".cache", "nqm-validate")) : Off;
    }
}

/// <summary>What a load did with the cache.</summary>
public enum DataCacheOutcome
{
    /// <summary>No cache: decoded from the source files.</summary>
    Disabled,
    /// <summary>Read from a valid cache file; nothing decoded.</summary>
    Hit,
    /// <summary>No cache file yet: decoded, and the cache written.</summary>
    Built,
    /// <summary>The cache file was corrupt, truncated, of another format version or stale: decoded, and the cache rewritten.</summary>
    Rebuilt,
    /// <summary>Decoded; the cache could not be written (the run goes on without it).</summary>
    Unwritable,
}

/// <summary>A load through the cache: the data, what happened, and the one line to tell the user (or null).</summary>
public sealed record DataCacheResult(DecodedFashionMnist Data, DataCacheOutcome Outcome, string? Notice);

/// <summary>
/// The decoded, normalised Fashion-MNIST cached on disk, so that a trial process skips the gzip decode and the
/// normalisation (seconds under load): its tensors are the pages of the memory-mapped file (<see cref="MappedFile"/>),
/// so nothing is decoded or copied, and the workers of a sweep share one copy of the data in the page cache.
///
/// One file per source folder and validation-split size (the normalisation's statistics depend on it), named
/// <c>fashion-mnist-HASH-valN.bin</c> in <see cref="DataCacheLocation"/>'s folder, where HASH is a hash of the source
/// folder's full path. Little-endian layout: a 128-byte header (magic, format version, key, shapes, normalisation,
/// payload length and checksum), then train images (float32), train labels (int64), test images, test labels, each
/// exactly as <see cref="FashionMnist.Decode"/> produced them, so tensors read back are bit-identical.
///
/// Nothing is trusted that does not check out: a file with the wrong magic, version, header, length, shapes, key or
/// payload checksum is rebuilt from the source (one line of notice). It is written atomically (<see cref="AtomicFile"/>:
/// a temporary file, then rename), so two processes building it at once each write a whole file and the last rename wins;
/// a reader holding the old file keeps reading it (the rename replaces the name, not the open inode). Deleting the file
/// or folder at any time is safe. An unwritable folder costs one line of notice, not the run.
/// </summary>
public static class DecodedDataCache
{
    /// <summary>
    /// Bump whenever the layout, the decoding or the normalisation (<see cref="FashionMnist.Decode"/>) changes: files of
    /// another version are rebuilt, never read.
    /// </summary>
    public const int FormatVersion = 1;

    const int HeaderBytes = 128, KeyBytes = 32, PixelsPerImage = FashionMnist.Height * FashionMnist.Width;
    static ReadOnlySpan<byte> Magic => "NQMFMNST"u8;

    // Header offsets.
    const int VersionAt = 8, HeaderBytesAt = 12, KeyAt = 16, TrainCountAt = 48, ValidationAt = 52, TestCountAt = 56,
        HeightAt = 60, WidthAt = 64, MeanAt = 72, StdAt = 80, PayloadBytesAt = 88, ChecksumAt = 96;

    /// <summary>
    /// Reads the decoded data set of <paramref name="dataDir"/> from the cache, or decodes it (and writes the cache),
    /// and writes the result's notice, if any, as one line on stderr.
    /// </summary>
    public static DecodedFashionMnist LoadOrDecode(string dataDir, int validationExamples, DataCacheLocation location)
    {
        var result = Load(dataDir, validationExamples, location);
        if (result.Notice is { } line) Console.Error.WriteLine(line);
        return result.Data;
    }

    /// <summary>
    /// The decoded data set of <paramref name="dataDir"/>: from a valid cache file when there is one, else decoded from
    /// the source files (throwing their <see cref="DataSetException"/>) and written to the cache.
    /// </summary>
    public static DataCacheResult Load(string dataDir, int validationExamples, DataCacheLocation location)
    {
        if (location.Folder is null) return new(FashionMnist.Decode(dataDir, validationExamples), DataCacheOutcome.Disabled, null);

        // The key is computed before decoding: if a source file changes while it is decoded, the file written carries the
        // older key, and the next load rebuilds it.
        byte[] key = Key(FashionMnist.SourceFiles(dataDir), validationExamples);
        string path = FilePath(location.Folder, dataDir, validationExamples);
        string? fault = null;
        if (File.Exists(path))
        {
            var read = TryRead(path, key, validationExamples, location.ShareMappedMemory && MappedFile.Supported, out fault);
            if (read is not null) return new(read, DataCacheOutcome.Hit, null);
        }

        var decoded = FashionMnist.Decode(dataDir, validationExamples);
        try
        {
            Write(path, key, validationExamples, decoded);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(decoded, DataCacheOutcome.Unwritable,
                $"note: cannot write the decoded data cache {path} ({e.Message.ReplaceLineEndings(" ")}); decoding without it (NQM_DATA_CACHE=off silences this).");
        }
        return fault is null
            ? new(decoded, DataCacheOutcome.Built, null)
            : new(decoded, DataCacheOutcome.Rebuilt, $"note: the decoded data cache {path} was {fault}; rebuilt it from {dataDir}.");
    }

    /// <summary>The cache file for <paramref name="dataDir"/> and a validation split of <paramref name="validationExamples"/> in <paramref name="folder"/>.</summary>
    public static string FilePath(string folder, string dataDir, int validationExamples)
    {
        string source = Path.GetFullPath(dataDir).TrimEnd(Path.DirectorySeparatorChar);
        string folderHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(source)))[..16];
        return Path.Combine(Path.GetFullPath(folder), $"fashion-mnist-{folderHash}-val{validationExamples}.bin");
    }

    /// <summary>
    /// What the cache's content depends on: the format version, the validation split, and each source file's identity
    /// (full path, length, last-write time) and content (XxHash3 of its bytes). The identity alone would catch every
    /// ordinary change (a reinstall, a copy, an edit); the content hash also catches a same-length file put in place with
    /// its old timestamp (<c>cp -p</c>, <c>tar x</c>, <c>rsync -t</c>), and costs one read of the ~30 MB of gzip files
    /// at several GB/s (timed by <c>scripts/bench data-cache</c>), small beside the decode it saves.
    /// </summary>
    public static byte[] Key(IReadOnlyList<string> sourceFiles, int validationExamples)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes($"nqm-validate decoded Fashion-MNIST v{FormatVersion}\nvalidation {validationExamples}\n"));
        var buffer = new byte[1 << 20];
        foreach (string file in sourceFiles)
        {
            var info = new FileInfo(file);
            var content = new XxHash3();
            using (var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan))
            {
                int n;
                while ((n = stream.Read(buffer)) > 0) content.Append(buffer.AsSpan(0, n));
            }
            sha.AppendData(Encoding.UTF8.GetBytes(
                $"{Path.GetFullPath(file)}\n{info.Length}\n{info.LastWriteTimeUtc.Ticks}\n{content.GetCurrentHashAsUInt64():x16}\n"));
        }
        return sha.GetHashAndReset();
    }

    static void Write(string path, byte[] key, int validationExamples, DecodedFashionMnist data)
    {
        Tensor[] payload = [data.TrainImages, data.TrainLabels, data.TestImages, data.TestLabels];
        var checksum = new XxHash3();
        long payloadBytes = 0;
        foreach (var t in payload)
        {
            if (!t.is_contiguous() || t.device_type != DeviceType.CPU)
                throw new InvalidOperationException("the decoded tensors must be contiguous and on the CPU.");
            checksum.Append(t.bytes);
            payloadBytes += t.bytes.Length;
        }
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(VersionAt), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(HeaderBytesAt), HeaderBytes);
        key.CopyTo(header.AsSpan(KeyAt));
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(TrainCountAt), (int)data.TrainLabels.shape[0]);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(ValidationAt), validationExamples);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(TestCountAt), (int)data.TestLabels.shape[0]);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(HeightAt), FashionMnist.Height);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(WidthAt), FashionMnist.Width);
        BinaryPrimitives.WriteDoubleLittleEndian(header.AsSpan(MeanAt), data.Normalization.Mean);
        BinaryPrimitives.WriteDoubleLittleEndian(header.AsSpan(StdAt), data.Normalization.Std);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(PayloadBytesAt), payloadBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(ChecksumAt), checksum.GetCurrentHashAsUInt64());
        AtomicFile.WriteStream(path, stream =>
        {
            stream.Write(header);
            foreach (var t in payload) stream.Write(t.bytes);
        });
    }

    /// <summary>The cached data set, or null with the reason (<paramref name="fault"/>) when the file does not check out.</summary>
    static DecodedFashionMnist? TryRead(string path, byte[] key, int validationExamples, bool share, out string? fault)
    {
        MappedFile? mapped = null;
        Tensor[] payload = [];
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            long length = file.Length;
            if (length < HeaderBytes) { fault = $"truncated ({length} bytes)"; return null; }
            // Copy-on-write (a private mapping): pages are shared with the page cache, and so with every process reading
            // the file, until someone writes to one; a write (an in-place op on a data tensor) copies that page for its
            // process and never reaches the file.
            var map = MemoryMappedFile.CreateFromFile(file, null, 0, MemoryMappedFileAccess.CopyOnWrite, HandleInheritability.None, leaveOpen: true);
            mapped = new MappedFile(map, map.CreateViewAccessor(0, length, MemoryMappedFileAccess.CopyOnWrite));
            var header = new byte[HeaderBytes];
            mapped.Memory.ReadSpan(mapped.Origin, header.AsSpan());

            fault = HeaderFault(header, key, validationExamples, length);
            if (fault is not null) return null;
            int trainCount = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(TrainCountAt));
            int testCount = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(TestCountAt));
            var normalization = new PixelNormalization(
                BinaryPrimitives.ReadDoubleLittleEndian(header.AsSpan(MeanAt)), BinaryPrimitives.ReadDoubleLittleEndian(header.AsSpan(StdAt)));

            (long[] Shape, ScalarType Type)[] layout =
            [
                ([trainCount, 1, FashionMnist.Height, FashionMnist.Width], ScalarType.Float32), ([trainCount], ScalarType.Int64),
                ([testCount, 1, FashionMnist.Height, FashionMnist.Width], ScalarType.Float32), ([testCount], ScalarType.Int64),
            ];
            payload = new Tensor[layout.Length];
            var checksum = new XxHash3();
            ulong at = HeaderBytes;
            for (int i = 0; i < layout.Length; i++)
            {
                var (shape, type) = layout[i];
                payload[i] = share ? mapped.Tensor(at, shape, type) : CopyOut(mapped, at, shape, type);
                var bytes = payload[i].bytes;
                checksum.Append(bytes); // reads every page once: the mapped tensors' first touch happens here, not mid-training
                at += (ulong)bytes.Length;
            }
            if (checksum.GetCurrentHashAsUInt64() != BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(ChecksumAt)))
            {
                fault = "corrupt (its checksum does not match)";
                return null;
            }
            var result = new DecodedFashionMnist(payload[0], payload[1], payload[2], payload[3], normalization);
            payload = [];
            return result;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fault = $"unreadable ({e.Message.ReplaceLineEndings(" ")})";
            return null;
        }
        finally
        {
            foreach (var t in payload) t?.Dispose();
            mapped?.Release(); // the mapped tensors hold it until LibTorch frees their storage
        }
    }

    /// <summary>A tensor of its own holding a copy of the mapped bytes at <paramref name="at"/>.</summary>
    static Tensor CopyOut(MappedFile mapped, ulong at, long[] shape, ScalarType type)
    {
        var t = empty(shape, type).DetachFromDisposeScope();
        mapped.Memory.ReadSpan(mapped.Origin + at, t.bytes);
        return t;
    }

    /// <summary>Why a header cannot be trusted for this key and file length, or null when it can.</summary>
    static string? HeaderFault(byte[] header, byte[] key, int validationExamples, long length)
    {
        if (!header.AsSpan(0, Magic.Length).SequenceEqual(Magic)) return "not a cache file (wrong magic)";
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(VersionAt));
        if (version != FormatVersion) return $"of format version {version}, not {FormatVersion}";
        if (BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(HeaderBytesAt)) != HeaderBytes) return "corrupt (wrong header size)";
        if (!header.AsSpan(KeyAt, KeyBytes).SequenceEqual(key)) return "stale (the source files changed)";
        int trainCount = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(TrainCountAt));
        int testCount = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(TestCountAt));
        if (BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(ValidationAt)) != validationExamples || validationExamples >= trainCount
            || testCount < 0 || BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(HeightAt)) != FashionMnist.Height
            || BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(WidthAt)) != FashionMnist.Width)
            return "corrupt (its shapes do not fit)";
        long payloadBytes = ((long)trainCount + testCount) * (PixelsPerImage * sizeof(float) + sizeof(long));
        if (BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(PayloadBytesAt)) != payloadBytes || length != HeaderBytes + payloadBytes)
            return $"truncated or corrupt ({length} bytes, its shapes need {HeaderBytes + payloadBytes})";
        return null;
    }
}
