namespace NqmValidate.Nqm;

/// <summary>Anchor type for reflection and tests.</summary>
public static class AssemblyMarker;
