using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace NqmValidate.Common;

/// <summary>
/// Turns System.Text.Json's deserialization errors (which speak of .NET members and types) into
/// a user's terms: the key's JSON path and line, what was expected (an integer, a list, …) and,
/// for an unknown key, the keys allowed there.
/// </summary>
public static partial class JsonErrors
{
    [GeneratedRegex(@"The JSON property '(?<key>[^']*)' could not be mapped to any \.NET member contained in type '(?<type>[^']+)'")]
    private static partial Regex UnknownKey();

    [GeneratedRegex(@"could not be converted to (?<type>\S+?)\.? Path:")]
    private static partial Regex Conversion();

    [GeneratedRegex(@"missing required properties including: (?<keys>.+?)\.?$")]
    private static partial Regex MissingRequired();

    [GeneratedRegex(@"Duplicate property '(?<key>[^']*)'")]
    private static partial Regex Duplicate();

    [GeneratedRegex(@"\s*Path: \S*( \| LineNumber: \d+ \| BytePositionInLine: \d+)?\.?")]
    private static partial Regex Location();

    /// <summary>One line: "SOURCE: at KEY (line N): WHAT".</summary>
    /// <param name="e">The exception of JsonSerializer.Deserialize.</param>
    /// <param name="source">The file (or other source) to name.</param>
    /// <param name="naming">The naming policy of the JSON keys (snake_case for the project's specs).</param>
    public static string Describe(JsonException e, string source, JsonNamingPolicy? naming = null)
    {
        naming ??= JsonNamingPolicy.SnakeCaseLower;
        string path = e.Path is null or "$" ? "" : e.Path.StartsWith("$.", StringComparison.Ordinal) ? e.Path[2..] : e.Path.TrimStart('$');
        string line = e.LineNumber is { } l ? $"line {l + 1}" : "";
        string At(string key) => (key, line) switch
        {
            ("", "") => "",
            ("", _) => $" ({line})",
            (_, "") => $" at `{key}`",
            _ => $" at `{key}` ({line})",
        };
        string message = e.Message;

        if (UnknownKey().Match(message) is { Success: true } unknown)
        {
            string key = unknown.Groups["key"].Value;
            // The path of an unknown key names the key itself; its parent holds the allowed keys.
            string parent = path.EndsWith(key, StringComparison.Ordinal) ? path[..^key.Length].TrimEnd('.') : path;
            var allowed = AllowedKeys(unknown.Groups["type"].Value, naming);
            string where = parent == "" ? "at the top level" : $"in `{parent}`";
            return $"{source}: unknown key `{key}` {where}{(line == "" ? "" : $" ({line})")}" +
                   (allowed.Count > 0 ? $"; allowed keys: {string.Join(", ", allowed)}." : ".");
        }
        if (Conversion().Match(message) is { Success: true } conversion)
            return $"{source}:{At(path)}: expected {Expected(conversion.Groups["type"].Value)}.";
        if (MissingRequired().Match(message) is { Success: true } missing)
            return $"{source}:{At(path)}: missing required key(s) {missing.Groups["keys"].Value.Replace('\'', '`')}.";
        if (Duplicate().Match(message) is { Success: true } dup)
            return $"{source}:{At(path)}: key `{dup.Groups["key"].Value}` appears twice.";
        // Malformed JSON: the reader's message is already about the text; drop its Path/LineNumber tail.
        string text = Location().Replace(message, "").Trim().TrimEnd('.');
        return $"{source}: not valid JSON{At(path)}: {text}.";
    }

    /// <summary>"an integer", "a number", "a list", … for a .NET type name in an error.</summary>
    public static string Expected(string typeName)
    {
        string t = typeName;
        if (t.Contains("Nullable", StringComparison.Ordinal)) t = t[(t.IndexOf('[') + 1)..].TrimEnd(']');
        if (t.Contains("List", StringComparison.Ordinal) || t.Contains("[]", StringComparison.Ordinal) || t.Contains("Enumerable", StringComparison.Ordinal)
            || t.Contains("Collection", StringComparison.Ordinal)) return "a list";
        return t switch
        {
            "System.Int32" or "System.Int64" or "System.UInt64" or "System.UInt32" or "System.Int16" or "System.Byte" => "an integer (in range)",
            "System.Double" or "System.Single" or "System.Decimal" => "a number",
            "System.String" => "a string",
            "System.Boolean" => "true or false",
            "System.Text.Json.JsonElement" => "a JSON value",
            _ => "an object { … }",
        };
    }

    /// <summary>The JSON keys of a type named in an error (its settable public properties), or none if not found.</summary>
    public static IReadOnlyList<string> AllowedKeys(string typeName, JsonNamingPolicy naming)
    {
        var type = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetType(typeName, throwOnError: false)).FirstOrDefault(t => t is not null);
        if (type is null) return [];
        return type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetCustomAttribute<JsonIgnoreAttribute>() is null)
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? naming.ConvertName(p.Name))
            .ToList();
    }
}
