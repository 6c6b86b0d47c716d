using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// Each optimizer against its update rule written out by hand, on the linear loss L(w) = c·w whose
/// gradient is the constant c, so every step's expected parameters are known in closed form.
/// </summary>
public class OptimizerTests
{
    static readonly double[] W0 = [1.0, -2.0, 0.5], C = [0.3, -1.5, 2.0];
    const double Lr = 0.1, Mu = 0.9;

    public OptimizerTests() => TorchRuntime.Initialize(1);

    static double[][] Run(OptimizerSpec spec, int steps, Action<optim.Optimizer, int>? beforeStep = null)
    {
        var w = new Parameter(tensor(W0, dtype: ScalarType.Float64));
        using var c = tensor(C, dtype: ScalarType.Float64);
        var optimizer = OptimizerFactory.Create(OptimizerFactory.Resolve(spec, 100), [w]);
        var trajectory = new List<double[]>();
        for (int s = 1; s <= steps; s++)
        {
            beforeStep?.Invoke(optimizer, s);
            optimizer.zero_grad();
            using var loss = (w * c).sum();
            loss.backward();
            optimizer.step();
            trajectory.Add(w.detach().data<double>().ToArray());
        }
        return trajectory.ToArray();
    }

    static void Near(double[] expected, double[] actual)
    {
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 12);
    }

    [Fact]
    public void SgdStepsAgainstTheGradient()
    {
        var t = Run(new OptimizerSpec("sgd", Lr), 2);
        Near(W0.Select((w, i) => w - 2 * Lr * C[i]).ToArray(), t[1]);
    }

    [Fact]
    public void HeavyBallMomentumAccumulatesTheVelocity()
    {
        // v1 = c, w1 = w0 − ηc; v2 = μc + c, w2 = w1 − η(1+μ)c; v3 = (1+μ+μ²)c.
        var t = Run(new OptimizerSpec("momentum", Lr, Momentum: Mu), 3);
        Near(W0.Select((w, i) => w - Lr * C[i]).ToArray(), t[0]);
        Near(W0.Select((w, i) => w - Lr * (1 + (1 + Mu) + (1 + Mu + Mu * Mu)) * C[i]).ToArray(), t[2]);
    }

    [Fact]
    public void NesterovLooksAhead()
    {
        // w1 = w0 − η(c + μ·v1) with v1 = c; w2 = w1 − η(c + μ(μ+1)c).
        var t = Run(new OptimizerSpec("nesterov", Lr, Momentum: Mu), 2);
        Near(W0.Select((w, i) => w - Lr * (1 + Mu) * C[i]).ToArray(), t[0]);
        Near(W0.Select((w, i) => w - Lr * ((1 + Mu) + (1 + Mu * (1 + Mu))) * C[i]).ToArray(), t[1]);
    }

    [Fact]
    public void AdamNormalisesByTheSecondMoment()
    {
        // With a constant gradient the bias-corrected moments are m̂ = c and v̂ = c², so each step moves η·c/(|c| + ε).
        const double eps = 0.1;
        var t = Run(new OptimizerSpec("adam", Lr, Beta1: 0.8, Beta2: 0.99, Epsilon: eps), 2);
        Near(W0.Select((w, i) => w - 2 * Lr * C[i] / (Math.Abs(C[i]) + eps)).ToArray(), t[1]);
    }

    [Fact]
    public void LinearDecayReachesTheFinalFractionAndStays()
    {
        var spec = OptimizerFactory.Resolve(new OptimizerSpec("sgd", 1.0, Schedule: "linear", DecaySteps: 10, FinalFraction: 0.1), 1000);
        Assert.Equal(1.0, OptimizerFactory.LearningRateAt(spec, 1), 12);
        Assert.Equal(1.0 - 0.9 * 0.5, OptimizerFactory.LearningRateAt(spec, 6), 12);
        Assert.Equal(0.1, OptimizerFactory.LearningRateAt(spec, 11), 12);
        Assert.Equal(0.1, OptimizerFactory.LearningRateAt(spec, 500), 12);
        Assert.Equal(1000, OptimizerFactory.Resolve(new OptimizerSpec("sgd", 1.0, Schedule: "linear"), 1000).DecaySteps);
    }

    [Fact]
    public void SettingTheLearningRateChangesTheNextStep()
    {
        var t = Run(new OptimizerSpec("sgd", Lr), 2, (opt, step) => OptimizerFactory.SetLearningRate(opt, step == 2 ? 1.0 : Lr));
        Near(W0.Select((w, i) => w - (Lr + 1.0) * C[i]).ToArray(), t[1]);
    }

    [Fact]
    public void BadSpecsNameTheFault()
    {
        var e = Assert.Throws<OptimizerSpecException>(() => OptimizerFactory.Resolve(new OptimizerSpec("rmsprop"), 10));
        foreach (var n in OptimizerFactory.Names) Assert.Contains(n, e.Message);
        Assert.Contains("momentum", Assert.Throws<OptimizerSpecException>(() => OptimizerFactory.Resolve(new OptimizerSpec("sgd", Momentum: 0.9), 10)).Message);
        Assert.Throws<OptimizerSpecException>(() => OptimizerFactory.Resolve(new OptimizerSpec("momentum", Momentum: 1.0), 10));
        Assert.Throws<OptimizerSpecException>(() => OptimizerFactory.Resolve(new OptimizerSpec("sgd", -1), 10));
        Assert.Throws<OptimizerSpecException>(() => OptimizerFactory.Resolve(new OptimizerSpec("adam", Epsilon: 0), 10));
    }
}
