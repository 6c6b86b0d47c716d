using System.Buffers.Binary;
using System.IO.Compression;
using NqmValidate.Training.Data;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>Writes tiny Fashion-MNIST-shaped IDX files (valid or deliberately broken) into a temporary directory.</summary>
public sealed class IdxFixtures : IDisposable
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "nqm-idx-" + Guid.NewGuid().ToString("N"));

    public IdxFixtures() => System.IO.Directory.CreateDirectory(Directory);

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }

    /// <summary>Pixel (i, r, c) of the synthetic images: deterministic, spread over 0..255.</summary>
    public static byte Pixel(int image, int row, int col) => (byte)((image * 37 + row * 11 + col * 5 + row * col) % 256);

    /// <summary>Label of synthetic image i.</summary>
    public static byte Label(int image) => (byte)(image * 7 % 10);

    public static byte[] ImagesIdx(int count, int rows = 28, int cols = 28)
    {
        var bytes = new byte[16 + count * rows * cols];
        BinaryPrimitives.WriteInt32BigEndian(bytes, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), cols);
        int k = 16;
        for (int i = 0; i < count; i++)
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    bytes[k++] = Pixel(i, r, c);
        return bytes;
    }

    public static byte[] LabelsIdx(int count, Func<int, byte>? label = null)
    {
        var bytes = new byte[8 + count];
        BinaryPrimitives.WriteInt32BigEndian(bytes, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), count);
        for (int i = 0; i < count; i++) bytes[8 + i] = (label ?? Label)(i);
        return bytes;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gz = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return output.ToArray();
    }

    /// <summary>Writes a file into the fixture directory; gzip-compressed under NAME.gz when asked.</summary>
    public string Write(string name, byte[] data, bool gzip)
    {
        string path = Path.Combine(Directory, gzip ? name + ".gz" : name);
        File.WriteAllBytes(path, gzip ? Gzip(data) : data);
        return path;
    }

    /// <summary>A complete valid data set: <paramref name="train"/> training and <paramref name="test"/> test images.</summary>
    public IdxFixtures WriteValid(int train = 60, int test = 20, bool gzip = true)
    {
        Write(FashionMnist.TrainImages, ImagesIdx(train), gzip);
        Write(FashionMnist.TrainLabels, LabelsIdx(train), gzip);
        Write(FashionMnist.TestImages, ImagesIdx(test), gzip);
        Write(FashionMnist.TestLabels, LabelsIdx(test), gzip);
        return this;
    }
}
