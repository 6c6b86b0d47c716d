using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace NqmValidate.Curvature;

internal static class TensorArrays
{
    /// <summary>
    /// A float64 or float32 tensor's values times <paramref name="scale"/> as a managed float64 array, in one pass
    /// straight from the tensor's memory (TensorAccessor.ToArray copies element by element, which costs as much as
    /// a gradient for a 270k-parameter model; converting to a float64 tensor first would cost another pass).
    /// </summary>
    public static double[] ToDoubles(Tensor t, double scale = 1.0)
    {
        using var c = t.dtype is ScalarType.Float64 or ScalarType.Float32 ? t.contiguous() : t.to(ScalarType.Float64).contiguous();
        var result = GC.AllocateUninitializedArray<double>(checked((int)c.numel()));
        if (c.dtype == ScalarType.Float32)
        {
            var source = MemoryMarshal.Cast<byte, float>(c.bytes);
            for (int i = 0; i < result.Length; i++) result[i] = source[i] * scale;
        }
        else
        {
            var source = MemoryMarshal.Cast<byte, double>(c.bytes);
            if (scale == 1.0) source.CopyTo(result);
            else for (int i = 0; i < result.Length; i++) result[i] = source[i] * scale;
        }
        return result;
    }
}
