using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests;

/// <summary>TorchSharp must load on this machine (docs/design/torchsharp.md §1) and train.</summary>
public class TorchLoadsTests
{
    [Fact]
    public void OneSgdStepOfASmallModelLowersTheLossOnItsBatch()
    {
        TorchRuntime.Initialize(1);
        var gen = new Generator(7);
        var model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3));
        var x = randn(16, 4, generator: gen);
        var y = randint(0, 3, new long[] { 16 }, generator: gen);
        var optimizer = optim.SGD(model.parameters(), 0.1);
        var before = nn.functional.cross_entropy(model.call(x), y);
        optimizer.zero_grad();
        before.backward();
        optimizer.step();
        var after = nn.functional.cross_entropy(model.call(x), y);
        Assert.True(after.item<float>() < before.item<float>(),
            $"loss {before.item<float>()} -> {after.item<float>()}");
    }

    [Fact]
    public void TheNuGetCacheCopyOfTheNativeLibraryIsNeverModified()
    {
        string output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        string nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string cached = Path.Combine(nugetRoot, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(output), $"missing {output}");
        Assert.True(File.Exists(cached), $"missing {cached} (set NUGET_PACKAGES if the cache lives elsewhere)");
        // The cache copy still carries the strong GLIBCXX_3.4.32 requirement byte for byte as shipped:
        // if the build had patched it in place, the two files would be identical on a machine that needs the fix.
        bool machineNeedsFix = !File.ReadAllText("/usr/lib/x86_64-linux-gnu/libstdc++.so.6").Contains("GLIBCXX_3.4.32");
        bool same = File.ReadAllBytes(output).AsSpan().SequenceEqual(File.ReadAllBytes(cached));
        Assert.Equal(!machineNeedsFix, same);
    }
}
