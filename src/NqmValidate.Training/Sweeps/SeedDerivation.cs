using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace NqmValidate.Training.Sweeps;

/// <summary>
/// Hierarchical seeds: experiment → study → trial. Each child seed is a SHA-256 of the parent
/// seed and the child's name, so it is the same on every machine and .NET version
/// (string.GetHashCode is randomised per process) and a trial re-run alone gets the same seed.
/// Seeds are in [0, 2^31) so every consumer (int or long) can take them.
/// </summary>
public static class SeedDerivation
{
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
