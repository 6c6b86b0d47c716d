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

    /// <summary>A model whose one parameter is w.</summary>
    sealed class Linear : nn.Module
    {
        public readonly Parameter W = new(tensor(W0, dtype: ScalarType.Float64));
        public Linear() : base("linear") => RegisterComponents();
    }

    static double[][] Run(OptimizerSpec spec, int steps, Func<int, double>? learningRate = null)
    {
        var model = new Linear();
        using var c = tensor(C, dtype: ScalarType.Float64);
        var resolved = OptimizerFamilies.Resolve(spec, 100);
        using var rule = OptimizerFamilies.Create(resolved, model);
        var trajectory = new List<double[]>();
        for (int s = 1; s <= steps; s++)
        {
            using var loss = rule.Step(() => (model.W * c).sum(), learningRate?.Invoke(s) ?? resolved.LearningRate);
            trajectory.Add(model.W.detach().data<double>().ToArray());
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
        var t = Run(new OptimizerSpec("momentum", Lr, ("momentum", Mu)), 3);
        Near(W0.Select((w, i) => w - Lr * C[i]).ToArray(), t[0]);
        Near(W0.Select((w, i) => w - Lr * (1 + (1 + Mu) + (1 + Mu + Mu * Mu)) * C[i]).ToArray(), t[2]);
    }

    [Fact]
    public void NesterovLooksAhead()
    {
        // w1 = w0 − η(c + μ·v1) with v1 = c; w2 = w1 − η(c + μ(μ+1)c).
        var t = Run(new OptimizerSpec("nesterov", Lr, ("momentum", Mu)), 2);
        Near(W0.Select((w, i) => w - Lr * (1 + Mu) * C[i]).ToArray(), t[0]);
        Near(W0.Select((w, i) => w - Lr * ((1 + Mu) + (1 + Mu * (1 + Mu))) * C[i]).ToArray(), t[1]);
    }

    [Fact]
    public void AdamNormalisesByTheSecondMoment()
    {
        // With a constant gradient the bias-corrected moments are m̂ = c and v̂ = c², so each step moves η·c/(|c| + ε).
        const double eps = 0.1;
        var t = Run(new OptimizerSpec("adam", Lr, ("beta1", 0.8), ("beta2", 0.99), ("epsilon", eps)), 2);
        Near(W0.Select((w, i) => w - 2 * Lr * C[i] / (Math.Abs(C[i]) + eps)).ToArray(), t[1]);
    }

    [Fact]
    public void LinearDecayReachesTheFinalFractionAndStays()
    {
        var spec = OptimizerFamilies.Resolve(new OptimizerSpec("sgd", 1.0) { Schedule = "linear", DecaySteps = 10, FinalFraction = 0.1 }, 1000);
        Assert.Equal(1.0, OptimizerFamilies.LearningRateAt(spec, 1), 12);
        Assert.Equal(1.0 - 0.9 * 0.5, OptimizerFamilies.LearningRateAt(spec, 6), 12);
        Assert.Equal(0.1, OptimizerFamilies.LearningRateAt(spec, 11), 12);
        Assert.Equal(0.1, OptimizerFamilies.LearningRateAt(spec, 500), 12);
        Assert.Equal(1000, OptimizerFamilies.Resolve(new OptimizerSpec("sgd", 1.0) { Schedule = "linear" }, 1000).DecaySteps);
    }

    [Fact]
    public void SettingTheLearningRateChangesTheNextStep()
    {
        var t = Run(new OptimizerSpec("sgd", Lr), 2, step => step == 2 ? 1.0 : Lr);
        Near(W0.Select((w, i) => w - (Lr + 1.0) * C[i]).ToArray(), t[1]);
    }

    [Fact]
    public void BadSpecsNameTheFault()
    {
        var e = Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec { Name = "rmsprop" }, 10));
        foreach (var n in OptimizerFamilies.Names) Assert.Contains(n, e.Message);
        Assert.Contains("momentum", Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("sgd", 0.1, ("momentum", 0.9)), 10)).Message);
        // A hyperparameter of another family is named with the family's own list.
        Assert.Contains("beta1, beta2, epsilon", Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("adam", 0.1, ("momentum", 0.9)), 10)).Message);
        Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("momentum", 0.1, ("momentum", 1.0)), 10));
        Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("sgd", -1), 10));
        Assert.Throws<OptimizerSpecException>(() => OptimizerFamilies.Resolve(new OptimizerSpec("adam", 0.1, ("epsilon", 0)), 10));
    }
}
