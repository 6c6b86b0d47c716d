using MathNet.Numerics.LinearAlgebra;
using NqmValidate.Curvature;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Curvature;

/// <summary>Brute-force oracles: full P×P Hessian and GGN of the mean loss, built with autograd, in parameter order.</summary>
public static class DenseCurvature
{
    static List<Tensor> Params(TinyCase c) => c.Model.parameters().Select(p => (Tensor)p).ToList();

    /// <summary>GGN = (1/N) Σ_n J_nᵀ H_n J_n with J_n the C×P Jacobian of the output and H_n the loss Hessian in z.</summary>
    public static Matrix<double> Ggn(TinyCase c)
    {
        var parameters = Params(c);
        int p = (int)parameters.Sum(t => t.numel());
        var ggn = Matrix<double>.Build.Dense(p, p);
        for (long n = 0; n < c.Examples; n++)
        {
            using var scope = NewDisposeScope();
            var z = c.Model.call(c.Inputs.narrow(0, n, 1));
            int classes = (int)z.shape[1];
            var jacobian = Matrix<double>.Build.Dense(classes, p);
            for (int k = 0; k < classes; k++)
            {
                var row = torch.autograd.grad([z[0, k]], parameters, retain_graph: true);
                jacobian.SetRow(k, cat(row.Select(g => g.flatten()).ToList()).data<double>().ToArray());
            }
            var h = Matrix<double>.Build.DenseIdentity(classes);
            if (c.Loss == LossKind.CrossEntropy)
            {
                var prob = nn.functional.softmax(z.detach(), 1)[0].data<double>().ToArray();
                h = Matrix<double>.Build.Dense(classes, classes, (i, j) => (i == j ? prob[i] : 0) - prob[i] * prob[j]);
            }
            ggn += jacobian.TransposeThisAndMultiply(h * jacobian);
        }
        return ggn / c.Examples;
    }

    /// <summary>Hessian of the mean loss by differentiating each gradient coordinate again.</summary>
    public static Matrix<double> Hessian(TinyCase c)
    {
        var parameters = Params(c);
        int p = (int)parameters.Sum(t => t.numel());
        using var scope = NewDisposeScope();
        var loss = OutputLoss.PerExample(c.Loss, c.Model.call(c.Inputs), c.Targets).mean();
        var grads = torch.autograd.grad([loss], parameters, create_graph: true, retain_graph: true);
        var flat = cat(grads.Select(g => g.flatten()).ToList());
        var hessian = Matrix<double>.Build.Dense(p, p);
        for (int i = 0; i < p; i++)
        {
            var row = torch.autograd.grad([flat[i]], parameters, retain_graph: true);
            hessian.SetRow(i, cat(row.Select(g => g.flatten()).ToList()).data<double>().ToArray());
        }
        return hessian;
    }
}
