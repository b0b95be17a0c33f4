using System.Text.Json;
using Analytics.Contracts.V1;

namespace Analytics.EndToEnd.Tests;

public class QueryApiTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Timeseries_buckets_sum_to_the_aggregate_at_every_interval_and_in_other_time_zones()
    {
        await using var host = await TestHost.StartAsync(engine);
        for (int visitor = 0; visitor < 5; visitor++)
        {
            using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent + " v" + visitor);
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            for (int i = 0; i <= visitor; i++) batch.Events.Add(Wire.Pageview("/" + i));
            Assert.Equal((uint)visitor + 1, (await Wire.SendAsync(socket, batch)).Accepted);
        }
        await host.WaitForAggregateAsync(t => t["pageviews"] == 15);

        foreach (var (interval, tz) in new[] { ("minute", "UTC"), ("hour", "UTC"), ("day", "UTC"), ("hour", "Europe/Berlin"), ("day", "America/New_York"), ("hour", "Asia/Kolkata"), ("day", "Asia/Kolkata") })
        {
            string from = DateTime.UtcNow.AddDays(-1).ToString("yyyy-MM-dd");
            string to = DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-dd");
            var json = JsonDocument.Parse(await host.Http.GetStringAsync(
                $"/v1/sites/{host.Site.PublicId}/timeseries?metrics=pageviews,visitors&interval={interval}&tz={tz}&from={from}&to={to}", Ct)).RootElement;
            var results = json.GetProperty("results").EnumerateArray().ToList();
            Assert.Equal(15, results.Sum(r => r.GetProperty("pageviews").GetInt64()));
            // Visitors per bucket are unique within the bucket: all 5 came in one bucket here.
            Assert.Equal(5, results.Max(r => r.GetProperty("visitors").GetInt64()));
            // Buckets are contiguous, zero-filled.
            var times = results.Select(r => r.GetProperty("time").GetDateTimeOffset()).ToList();
            Assert.True(times.Count >= 2, $"{interval} {tz}: {times.Count} buckets");
            Assert.Equal(times.OrderBy(t => t), times);
        }
        var aggregate = await host.AggregateAsync("pageviews,visitors,visits");
        Assert.Equal(15, aggregate["pageviews"]);
        Assert.Equal(5, aggregate["visitors"]);
        Assert.Equal(5, aggregate["visits"]);
    }

    [Fact]
    public async Task A_query_for_another_merchants_site_never_sees_this_merchants_events()
    {
        await using var host = await TestHost.StartAsync(engine);
        var registry = (Analytics.ControlPlane.SiteRegistry)host.App.Services.GetService(typeof(Analytics.ControlPlane.SiteRegistry))!;
        var other = registry.CreateSite(registry.CreateMerchant("Other"), "other.example");
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        batch.Events.Add(Wire.Pageview());
        await Wire.SendAsync(socket, batch);
        await host.WaitForAggregateAsync(t => t["pageviews"] == 1);
        string url = $"/v1/sites/{other.PublicId}/aggregate?metrics=pageviews,events&from=2020-01-01&to=2030-01-01";
        // This merchant's token does not see the other site at all; the other merchant's sees none of these events.
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await host.Http.GetAsync(url, Ct)).StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = new("Bearer", await Analytics.Tests.Shared.TestTokens.ClientTokenAsync(host.App.Services, host.Http, other.MerchantId, "stats:read"));
        using var response = await host.Http.SendAsync(request, Ct);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal(0, json.GetProperty("results").GetProperty("pageviews").GetInt64());
        Assert.Equal(0, json.GetProperty("results").GetProperty("events").GetInt64());
    }
}

public class MetricDefinitionTests(EngineFixture engine)
{
    [Fact]
    public async Task Revenue_is_summed_and_engagement_pings_are_not_counted_as_events()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        batch.Events.Add(Wire.Pageview());
        var engagement = Wire.Custom("engagement");
        engagement.EngagementMs = 15_000;
        batch.Events.Add(engagement);
        var purchase = Wire.Custom("purchase");
        purchase.RevenueMicros = 12_340_000;
        purchase.Currency = "EUR";
        batch.Events.Add(purchase);
        Assert.Equal(3u, (await Wire.SendAsync(socket, batch)).Accepted);

        var totals = await host.WaitForAggregateAsync(t => t["events"] == 2, "pageviews,events,revenue_micros");
        Assert.Equal(2, totals["events"]);
        Assert.Equal(12_340_000, totals["revenue_micros"]);
        string day = DateTime.UtcNow.ToString("yyyy-MM-dd");
        var pings = System.Text.Json.JsonDocument.Parse(await host.Http.GetStringAsync(
            $"/v1/sites/{host.Site.PublicId}/aggregate?metrics=events&event=engagement&from={day}&to={day}", TestContext.Current.CancellationToken)).RootElement;
        Assert.Equal(1, pings.GetProperty("results").GetProperty("events").GetInt64());
    }
}
