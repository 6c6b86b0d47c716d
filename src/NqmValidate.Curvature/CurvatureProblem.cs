using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

/// <summary>
/// A model, N examples and the loss: the mean loss L(θ) = (1/N) Σ_n ℓ_n(θ) whose curvature is measured.
/// Parameter vectors are flat float64 tensors in <c>model.parameters()</c> order.
/// </summary>
public sealed record CurvatureProblem(nn.Module<Tensor, Tensor> Model, Tensor Inputs, Tensor Targets, LossKind Loss, int ChunkSize = 512)
{
    public long Examples => Inputs.shape[0];

    public List<Tensor> Parameters() => Model.parameters().Select(p => (Tensor)p).ToList();

    public long Dimension => Model.parameters().Sum(p => p.numel());

    /// <summary>(start, length) of each chunk of examples.</summary>
    public IEnumerable<(long Start, long Length)> Chunks()
    {
        if (ChunkSize < 1) throw new CurvatureInputException($"chunk size must be ≥ 1; got {ChunkSize}.");
        for (long s = 0; s < Examples; s += ChunkSize) yield return (s, Math.Min(ChunkSize, Examples - s));
    }

    /// <summary>Splits a flat vector into tensors shaped and typed like the parameters.</summary>
    public List<Tensor> Split(Tensor flat)
    {
        var parameters = Parameters();
        if (flat.dim() != 1 || flat.shape[0] != parameters.Sum(p => p.numel()))
            throw new ArgumentException($"expected a flat vector of {parameters.Sum(p => p.numel())} entries; got ({string.Join(", ", flat.shape)})", nameof(flat));
        var parts = new List<Tensor>(parameters.Count);
        long offset = 0;
        foreach (var p in parameters)
        {
            parts.Add(flat.narrow(0, offset, p.numel()).reshape(p.shape).to(p.dtype));
            offset += p.numel();
        }
        return parts;
    }

    /// <summary>Concatenates per-parameter tensors into one flat float64 vector.</summary>
    public static Tensor Flatten(IEnumerable<Tensor> parts) => cat(parts.Select(t => t.detach().flatten().to(ScalarType.Float64)).ToList());
}
