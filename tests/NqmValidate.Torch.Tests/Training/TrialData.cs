using NqmValidate.Training.Data;
using NqmValidate.Training.Runtime;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// Data for trial tests, loaded once per test class: the real Fashion-MNIST cut down to a few thousand
/// training images (so a small MLP learns in seconds), and a tiny synthetic set for the mechanics.
/// </summary>
public sealed class TrialData : IDisposable
{
    readonly FashionMnistData _real;
    readonly IdxFixtures _fixtures;

    /// <summary>4,000 real training images, 1,000 real validation images (views of the full set).</summary>
    public FashionMnistData RealSmall { get; }

    /// <summary>300 synthetic training images, 50 validation, 20 test.</summary>
    public FashionMnistData Synthetic { get; }

    public TrialData()
    {
        TorchRuntime.Initialize(1);
        if (!Directory.Exists(FashionMnist.DefaultDirectory))
            throw new InvalidOperationException($"{FashionMnist.DefaultDirectory} is missing: `sudo apt-get install dataset-fashion-mnist` (scripts/test installs it).");
        _real = FashionMnist.Load(FashionMnist.DefaultDirectory);
        RealSmall = _real with
        {
            Train = Head(_real.Train, 4000),
            Validation = Head(_real.Validation, 1000),
        };
        _fixtures = new IdxFixtures().WriteValid(train: 350, test: 20);
        Synthetic = FashionMnist.Load(_fixtures.Directory, new FashionMnistOptions(ValidationExamples: 50));
    }

    static DataSplit Head(DataSplit split, long count) =>
        new(split.Name, split.Images.narrow(0, 0, count), split.Labels.narrow(0, 0, count));

    public void Dispose()
    {
        _real.Dispose();
        Synthetic.Dispose();
        _fixtures.Dispose();
    }
}
