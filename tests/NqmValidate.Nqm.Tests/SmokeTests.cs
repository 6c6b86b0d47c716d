namespace NqmValidate.Nqm.Tests;

public class SmokeTests
{
    [Fact]
    public void AssemblyLoads() => Assert.Equal("NqmValidate.Nqm", typeof(NqmValidate.Nqm.AssemblyMarker).Assembly.GetName().Name);
}
