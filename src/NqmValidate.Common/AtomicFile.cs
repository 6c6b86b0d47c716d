using System.Globalization;
using System.Text;

namespace NqmValidate.Common;

/// <summary>
/// Writes files so that a reader never sees a half-written one: write a hidden temporary file in the same
/// directory, flush it to disk, then rename it over the target (rename is atomic on one file system).
/// The temporary file is removed if writing fails.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="contents"/> as UTF-8 without a byte-order mark.</summary>
    public static void WriteAllText(string path, string contents) =>
        WriteAllBytes(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(contents));

    public static void WriteAllBytes(string path, byte[] contents) => WriteStream(path, stream => stream.Write(contents));

    /// <summary>Writes text produced by <paramref name="write"/> atomically (e.g. a CsvWriter over the writer).</summary>
    public static void Write(string path, Action<TextWriter> write)
    {
        using var buffer = new StringWriter(CultureInfo.InvariantCulture);
        write(buffer);
        WriteAllText(path, buffer.ToString());
    }

    /// <summary>Writes what <paramref name="write"/> puts on the stream atomically (binary files, or a StreamWriter over it).</summary>
    public static void WriteStream(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }
}
