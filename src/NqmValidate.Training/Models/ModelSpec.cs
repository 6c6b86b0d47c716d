namespace NqmValidate.Training.Models;

/// <summary>
/// Which network to build. <see cref="Name"/> is a <see cref="ModelRegistry"/> name; the other fields
/// apply to the families that use them (null = the family's default; <see cref="ModelRegistry.Resolve"/>
/// fills them in so a trial records what it actually built).
/// </summary>
/// <param name="Name">mlp, cnn, cnn-narrow, cnn-wide, resnet, resnet-nonorm.</param>
/// <param name="HiddenWidths">MLP hidden layer widths (default 256,256).</param>
/// <param name="WidthMultiplier">Multiplies every channel/unit width of the CNN and ResNet (default 1).</param>
/// <param name="BlocksPerStage">ResNet basic blocks per stage (default 1: ResNet-8).</param>
public sealed record ModelSpec(
    string Name = "mlp",
    int[]? HiddenWidths = null,
    double? WidthMultiplier = null,
    int? BlocksPerStage = null)
{
    public override string ToString() =>
        Name + (HiddenWidths is { } h ? $"[{string.Join(",", h)}]" : "")
             + (WidthMultiplier is { } w && w != 1 ? $"×{w}" : "")
             + (BlocksPerStage is { } b && b != 1 ? $"/{b} blocks" : "");

    // Arrays compare by reference in a record; compare widths by value.
    public bool Equals(ModelSpec? other) =>
        other is not null && Name == other.Name && WidthMultiplier == other.WidthMultiplier && BlocksPerStage == other.BlocksPerStage
        && (HiddenWidths ?? []).SequenceEqual(other.HiddenWidths ?? []) && (HiddenWidths is null) == (other.HiddenWidths is null);

    public override int GetHashCode() => HashCode.Combine(Name, WidthMultiplier, BlocksPerStage, HiddenWidths?.Length);
}

/// <summary>The model spec names an unknown model or an option the model does not take.</summary>
public sealed class ModelSpecException(string message) : Exception(message);
