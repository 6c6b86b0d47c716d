using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace NqmValidate.Training.Models;

/// <summary>The three model families. All take <c>[N, 1, 28, 28]</c> images and return <c>[N, 10]</c> logits.</summary>
public static class Networks
{
    const int Pixels = 28 * 28, Classes = 10;

    /// <summary>Flatten → (Linear → ReLU)* → Linear. Default 784-256-256-10.</summary>
    public static Module<Tensor, Tensor> Mlp(IReadOnlyList<int> hiddenWidths)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)> { ("flatten", Flatten()) };
        int inputs = Pixels;
        for (int i = 0; i < hiddenWidths.Count; i++)
        {
            layers.Add(($"fc{i + 1}", Linear(inputs, hiddenWidths[i])));
            layers.Add(($"relu{i + 1}", ReLU()));
            inputs = hiddenWidths[i];
        }
        layers.Add(($"fc{hiddenWidths.Count + 1}", Linear(inputs, Classes)));
        return Sequential(layers);
    }

    /// <summary>
    /// Shallue et al.'s simple CNN: 5×5 conv (32) → 2×2 max-pool → 5×5 conv (64) → 2×2 max-pool →
    /// fully connected (1024) → 10, ReLU, 'same' padding. Channel and unit widths scale with <paramref name="width"/>
    /// (0.5 = narrow, 2 = wide).
    /// </summary>
    public static Module<Tensor, Tensor> SimpleCnn(double width)
    {
        int c1 = Scale(32, width), c2 = Scale(64, width), fc = Scale(1024, width);
        return Sequential(
            ("conv1", Conv2d(1, c1, 5, padding: 2)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
            ("conv2", Conv2d(c1, c2, 5, padding: 2)), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
            ("flatten", Flatten()),
            ("fc1", Linear(c2 * 7 * 7, fc)), ("relu3", ReLU()),
            ("fc2", Linear(fc, Classes)));
    }

    /// <summary>ResNet-8 style for 28×28: a 3×3 stem, three stages of basic blocks (16/32/64 × width, strides 1/2/2), global average pool, linear.</summary>
    public static Module<Tensor, Tensor> ResNet(double width, int blocksPerStage, bool batchNorm) =>
        new SmallResNet(width, blocksPerStage, batchNorm);

    internal static int Scale(int baseWidth, double multiplier) => Math.Max(1, (int)Math.Round(baseWidth * multiplier));

    /// <summary>
    /// Draws every weight and bias from <paramref name="generator"/> with PyTorch's default distributions for
    /// Linear and Conv2d (kaiming_uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in), for weights and biases
    /// alike; fan_in = inputs × kernel area); batch-norm scales stay 1 and shifts 0. A private generator instead
    /// of the global one: another thread drawing random numbers while a model is built cannot change its weights.
    /// </summary>
    internal static void Initialize(Module<Tensor, Tensor> model, Generator generator)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in model.named_modules())
        {
            (Tensor? weight, Tensor? bias) = module switch
            {
                Linear l => (l.weight, l.bias),
                Conv2d c => (c.weight, c.bias),
                _ => (null, null),
            };
            if (weight is null) continue;
            long fanIn = weight.shape[1] * (weight.dim() > 2 ? weight.shape[2] * weight.shape[3] : 1);
            double bound = 1.0 / Math.Sqrt(fanIn);
            weight.uniform_(-bound, bound, generator);
            bias?.uniform_(-bound, bound, generator);
        }
        foreach (var (_, module) in model.named_modules())
            if (module is BasicBlock block) block.ApplyResidualInit();
    }
}

/// <summary>
/// A basic residual block: conv3×3 → [BN] → ReLU → conv3×3 → [BN], plus the input (through a 1×1
/// conv [+BN] when the shape changes), then ReLU. Without normalisation the convolutions carry biases and
/// the branch's last convolution starts at zero (as in Fixup), so the block starts as the identity and
/// training stays stable without batch statistics.
/// </summary>
sealed class BasicBlock : Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2;
    readonly Module<Tensor, Tensor> norm1, norm2, shortcut;

    public BasicBlock(string name, int inChannels, int outChannels, int stride, bool batchNorm) : base(name)
    {
        bool bias = !batchNorm;
        conv1 = Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: bias);
        conv2 = Conv2d(outChannels, outChannels, 3, padding: 1, bias: bias);
        norm1 = batchNorm ? BatchNorm2d(outChannels) : Identity();
        norm2 = batchNorm ? BatchNorm2d(outChannels) : Identity();
        shortcut = stride != 1 || inChannels != outChannels
            ? batchNorm
                ? Sequential(("conv", Conv2d(inChannels, outChannels, 1, stride: stride, bias: false)), ("norm", BatchNorm2d(outChannels)))
                : Sequential(("conv", Conv2d(inChannels, outChannels, 1, stride: stride, bias: true)))
            : Identity();
        _zeroInitBranch = !batchNorm;
        RegisterComponents();
    }

    readonly bool _zeroInitBranch;

    /// <summary>Without normalisation the branch's last convolution starts at zero (called after the weights are drawn).</summary>
    internal void ApplyResidualInit()
    {
        if (!_zeroInitBranch) return;
        using var noGrad = no_grad();
        conv2.weight!.zero_();
        conv2.bias?.zero_();
    }

    public override Tensor forward(Tensor x)
    {
        var branch = functional.relu(norm1.call(conv1.call(x)));
        branch = norm2.call(conv2.call(branch));
        return functional.relu(branch + shortcut.call(x));
    }
}

sealed class SmallResNet : Module<Tensor, Tensor>
{
    readonly Module<Tensor, Tensor> stem, stages;
    readonly Linear head;

    public SmallResNet(double width, int blocksPerStage, bool batchNorm) : base(batchNorm ? "resnet" : "resnet_nonorm")
    {
        int[] widths = [Networks.Scale(16, width), Networks.Scale(32, width), Networks.Scale(64, width)];
        stem = batchNorm
            ? Sequential(("conv", Conv2d(1, widths[0], 3, padding: 1, bias: false)), ("norm", BatchNorm2d(widths[0])), ("relu", ReLU()))
            : Sequential(("conv", Conv2d(1, widths[0], 3, padding: 1, bias: true)), ("relu", ReLU()));
        var blocks = new List<(string, Module<Tensor, Tensor>)>();
        int channels = widths[0];
        for (int stage = 0; stage < 3; stage++)
            for (int b = 0; b < blocksPerStage; b++)
            {
                int stride = stage > 0 && b == 0 ? 2 : 1;
                string name = $"stage{stage + 1}_block{b + 1}";
                blocks.Add((name, new BasicBlock(name, channels, widths[stage], stride, batchNorm)));
                channels = widths[stage];
            }
        stages = Sequential(blocks);
        head = Linear(channels, 10);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var features = stages.call(stem.call(x));
        var pooled = functional.adaptive_avg_pool2d(features, 1).flatten(1);
        return head.call(pooled);
    }
}
