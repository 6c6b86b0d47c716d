using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace NqmValidate.Training;

/// <summary>
/// Every seed of an experiment derives from its one seed, so any trial can be re-run alone with the same
/// randomness, on any machine and .NET version:
/// <list type="bullet">
/// <item>experiment → study → trial by name (<see cref="StudySeed"/>, <see cref="TrialSeed"/>): SHA-256 of the
/// parent seed and the child's name (string.GetHashCode is randomised per process), in [0, 2^31) so every
/// consumer (int or long) can take them;</item>
/// <item>trial → its random streams by number (<see cref="ModelStream"/>, <see cref="DataStream"/>, and per-epoch
/// sub-streams): a SplitMix64 finalizer over (seed, stream), a pure function.</item>
/// </list>
/// </summary>
public static class Seeds
{
    /// <summary>Named streams of one trial.</summary>
    public const long ModelStream = 1, DataStream = 2;

    /// <summary>A non-negative seed for stream <paramref name="stream"/> of <paramref name="seed"/>.</summary>
    public static long Derive(long seed, long stream)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)stream * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (long)(z & 0x7FFF_FFFF_FFFF_FFFFUL);
    }

    /// <summary>Seed of stream <paramref name="stream"/>, sub-stream <paramref name="index"/> (e.g. data, epoch).</summary>
    public static long Derive(long seed, long stream, long index) => Derive(Derive(seed, stream), index);

    /// <summary>The child seed of <paramref name="parent"/> named <paramref name="name"/>.</summary>
    public static long Derive(long parent, string name)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"{parent}/{name}"), hash);
        return (long)(BinaryPrimitives.ReadUInt64LittleEndian(hash) & 0x7FFF_FFFF);
    }

    /// <summary>The seed of a study: the optimizer, batch size and replicate name it.</summary>
    public static long StudySeed(long experimentSeed, string optimizer, int batchSize, int replicate) =>
        Derive(experimentSeed, $"study:{optimizer}:b{batchSize}:r{replicate}");

    /// <summary>The seed of a trial: its canonical index in the study's search space names it
    /// (not its position in the run order, which may depend on other studies' results).</summary>
    public static long TrialSeed(long studySeed, int trialIndex) => Derive(studySeed, $"trial:{trialIndex}");
}
