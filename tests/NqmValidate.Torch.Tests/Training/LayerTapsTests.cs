using NqmValidate.Training.Models;
using NqmValidate.Training.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// The layer taps shared by the curvature stage and update rules that need layer statistics: what they capture is each
/// layer's real input and output, and the statistics built from them are the gradients autograd computes.
/// </summary>
public class LayerTapsTests
{
    [Fact]
    public void TapsCaptureEachLayersInputAndOutputOnlyInsideACaptureAndTheirProductsAreTheWeightGradients()
    {
        TorchRuntime.Initialize(1);
        var fc1 = nn.Linear(5, 7, dtype: ScalarType.Float64);
        var fc2 = nn.Linear(7, 3, hasBias: false, dtype: ScalarType.Float64);
        var model = nn.Sequential(("fc1", fc1), ("act", nn.Tanh()), ("fc2", fc2));
        var x = randn(6, 5, dtype: ScalarType.Float64, generator: new Generator(1));
        var y = randint(0, 3, [6], generator: new Generator(2));
        using var taps = new LayerTaps(model);
        Assert.Equal(["fc1", "fc2"], taps.Taps.Select(t => t.Layer));
        Assert.Equal(["fc1.weight", "fc1.bias"], taps.Taps[0].ParameterNames);
        Assert.Equal(["fc2.weight"], taps.Taps[1].ParameterNames);

        model.call(x);
        Assert.All(taps.Taps, t => Assert.Null(t.Input)); // outside a capture the hooks do nothing

        Tensor z;
        using (taps.Capture()) z = model.call(x);
        Assert.All(taps.Taps, t => Assert.Equal(1, t.Calls));
        // Oracle: the layers' inputs and outputs recomputed by hand.
        var h = tanh(fc1.call(x));
        Assert.True(allclose(taps.Taps[0].Input!, x));
        Assert.True(allclose(taps.Taps[1].Input!, h));
        Assert.True(allclose(taps.Taps[1].Output!, z));

        // The output gradients gy with the captured inputs give the weight gradient: Σ_n gy_n x_nᵀ = ∂L/∂W (what K-FAC's
        // factors and the per-example statistics are built from).
        var loss = nn.functional.cross_entropy(z, y);
        var outputs = taps.Taps.Select(t => t.Output!).ToList();
        var gys = torch.autograd.grad([loss], outputs, retain_graph: true);
        var weights = torch.autograd.grad([loss], [fc1.weight!, fc2.weight!]);
        for (int i = 0; i < 2; i++)
            Assert.True(allclose(gys[i].t().matmul(taps.Taps[i].Input!), weights[i], rtol: 1e-10, atol: 1e-12), $"layer {i}");
    }

    [Fact]
    public void ConvolutionPatchesTimesTheFlattenedKernelAreTheConvolution()
    {
        TorchRuntime.Initialize(1);
        foreach (var (stride, padding, dilation) in new (long, long, long)[] { (1, 0, 1), (2, 1, 1), (1, 2, 2) })
        {
            var conv = nn.Conv2d(3, 4, 3, stride: stride, padding: padding, dilation: dilation, dtype: ScalarType.Float64);
            var x = randn(2, 3, 9, 8, dtype: ScalarType.Float64, generator: new Generator(3));
            var tap = LayerTap.TryCreate("", conv, conv.named_parameters().ToDictionary(p => p.name, p => p.parameter));
            Assert.NotNull(tap);
            Assert.Null(tap!.Unsupported());
            var patches = LayerTap.Patches(x, conv); // (B, Cin·kh·kw, L)
            var expected = conv.call(x);
            var viaPatches = conv.weight!.reshape(4, -1).matmul(patches) + conv.bias!.reshape(1, 4, 1);
            Assert.True(allclose(viaPatches.reshape(expected.shape), expected, rtol: 1e-10, atol: 1e-12), $"stride {stride}, padding {padding}, dilation {dilation}");
        }
    }

    [Fact]
    public void LayersThatAreNotPlainLinearOrConvolutionAreNotTapped()
    {
        var model = nn.Sequential(("norm", nn.LayerNorm(4)), ("grouped", nn.Conv2d(4, 4, 3, groups: 2)));
        using var taps = new LayerTaps(model);
        var grouped = Assert.Single(taps.Taps);
        Assert.Equal("grouped", grouped.Layer);
        Assert.Contains("grouped convolution", grouped.Unsupported());
    }
}
