// Compiled by MSBuild's RoslynCodeTaskFactory (see TorchSharpGlibcxxFix.targets); not part of any project.
// Marks one symbol-version requirement of an ELF64 little-endian shared library as weak, so the
// dynamic loader accepts the library on a machine whose libstdc++ lacks that version.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class NqmPatchGlibcxxRequirement : Task
{
    [Required] public string LibraryPath { get; set; } = "";
    [Required] public string VersionName { get; set; } = "";
    [Output] public string Outcome { get; set; } = "";

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6",
        "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        try
        {
            string libstdcxx = Array.Find(LibStdCxxCandidates, File.Exists);
            if (libstdcxx == null) { Outcome = "no system libstdc++ found; left untouched"; return true; }
            byte[] needle = Encoding.ASCII.GetBytes(VersionName + "\0");
            if (IndexOf(File.ReadAllBytes(libstdcxx), needle) >= 0)
            {
                Outcome = libstdcxx + " provides " + VersionName + "; left untouched";
                return true;
            }

            byte[] elf = File.ReadAllBytes(LibraryPath);
            int changed = MarkWeak(elf, VersionName, out bool found);
            if (!found) { Outcome = "does not require " + VersionName + "; left untouched"; return true; }
            if (changed == 0) { Outcome = VersionName + " requirement already weak"; return true; }

            // Write a new file and rename over the old one: the output copy may be a hard link
            // into the NuGet cache, which must never change.
            string tmp = LibraryPath + ".nqm-tmp";
            File.WriteAllBytes(tmp, elf);
            // Delete first: File.Copy/Move with overwrite on netstandard could write through a hard link.
            File.Delete(LibraryPath);
            File.Move(tmp, LibraryPath);
            Outcome = "marked " + VersionName + " weak (" + libstdcxx + " lacks it)";
            return true;
        }
        catch (Exception e)
        {
            Log.LogError("Could not patch {0}: {1}", LibraryPath, e.Message);
            return false;
        }
    }

    static int MarkWeak(byte[] elf, string versionName, out bool found)
    {
        found = false;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("not a 64-bit little-endian ELF file");
        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int changed = 0;
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);

            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    string name = ReadString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                    if (name == versionName)
                    {
                        found = true;
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlgWeak) == 0)
                        {
                            BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, (int)aux + 4);
                            changed++;
                        }
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                long next = BitConverter.ToUInt32(elf, (int)need + 12);
                if (next == 0) break;
                need += next;
            }
        }
        return changed;
    }

    static string ReadString(byte[] bytes, long start)
    {
        long end = start;
        while (bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, (int)start, (int)(end - start));
    }

    static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i <= haystack.Length - needle.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }
}
