using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Analytics.Host;
using Analytics.Store.ClickHouse;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.Store.Conformance.Tests;

/// <summary>
/// The whole product on each backend: the host as `serve` builds it (embedded, or
/// `--store clickhouse --clickhouse-url …`) migrates, ingests over HTTP, rolls up, drops resent
/// events by id (event_ids), reports partitions, dry-runs and runs a reprocessing job (generations,
/// site-day rebuild) and answers the query API. Same traffic, same clock: the answers must match
/// the numbers expected and each other.
/// </summary>
public sealed class HostOnClickHouseServerTests(BackendsFixture fixture, ITestOutputHelper output)
{
    private static readonly DateTimeOffset Day = new(2026, 11, 20, 10, 0, 0, TimeSpan.Zero);
    private const string Chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
    private const string Firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    private const string Headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_product_gives_the_same_answers_on_the_embedded_and_the_server_store()
    {
        var requestsBefore = fixture.Endpoint.Requests;
        var embedded = await RunAsync(null);
        var server = await RunAsync(new ClickHouseServerOptions { Endpoint = fixture.Endpoint.Address, User = BackendsFixture.User, Password = fixture.Password });

        foreach (var line in server)
            output.WriteLine(line);
        // Logic v1 counts the headless browser as a visitor; reprocessing under v2 makes it a bot.
        Assert.Equal("before: events=30,pageviews=18,visitors=3,visits=3", embedded[0]);
        Assert.Equal("after resend: events=30,pageviews=18,visitors=3,visits=3", embedded[1]);
        Assert.Equal("after reprocess: events=20,pageviews=12,visitors=2,visits=2", embedded[^2]);
        Assert.Equal(embedded, server);
        Assert.True(fixture.Endpoint.Requests - requestsBefore > 20, "the server store must have gone over HTTP");
    }

    private async Task<List<string>> RunAsync(ClickHouseServerOptions? clickHouse)
    {
        var id = Guid.NewGuid().ToString("N");
        var data = Path.Combine(Path.GetTempPath(), "analytics-host-" + id);
        var app = await AnalyticsHost.BuildAsync(new HostSettings
        {
            DataDirectory = data,
            ChDbPath = fixture.Engine.DataPath, // the embedded host shares the process's one engine
            Database = "host_" + id,
            Urls = "http://127.0.0.1:0",
            Quiet = true,
            LogicVersion = 1,
            Clock = new FixedClock(Day),
            ClickHouseServer = clickHouse,
        }, Ct);
        try
        {
            var registry = app.Services.GetRequiredService<SiteRegistry>();
            var site = registry.CreateSite(registry.CreateMerchant("Merchant " + id), "shop.example", "key-" + id);
            await app.StartAsync(Ct);
            using var http = new HttpClient { BaseAddress = new Uri(app.BoundAddress()) };
            var token = await Analytics.Tests.Shared.TestTokens.ClientTokenAsync(app.Services, http, site.MerchantId);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var lines = new List<string>();

            var batches = new[] { Chrome, Firefox, Headless }.Select(ua => (ua, Batch(site.SiteKey))).ToList();
            foreach (var (ua, batch) in batches)
                await PostAsync(http, ua, batch);
            lines.Add("before: " + await WaitForEventsAsync(http, site, 30));

            await PostAsync(http, Chrome, batches[0].Item2); // a client resend: same event ids
            await Task.Delay(500, Ct);                       // a Rollup round or two
            lines.Add("after resend: " + await AggregateAsync(http, site));

            lines.Add("partitions: " + Partitions(await AdminAsync(http, token, HttpMethod.Get, $"/admin/partitions?merchantId={site.MerchantId}")));
            var request = new { merchantId = site.MerchantId, from = "2026-11-20", to = "2026-11-20", logicVersion = 2 };
            var dry = await ReprocessAsync(http, token, new { request.merchantId, request.from, request.to, request.logicVersion, dryRun = true });
            lines.Add("dry run: " + dry.GetProperty("units")[0].GetProperty("delta").GetProperty("after"));
            await ReprocessAsync(http, token, request);
            lines.Add("after reprocess: " + await AggregateAsync(http, site));
            lines.Add("hours: " + await HoursAsync(http, site));
            return lines;
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    private static EventBatch Batch(string siteKey)
    {
        var batch = new EventBatch { SiteKey = siteKey, Seq = 1 };
        for (var i = 0; i < 10; i++)
        {
            batch.Events.Add(new Event
            {
                Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                Name = i % 3 == 0 ? "signup" : "pageview",
                Url = $"https://shop.example/p/{i}",
                ScreenWidth = 1280,
            });
        }
        return batch;
    }

    private static async Task PostAsync(HttpClient http, string userAgent, EventBatch batch)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent(batch.ToByteArray()) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        request.Headers.UserAgent.ParseAdd(userAgent);
        using var response = await http.SendAsync(request, Ct);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
    }

    private static async Task<string> WaitForEventsAsync(HttpClient http, Site site, long events)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string last;
        do
        {
            last = await AggregateAsync(http, site);
            if (last.StartsWith($"events={events},", StringComparison.Ordinal)) break;
            await Task.Delay(100, Ct);
        }
        while (DateTime.UtcNow < deadline);
        return last;
    }

    private static async Task<string> AggregateAsync(HttpClient http, Site site)
    {
        var json = await http.GetFromJsonAsync<JsonElement>(
            $"/v1/sites/{site.PublicId}/aggregate?metrics=pageviews,events,visitors,visits&from=2026-11-20&to=2026-11-20", Ct);
        return string.Join(',', json.GetProperty("results").EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => $"{p.Name}={p.Value}"));
    }

    // Each run's site has its own random public id: compared as SITE.
    private static async Task<string> HoursAsync(HttpClient http, Site site) =>
        (await http.GetStringAsync($"/v1/sites/{site.PublicId}/timeseries?metrics=pageviews,events,visitors,visits&interval=hour&from=2026-11-20T08:00:00Z&to=2026-11-20T12:00:00Z", Ct))
            .Replace(site.PublicId, "SITE", StringComparison.Ordinal);

    // Day, event count, logic version and whether outdated; not the run's random site id, generation ids or times.
    private static string Partitions(JsonElement status) => string.Join(';', status.EnumerateArray().Select(p =>
        string.Join(',', p.EnumerateObject().Where(f => f.Value.ValueKind is not JsonValueKind.Object and not JsonValueKind.Array
            && f.Name != "site" && !f.Name.Contains("generation", StringComparison.OrdinalIgnoreCase) && !f.Name.Contains("At", StringComparison.Ordinal))
            .Select(f => $"{f.Name}={f.Value}"))));

    private static async Task<JsonElement> AdminAsync(HttpClient http, string token, HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await http.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task<JsonElement> ReprocessAsync(HttpClient http, string token, object request)
    {
        var jobId = (await AdminAsync(http, token, HttpMethod.Post, "/admin/reprocess", request)).GetProperty("id").GetString();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var job = await AdminAsync(http, token, HttpMethod.Get, $"/admin/reprocess/{jobId}");
            var state = job.GetProperty("state").GetString();
            if (state == "done") return job;
            Assert.True(state != "failed", job.GetProperty("error").ToString());
            await Task.Delay(50, Ct);
        }
        throw new TimeoutException($"reprocess job {jobId} did not finish");
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
