using NqmValidate.Training.Models;
using NqmValidate.Training.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

public class ModelTests
{
    public ModelTests() => TorchRuntime.Initialize(1);

    public static TheoryData<string> AllNames() => new(ModelRegistry.Names);

    [Theory]
    [MemberData(nameof(AllNames))]
    public void EveryModelMapsImagesToTenLogitsAndTrains(string name)
    {
        using var model = ModelRegistry.Create(new ModelSpec(name), seed: 3);
        using var gen = new Generator(11);
        using var x = randn(new long[] { 4, 1, 28, 28 }, generator: gen);
        using var y = tensor(new long[] { 0, 3, 7, 9 });
        using var logits = model.call(x);
        Assert.Equal(new long[] { 4, 10 }, logits.shape);
        using var loss = nn.functional.cross_entropy(logits, y);
        loss.backward();
        Assert.All(model.parameters(), p => Assert.NotNull(p.grad));
    }

    [Theory]
    [MemberData(nameof(AllNames))]
    public void TheSameSeedGivesTheSameWeightsAndAnotherSeedOtherWeights(string name)
    {
        using var a = ModelRegistry.Create(new ModelSpec(name), seed: 5);
        using var b = ModelRegistry.Create(new ModelSpec(name), seed: 5);
        using var c = ModelRegistry.Create(new ModelSpec(name), seed: 6);
        var pa = a.parameters().ToArray(); var pb = b.parameters().ToArray(); var pc = c.parameters().ToArray();
        Assert.All(Enumerable.Range(0, pa.Length), i => Assert.True(pa[i].equal(pb[i]).all().item<bool>(), $"parameter {i} differs for the same seed"));
        Assert.Contains(Enumerable.Range(0, pa.Length), i => !pa[i].equal(pc[i]).all().item<bool>());
    }

    [Fact]
    public void WeightsDoNotDependOnTheGlobalRandomStateOrOtherThreads()
    {
        using var reference = ModelRegistry.Create(new ModelSpec("mlp"), seed: 21);
        var expected = reference.parameters().Select(p => p.detach().clone()).ToArray();
        using var stop = new CancellationTokenSource();
        // Another thread keeps drawing from torch's global generator while models are built here.
        var noise = Task.Run(() => { while (!stop.IsCancellationRequested) { manual_seed(99); using var r = rand(1000); } });
        try
        {
            for (int i = 0; i < 5; i++)
            {
                using var model = ModelRegistry.Create(new ModelSpec("mlp"), seed: 21);
                var actual = model.parameters().ToArray();
                Assert.All(Enumerable.Range(0, expected.Length), k => Assert.True(expected[k].equal(actual[k]).all().item<bool>(), $"parameter {k} changed"));
            }
        }
        finally { stop.Cancel(); noise.Wait(); }
        // PyTorch's default bound for Linear(784, 256): every weight within ±1/√784.
        Assert.True(expected[0].abs().max().item<float>() <= 1 / 28f);
        Assert.True(expected[0].abs().max().item<float>() > 0.9f / 28f);
    }

    [Fact]
    public void ParameterCountsMatchTheArchitectures()
    {
        // Hand-counted: weights + biases of each layer.
        long mlp = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10;
        long Cnn(int c1, int c2, int fc) => 25 * c1 + c1 + 25 * c1 * c2 + c2 + 49 * c2 * fc + fc + fc * 10 + 10;
        Assert.Equal(mlp, Count(new ModelSpec("mlp")));
        Assert.Equal(784 * 100 + 100 + 100 * 10 + 10, Count(new ModelSpec("mlp", HiddenWidths: [100])));
        Assert.Equal(Cnn(32, 64, 1024), Count(new ModelSpec("cnn")));
        Assert.Equal(3_274_634, Count(new ModelSpec("cnn")));
        Assert.Equal(Cnn(16, 32, 512), Count(new ModelSpec("cnn-narrow")));
        Assert.Equal(Cnn(64, 128, 2048), Count(new ModelSpec("cnn-wide")));
        // ResNet-8 without normalisation: stem conv(1→16)+bias; blocks 16→16, 16→32 (+1×1 shortcut), 32→64 (+shortcut); fc 64→10.
        long Conv(int i, int o, int k, bool bias) => (long)i * o * k * k + (bias ? o : 0);
        long nonorm = Conv(1, 16, 3, true)
            + Conv(16, 16, 3, true) * 2
            + Conv(16, 32, 3, true) + Conv(32, 32, 3, true) + Conv(16, 32, 1, true)
            + Conv(32, 64, 3, true) + Conv(64, 64, 3, true) + Conv(32, 64, 1, true)
            + 64 * 10 + 10;
        Assert.Equal(nonorm, Count(new ModelSpec("resnet-nonorm")));
        // With batch norm: convolutions lose their biases, each BN has 2 parameters per channel.
        long bn = Conv(1, 16, 3, false) + 2 * 16
            + (Conv(16, 16, 3, false) + 2 * 16) * 2
            + Conv(16, 32, 3, false) + Conv(32, 32, 3, false) + Conv(16, 32, 1, false) + 3 * 2 * 32
            + Conv(32, 64, 3, false) + Conv(64, 64, 3, false) + Conv(32, 64, 1, false) + 3 * 2 * 64
            + 64 * 10 + 10;
        Assert.Equal(bn, Count(new ModelSpec("resnet")));
        Assert.True(Count(new ModelSpec("resnet", BlocksPerStage: 2)) > bn);
    }

    [Fact]
    public void OnlyTheNormalisedResNetHasBatchNorm()
    {
        using var withNorm = ModelRegistry.Create(new ModelSpec("resnet"), 1);
        using var without = ModelRegistry.Create(new ModelSpec("resnet-nonorm"), 1);
        Assert.Contains(withNorm.modules(), m => m is TorchSharp.Modules.BatchNorm2d);
        Assert.DoesNotContain(without.modules(), m => m is TorchSharp.Modules.BatchNorm2d);
        // Fixup-style start: every residual branch's last convolution is zero, so each block starts as its shortcut.
        var lastConvs = without.named_parameters().Where(p => p.name.EndsWith("conv2.weight")).ToArray();
        Assert.Equal(3, lastConvs.Length);
        Assert.All(lastConvs, p => Assert.Equal(0f, p.parameter.abs().sum().item<float>()));
        Assert.Contains(withNorm.named_parameters(), p => p.name.EndsWith("conv2.weight") && p.parameter.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void UnknownNamesAndMisplacedOptionsListWhatIsValid()
    {
        var e = Assert.Throws<ModelSpecException>(() => ModelRegistry.Create(new ModelSpec("vgg"), 1));
        foreach (var name in ModelRegistry.Names) Assert.Contains(name, e.Message);
        Assert.Throws<ModelSpecException>(() => ModelRegistry.Resolve(new ModelSpec("cnn", HiddenWidths: [10])));
        Assert.Throws<ModelSpecException>(() => ModelRegistry.Resolve(new ModelSpec("mlp", WidthMultiplier: 2)));
        Assert.Throws<ModelSpecException>(() => ModelRegistry.Resolve(new ModelSpec("cnn", BlocksPerStage: 2)));
        Assert.Equal([256, 256], ModelRegistry.Resolve(new ModelSpec("mlp")).HiddenWidths);
    }

    static long Count(ModelSpec spec)
    {
        using var model = ModelRegistry.Create(spec, 0);
        return ModelRegistry.ParameterCount(model);
    }

    [Fact]
    public void ConvolutionChannelCountsOffTheSixteenGridAreNamed()
    {
        // Oracle: the registered widths (16/32/64 channels and up) are on the grid; width 0.375 gives 6, 12 and 24.
        Assert.Empty(ModelRegistry.ChannelCountsOffTheGrid(new ModelSpec("mlp")));
        Assert.Empty(ModelRegistry.ChannelCountsOffTheGrid(new ModelSpec("cnn-narrow")));
        Assert.Empty(ModelRegistry.ChannelCountsOffTheGrid(new ModelSpec("resnet")));
        var off = ModelRegistry.ChannelCountsOffTheGrid(new ModelSpec("resnet-nonorm", WidthMultiplier: 0.375));
        Assert.Contains("stem.conv: 6", off);
        Assert.Contains(off, o => o.EndsWith(": 12"));
        Assert.Contains(off, o => o.EndsWith(": 24"));
        Assert.DoesNotContain(off, o => o.EndsWith(": 16") || o.EndsWith(": 32"));
    }
}
