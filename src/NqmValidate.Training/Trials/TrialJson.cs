using System.Text.Json;
using System.Text.Json.Serialization;
using NqmValidate.Common;

namespace NqmValidate.Training.Trials;

/// <summary>JSON on disk: snake_case, indented, unknown keys rejected, and written atomically.</summary>
public static class TrialJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Writes <paramref name="value"/> as JSON to <paramref name="path"/> atomically.</summary>
    public static void Write<T>(string path, T value) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(value, Options) + "\n");

    public static T Read<T>(string path) =>
        JsonSerializer.Deserialize<T>(File.ReadAllText(path), Options) ?? throw new JsonException($"{path}: null");
}
