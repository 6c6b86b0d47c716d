using System.Text;

namespace NqmValidate.Reports;

/// <summary>
/// Writes files so that a reader never sees a half-written one: write a temporary file in the same
/// directory, flush it to disk, then rename it over the target (rename is atomic on one file system).
/// </summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string contents) =>
        WriteAllBytes(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(contents));

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> contents)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + "." + Environment.ProcessId + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(contents);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Writes text produced by <paramref name="write"/> atomically (e.g. a CsvWriter over the writer).</summary>
    public static void Write(string path, Action<TextWriter> write)
    {
        using var buffer = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        write(buffer);
        WriteAllText(path, buffer.ToString());
    }
}
