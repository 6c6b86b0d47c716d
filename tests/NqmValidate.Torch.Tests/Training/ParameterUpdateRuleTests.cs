using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// The project's update rules replace TorchSharp's optimizer step only to keep the Scalars they pass alive
/// (docs/design/torchsharp.md §2); they must compute exactly what TorchSharp 0.107's optim.SGD / optim.Adam compute,
/// so every trial run before the change repeats bit for bit. The race itself is exercised by the stress check
/// `scripts/bench scalar-lifetime` (it needs a thread forcing garbage collections, which the shared test host must not have).
/// </summary>
public class ParameterUpdateRuleTests
{
    public ParameterUpdateRuleTests() => TorchRuntime.Initialize(1);

    static nn.Module<Tensor, Tensor> Mlp(ulong seed)
    {
        var model = nn.Sequential(("l1", nn.Linear(6, 5)), ("tanh", nn.Tanh()), ("l2", nn.Linear(5, 3)));
        using var generator = new Generator(seed);
        using (no_grad())
            foreach (var p in model.parameters()) p.copy_(randn(p.shape, generator: generator));
        return model;
    }

    /// <summary>The parameters after <paramref name="steps"/> steps of a learning rate that changes every step.</summary>
    static float[][] Train(Func<nn.Module, Func<Func<Tensor>, double, Tensor>> makeStep, int steps)
    {
        using var model = Mlp(11);
        using var generator = new Generator(5);
        var step = makeStep(model);
        for (int s = 1; s <= steps; s++)
        {
            using var scope = NewDisposeScope();
            var x = randn(8, 6, generator: generator);
            var y = randint(0, 3, [8], generator: generator);
            step(() => nn.functional.cross_entropy(model.call(x), y), 0.05 / s);
        }
        return model.parameters().Select(p => p.detach().data<float>().ToArray()).ToArray();
    }

    static Func<Func<Tensor>, double, Tensor> TorchSharpStep(optim.Optimizer optimizer) => (loss, lr) =>
    {
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
        optimizer.zero_grad();
        var value = loss();
        value.backward();
        optimizer.step();
        return value;
    };

    public static TheoryData<string> Families => new() { "sgd", "momentum", "nesterov", "adam" };

    [Theory]
    [MemberData(nameof(Families))]
    public void MatchesTorchSharpsOptimizerBitForBit(string family)
    {
        var spec = family switch
        {
            "adam" => new OptimizerSpec("adam", 0.05, ("beta1", 0.8), ("beta2", 0.95), ("epsilon", 1e-3)),
            "sgd" => new OptimizerSpec("sgd", 0.05),
            _ => new OptimizerSpec(family, 0.05, ("momentum", 0.7)),
        };
        var resolved = OptimizerFamilies.Resolve(spec, 100);
        var ours = Train(model => OptimizerFamilies.Create(resolved, model).Step, 6);
        var torchSharps = Train(model => TorchSharpStep(family switch
        {
            "adam" => optim.Adam(model.parameters(), 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-3),
            "sgd" => optim.SGD(model.parameters(), 0.05),
            _ => optim.SGD(model.parameters(), 0.05, momentum: 0.7, nesterov: family == "nesterov"),
        }), 6);
        var initial = Mlp(11).parameters().Select(p => p.detach().data<float>().ToArray()).ToArray();
        for (int i = 0; i < ours.Length; i++)
        {
            Assert.Equal(torchSharps[i], ours[i]); // exact float equality, element by element
            Assert.NotEqual(initial[i], ours[i]); // the rule did move the parameters
        }
    }
}
