namespace NqmValidate.Training;

/// <summary>
/// Derives independent seeds from one seed (experiment → study → trial → stream), so any trial can be
/// re-run alone with the same randomness. SplitMix64 finalizer over (seed, stream): a pure function.
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
}
