using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace NqmValidate.Training.Data;

/// <summary>
/// A memory-mapped file whose bytes become CPU tensors without a copy (LibTorch's <c>from_blob</c> with a deleter). The
/// mapping lives as long as the last tensor over it: each tensor holds one reference, released by LibTorch's deleter
/// when it frees the tensor's storage (on whatever thread drops the last view), and the creator holds one until
/// <see cref="Release"/>.
///
/// The one hazard of any mapping: the file must never be truncated or rewritten in place while mapped (a read past the
/// new end faults the process with SIGBUS). The cache only ever replaces its files by rename and deletes them by unlink,
/// and both leave a mapped inode intact.
/// </summary>
sealed class MappedFile
{
    readonly MemoryMappedFile _file;
    readonly MemoryMappedViewAccessor _view;
    readonly IntPtr _base;
    int _references = 1;

    public MappedFile(MemoryMappedFile file, MemoryMappedViewAccessor view)
    {
        _file = file;
        _view = view;
        bool added = false;
        view.SafeMemoryMappedViewHandle.DangerousAddRef(ref added);
        _base = view.SafeMemoryMappedViewHandle.DangerousGetHandle() + (nint)view.PointerOffset;
    }

    /// <summary>The mapped bytes, for reading with <see cref="System.Runtime.InteropServices.SafeBuffer.ReadSpan{T}"/> at <see cref="Origin"/> + offset.</summary>
    public SafeBuffer Memory => _view.SafeMemoryMappedViewHandle;
    public ulong Origin => (ulong)_view.PointerOffset;

    /// <summary>
    /// Whether tensors can be made over mapped memory here: the native entry point's signature is TorchSharp 0.107's
    /// (TorchSharp's own P/Invoke of it is internal), so any other TorchSharp version reads the cache by copying.
    /// </summary>
    public static bool Supported { get; } = typeof(torch).Assembly.GetName().Version is { Major: 0, Minor: 107 };

    /// <summary>A tensor over the mapped bytes at <paramref name="offset"/>: no copy; it keeps the mapping alive.</summary>
    public Tensor Tensor(ulong offset, long[] shape, ScalarType type)
    {
        IntPtr data = _base + (nint)offset;
        Interlocked.Increment(ref _references);
        Owners[data] = this;
        IntPtr handle = THSTensor_new(data, ReleaseStorage, shape, shape.Length, (sbyte)type, (sbyte)type, 0, -1, false);
        if (handle == IntPtr.Zero)
        {
            Owners.TryRemove(data, out _);
            Release();
            throw new IOException("LibTorch could not make a tensor over the mapped cache file.");
        }
        return torch.Tensor.UnsafeCreateTensor(handle).DetachFromDisposeScope();
    }

    /// <summary>Drops one reference; the last one unmaps the file.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) > 0) return;
        _view.SafeMemoryMappedViewHandle.DangerousRelease();
        _view.Dispose();
        _file.Dispose();
    }

    // Which mapping each tensor's data pointer belongs to (the deleter receives only the pointer).
    static readonly ConcurrentDictionary<IntPtr, MappedFile> Owners = new();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void StorageDeleter(IntPtr data);

    // A static field: the delegate (and the native thunk LibTorch calls) must outlive every tensor made with it.
    static readonly StorageDeleter ReleaseStorage = data =>
    {
        try
        {
            if (Owners.TryRemove(data, out var owner)) owner.Release();
        }
        catch (Exception)
        {
            // Called from native code: an exception must not unwind into LibTorch. Failing to unmap only leaks the mapping.
        }
    };

    // TorchSharp 0.107's native constructor (what torch.tensor(array) uses): from_blob over data, no copy on the CPU.
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_new(IntPtr data, StorageDeleter deleter, long[] dimensions, int numDimensions,
        sbyte type, sbyte dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad);
}
