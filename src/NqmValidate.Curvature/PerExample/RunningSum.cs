using static TorchSharp.torch;

namespace NqmValidate.Curvature.PerExample;

/// <summary>
/// A sum over chunks of one statistic of one parameter. Chunk results are added in their own dtype into a window
/// (the products go straight into it with <c>addmm_</c>, so a chunk allocates and converts nothing weight-sized);
/// the window moves into the float64 total every <see cref="FlushEvery"/> chunks and before reading, so at most
/// that many chunk results are ever summed in the model's precision. Exact per-example additions (the loop path)
/// go straight into the total.
/// </summary>
internal sealed class RunningSum : IDisposable
{
    /// <summary>Chunks summed in the model's dtype before the float64 total takes them over.</summary>
    public const int FlushEvery = 16;

    Tensor? _window;
    Tensor? _total;

    /// <summary>window += value.</summary>
    public void Add(Tensor value)
    {
        using var _ = no_grad();
        if (_window is null) _window = value.detach().clone().DetachFromDisposeScope();
        else _window.add_(value);
    }

    /// <summary>window += a·b (matrices).</summary>
    public void AddProduct(Tensor a, Tensor b)
    {
        using var _ = no_grad();
        if (_window is null) _window = a.mm(b).DetachFromDisposeScope();
        else _window.addmm_(a, b);
    }

    /// <summary>total += value in float64, without a window (many small terms: one per example).</summary>
    public void AddExact(Tensor value)
    {
        using var _ = no_grad();
        Total(value).add_(value);
    }

    /// <summary>Moves the window into the float64 total.</summary>
    public void Flush()
    {
        if (_window is null) return;
        Total(_window).add_(_window);
        _window.Dispose();
        _window = null;
    }

    /// <summary>The sum times <paramref name="scale"/>, flattened into a new float64 array (one pass over the data).</summary>
    public double[] Read(double scale)
    {
        if (_window is not null && _total is not null) Flush();
        var source = _total ?? _window ?? throw new InvalidOperationException("nothing accumulated");
        return TensorArrays.ToDoubles(source, scale);
    }

    Tensor Total(Tensor like) => _total ??= zeros(like.shape, dtype: ScalarType.Float64).DetachFromDisposeScope();

    public void Dispose()
    {
        _window?.Dispose();
        _total?.Dispose();
        _window = _total = null;
    }
}
