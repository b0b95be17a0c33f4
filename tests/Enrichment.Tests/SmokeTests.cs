namespace Analytics.Enrichment.Tests;

public class SmokeTests
{
    [Fact]
    public void The_project_builds() => Assert.True(true);
}
