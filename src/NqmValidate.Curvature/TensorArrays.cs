using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

internal static class TensorArrays
{
    /// <summary>
    /// A float64 tensor's values as a managed array in one block copy (TensorAccessor.ToArray copies element by
    /// element, which costs as much as a gradient for a 270k-parameter model).
    /// </summary>
    public static double[] ToDoubles(Tensor t)
    {
        using var c = t.to(ScalarType.Float64).contiguous();
        return MemoryMarshal.Cast<byte, double>(c.bytes).ToArray();
    }
}
