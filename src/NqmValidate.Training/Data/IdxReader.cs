using System.Buffers.Binary;
using System.IO.Compression;

namespace NqmValidate.Training.Data;

/// <summary>What is wrong with a data file.</summary>
public enum DataFault
{
    /// <summary>The data directory or a file in it does not exist.</summary>
    Missing,
    /// <summary>The first four bytes are not the IDX magic expected for this file.</summary>
    WrongMagic,
    /// <summary>The header's dimensions disagree with the number of data bytes.</summary>
    LengthMismatch,
    /// <summary>The gzip stream is truncated or corrupt.</summary>
    CorruptGzip,
    /// <summary>A label lies outside 0..classes-1.</summary>
    LabelOutOfRange,
    /// <summary>An image file and its label file hold different numbers of examples.</summary>
    CountMismatch,
    /// <summary>The images do not have the shape the data set needs (e.g. not 28×28).</summary>
    WrongShape,
}

/// <summary>A data file is missing or malformed. The message names the file and the fault.</summary>
public sealed class DataSetException(string path, DataFault fault, string message, Exception? inner = null)
    : Exception($"{path}: {message}", inner)
{
    public string FilePath { get; } = path;
    public DataFault Fault { get; } = fault;
}

/// <summary>An IDX array of unsigned bytes: its dimensions and its data in row-major order.</summary>
public sealed record IdxArray(int[] Dimensions, byte[] Data)
{
    public int Count => Dimensions[0];
}

/// <summary>
/// Reads IDX files (the MNIST format: big-endian header, magic 0x0000 08 NN where 08 = unsigned byte
/// and NN = number of dimensions, then NN int32 dimensions, then the data), plain or gzip-compressed
/// (recognised by the gzip magic bytes, not by the file name).
/// </summary>
public static class IdxReader
{
    const byte UnsignedByte = 0x08;

    /// <summary>Reads an unsigned-byte IDX file with exactly <paramref name="dimensions"/> dimensions.</summary>
    public static IdxArray Read(string path, int dimensions)
    {
        if (!File.Exists(path))
            throw new DataSetException(path, DataFault.Missing, "file not found.");
        byte[] raw = File.ReadAllBytes(path);
        byte[] bytes = IsGzip(raw) ? Gunzip(path, raw) : raw;
        return Parse(path, bytes, dimensions);
    }

    static bool IsGzip(byte[] raw) => raw.Length >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;

    static byte[] Gunzip(string path, byte[] raw)
    {
        using var output = new MemoryStream();
        try
        {
            using var gzip = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            gzip.CopyTo(output);
        }
        catch (InvalidDataException e)
        {
            throw new DataSetException(path, DataFault.CorruptGzip, $"corrupt gzip data ({e.Message}). Reinstall the file.", e);
        }
        // .NET's GZipStream ends quietly on a truncated stream, so check the file's last eight bytes. A whole gzip file,
        // single- or multi-member (concatenated members are valid gzip, and GZipStream reads them all), ends with its
        // last member's trailer: CRC-32 and ISIZE (length mod 2^32; exact for these files) of that member's data, which
        // are the last ISIZE bytes decompressed. A truncated file ends inside compressed data instead.
        var data = output.ToArray();
        uint isize = raw.Length >= 18 ? BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(raw.Length - 4)) : uint.MaxValue;
        uint crc = raw.Length >= 18 ? BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(raw.Length - 8)) : 0;
        if (isize > data.Length || System.IO.Hashing.Crc32.HashToUInt32(data.AsSpan(data.Length - (int)isize)) != crc)
            throw new DataSetException(path, DataFault.CorruptGzip,
                $"truncated or corrupt gzip: the file does not end with the trailer of its decompressed data ({data.Length} bytes). Reinstall the file.");
        return data;
    }

    static IdxArray Parse(string path, byte[] bytes, int dimensions)
    {
        if (bytes.Length < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != UnsignedByte || bytes[3] != dimensions)
        {
            string found = bytes.Length >= 4 ? $"0x{BinaryPrimitives.ReadUInt32BigEndian(bytes):X8}" : $"only {bytes.Length} bytes";
            throw new DataSetException(path, DataFault.WrongMagic,
                $"wrong IDX magic number: expected 0x{0x800 | dimensions:X8} (unsigned bytes, {dimensions} dimensions), found {found}.");
        }
        int header = 4 + 4 * dimensions;
        if (bytes.Length < header)
            throw new DataSetException(path, DataFault.LengthMismatch, $"file ends inside the header ({bytes.Length} bytes, header needs {header}).");
        var dims = new int[dimensions];
        long expected = 1;
        for (int d = 0; d < dimensions; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d));
            if (dims[d] < 0)
                throw new DataSetException(path, DataFault.LengthMismatch, $"negative dimension {dims[d]} in the header.");
            expected *= dims[d];
        }
        long actual = bytes.Length - header;
        if (actual != expected)
            throw new DataSetException(path, DataFault.LengthMismatch,
                $"the header's dimensions {string.Join("×", dims)} need {expected} data bytes but the file holds {actual}.");
        return new IdxArray(dims, bytes[header..]);
    }
}
