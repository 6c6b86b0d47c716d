using static TorchSharp.torch;

namespace NqmValidate.Training.Data;

/// <summary>
/// The mini-batches of a trial: each epoch is a fresh permutation of the training split drawn from its
/// own <see cref="Generator"/> seeded by (trial data seed, epoch), so batch <c>s</c> is a pure function of
/// the seed and the step (no global RNG state). The last partial batch of an epoch is dropped.
/// </summary>
public sealed class EpochShuffler : IDisposable
{
    readonly long _count, _seed;
    readonly int _batchSize;
    readonly Device _device;
    long _epoch = -1;
    Tensor? _permutation;

    public EpochShuffler(long exampleCount, int batchSize, long dataSeed, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (batchSize > exampleCount)
            throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size {batchSize} exceeds the {exampleCount} training examples.");
        (_count, _batchSize, _seed, _device) = (exampleCount, batchSize, dataSeed, device ?? CPU);
    }

    public long StepsPerEpoch => _count / _batchSize;

    /// <summary>The permutation of epoch <paramref name="epoch"/> (int64, on the CPU).</summary>
    public static Tensor Permutation(long exampleCount, long dataSeed, long epoch)
    {
        using var generator = new Generator((ulong)Seeds.Derive(dataSeed, epoch));
        return randperm(exampleCount, generator: generator);
    }

    /// <summary>Indices of the batch used by update <paramref name="step"/> (1-based). A view: dispose it.</summary>
    public Tensor BatchIndices(long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        long epoch = (step - 1) / StepsPerEpoch, position = (step - 1) % StepsPerEpoch;
        if (epoch != _epoch)
        {
            _permutation?.Dispose();
            var cpu = Permutation(_count, _seed, epoch);
            var moved = cpu.to(_device);
            if (!ReferenceEquals(moved, cpu)) cpu.Dispose(); // .to() returns the same tensor on the same device
            _permutation = moved.DetachFromDisposeScope();
            _epoch = epoch;
        }
        return _permutation!.narrow(0, position * _batchSize, _batchSize);
    }

    public void Dispose() => _permutation?.Dispose();
}
