using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NqmValidate.Training.Optimizers;

/// <summary>
/// An optimizer and its hyperparameters: the family's name, the initial learning rate, the family's own
/// hyperparameters by name (momentum, beta1, epsilon, ema_decay, …; a missing one takes the family's
/// default in <see cref="OptimizerFamilies.Resolve"/>) and the learning-rate schedule.
/// </summary>
/// <remarks>
/// On disk (trial.json's config.optimizer, config.json) the hyperparameters sit beside name and
/// learning_rate as flat snake_case keys, as they always have: { "name": "adam", "learning_rate": 0.001,
/// "beta1": 0.9, … }. Which keys a family accepts is the family's to say, so the record holds them in a map.
/// </remarks>
[JsonConverter(typeof(OptimizerSpecJsonConverter))]
public sealed record OptimizerSpec
{
    /// <summary>An optimizer family's name (<see cref="OptimizerFamilies.Names"/>).</summary>
    public string Name { get; init; } = "sgd";
    /// <summary>Initial learning rate η.</summary>
    public double LearningRate { get; init; } = 0.1;
    /// <summary>The family's hyperparameters by name, besides the learning rate.</summary>
    public ImmutableSortedDictionary<string, double> Hyperparameters { get; init; } = ImmutableSortedDictionary<string, double>.Empty;
    /// <summary>
    /// constant; linear: η decays linearly to η·FinalFraction over DecaySteps steps, then stays there; piecewise: η·Factors[i]
    /// in piece i of PieceSteps steps (the NQM's optimal piecewise-constant shape, scaled by the searched η).
    /// </summary>
    public string Schedule { get; init; } = "constant";
    /// <summary>Steps of the linear decay (default: the trial's max_steps).</summary>
    public long? DecaySteps { get; init; }
    /// <summary>η at the end of the linear decay as a fraction of the initial η (default 0.01).</summary>
    public double? FinalFraction { get; init; }
    /// <summary>piecewise: steps per piece (piece i runs updates (i−1)·PieceSteps + 1 … i·PieceSteps).</summary>
    public long? PieceSteps { get; init; }
    /// <summary>piecewise: η's multiplier in each piece; the last one holds after the last piece.</summary>
    public ImmutableArray<double>? Factors { get; init; }

    public OptimizerSpec() { }

    /// <summary>A spec of family <paramref name="name"/> with the given hyperparameters (the rest take defaults when resolved).</summary>
    public OptimizerSpec(string name, double learningRate, params (string Name, double Value)[] hyperparameters)
    {
        Name = name;
        LearningRate = learningRate;
        Hyperparameters = hyperparameters.ToImmutableSortedDictionary(h => h.Name, h => h.Value);
    }

    /// <summary>A hyperparameter's value, or null when the spec does not set it.</summary>
    public double? this[string hyperparameter] => Hyperparameters.TryGetValue(hyperparameter, out double v) ? v : null;

    /// <summary>This spec with <paramref name="hyperparameter"/> set (or removed with null).</summary>
    public OptimizerSpec With(string hyperparameter, double? value) => this with
    {
        Hyperparameters = value is { } v ? Hyperparameters.SetItem(hyperparameter, v) : Hyperparameters.Remove(hyperparameter),
    };

    public bool Equals(OptimizerSpec? other) =>
        other is not null && Name == other.Name && LearningRate.Equals(other.LearningRate) && Schedule == other.Schedule
        && DecaySteps == other.DecaySteps && Nullable.Equals(FinalFraction, other.FinalFraction)
        && PieceSteps == other.PieceSteps && Factors.HasValue == other.Factors.HasValue
        && (Factors is not { } mine || mine.SequenceEqual(other.Factors!.Value))
        && Hyperparameters.Count == other.Hyperparameters.Count
        && Hyperparameters.All(kv => other.Hyperparameters.TryGetValue(kv.Key, out double v) && v.Equals(kv.Value));

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Name);
        hash.Add(LearningRate);
        hash.Add(Schedule);
        foreach (var (k, v) in Hyperparameters) { hash.Add(k); hash.Add(v); }
        return hash.ToHashCode();
    }
}

/// <summary>The optimizer spec is invalid (unknown name, a hyperparameter out of range or not used by the optimizer).</summary>
public sealed class OptimizerSpecException(string message) : Exception(message);

/// <summary>
/// Flat snake_case JSON for <see cref="OptimizerSpec"/>: name, learning_rate, the hyperparameters, schedule,
/// decay_steps, final_fraction, and for a piecewise schedule piece_steps and factors. Reading accepts a null hyperparameter as absent (trial.json files written
/// before optimizer families listed every optimizer's fields, null where unused).
/// </summary>
public sealed class OptimizerSpecJsonConverter : JsonConverter<OptimizerSpec>
{
    public override OptimizerSpec Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("an optimizer must be a JSON object.");
        var spec = new OptimizerSpec();
        var hyper = ImmutableSortedDictionary.CreateBuilder<string, double>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string key = reader.GetString()!;
            reader.Read();
            switch (key)
            {
                case "name": spec = spec with { Name = reader.GetString() ?? throw new JsonException("optimizer.name is null.") }; break;
                case "learning_rate": spec = spec with { LearningRate = ReadDouble(ref reader, key) }; break;
                case "schedule": spec = spec with { Schedule = reader.GetString() ?? "constant" }; break;
                case "decay_steps": spec = spec with { DecaySteps = reader.TokenType == JsonTokenType.Null ? null : reader.GetInt64() }; break;
                case "final_fraction": spec = spec with { FinalFraction = reader.TokenType == JsonTokenType.Null ? null : ReadDouble(ref reader, key) }; break;
                case "piece_steps": spec = spec with { PieceSteps = reader.TokenType == JsonTokenType.Null ? null : reader.GetInt64() }; break;
                case "factors":
                    if (reader.TokenType == JsonTokenType.Null) break;
                    if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("optimizer.factors: expected a list of numbers.");
                    var factors = ImmutableArray.CreateBuilder<double>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) factors.Add(ReadDouble(ref reader, key));
                    spec = spec with { Factors = factors.ToImmutable() };
                    break;
                default:
                    if (reader.TokenType == JsonTokenType.Null) break;
                    if (reader.TokenType != JsonTokenType.Number && reader.TokenType != JsonTokenType.String)
                        throw new JsonException($"optimizer.{key}: expected a number.");
                    hyper[key] = ReadDouble(ref reader, key);
                    break;
            }
        }
        return spec with { Hyperparameters = hyper.ToImmutable() };
    }

    static double ReadDouble(ref Utf8JsonReader reader, string key)
    {
        if (reader.TokenType == JsonTokenType.Number) return reader.GetDouble();
        // Named literals (NaN, Infinity) as trial.json may hold them; validation rejects them later with the field's name.
        if (reader.TokenType == JsonTokenType.String && double.TryParse(reader.GetString(), System.Globalization.NumberStyles.Float,
                System.Globalization.CultureInfo.InvariantCulture, out double v)) return v;
        throw new JsonException($"optimizer.{key}: expected a number.");
    }

    public override void Write(Utf8JsonWriter writer, OptimizerSpec value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("name", value.Name);
        WriteDouble(writer, "learning_rate", value.LearningRate);
        // The family's declaration order (momentum before beta1, …) rather than the map's alphabetical one.
        var order = OptimizerFamilies.Find(value.Name)?.Hyperparameters.Select(h => h.Name).ToList() ?? [];
        foreach (var (k, v) in value.Hyperparameters.OrderBy(kv => order.IndexOf(kv.Key) is var i and >= 0 ? i : int.MaxValue).ThenBy(kv => kv.Key, StringComparer.Ordinal))
            WriteDouble(writer, k, v);
        writer.WriteString("schedule", value.Schedule);
        if (value.DecaySteps is { } d) writer.WriteNumber("decay_steps", d); else writer.WriteNull("decay_steps");
        if (value.FinalFraction is { } f) WriteDouble(writer, "final_fraction", f); else writer.WriteNull("final_fraction");
        // Only a piecewise schedule writes its keys: every other trial.json stays as it was before they existed.
        if (value.PieceSteps is { } n) writer.WriteNumber("piece_steps", n);
        if (value.Factors is { } fs)
        {
            writer.WriteStartArray("factors");
            foreach (double x in fs) writer.WriteNumberValue(x);
            writer.WriteEndArray();
        }
        writer.WriteEndObject();
    }

    static void WriteDouble(Utf8JsonWriter writer, string key, double v)
    {
        if (double.IsFinite(v)) writer.WriteNumber(key, v);
        else writer.WriteString(key, v.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
