namespace Analytics.QueryApi.Tests;

public class SmokeTests(EngineFixture engine)
{
    [Fact]
    public async Task The_host_starts_and_answers_the_v1_aggregate()
    {
        await using var host = await TestHost.StartAsync(engine);
        var aggregate = await host.AggregateAsync("pageviews");
        Assert.Equal(0, aggregate["pageviews"]);
    }
}
