using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// A real host with a manual clock, plus what the query tests need: sending events as a given
/// visitor (the User-Agent makes the visitor) at a given time, waiting until Rollup stored them,
/// and asking <c>/v1/query</c>.
/// </summary>
public sealed class QueryHost : IAsyncDisposable
{
    public static readonly DateTimeOffset Day = new(2026, 1, 15, 0, 0, 0, TimeSpan.Zero);

    private long _sent;

    private QueryHost(TestHost host, ManualClock clock)
    {
        Host = host;
        Clock = clock;
    }

    public TestHost Host { get; }
    public ManualClock Clock { get; }
    public Site Site => Host.Site;
    public IControlPlaneStore Store => Host.App.Services.GetRequiredService<SiteRegistry>().Store;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <param name="auth">Token settings (a test of cache lifetimes needs tokens that outlive them).</param>
    public static async Task<QueryHost> StartAsync(EngineFixture engine, Analytics.Host.AuthSettings? auth = null)
    {
        var clock = new ManualClock(Day);
        return new QueryHost(await TestHost.StartAsync(engine, clock: clock, auth: auth), clock);
    }

    public static Event Page(string path, string? referrer = null) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = "pageview",
        Url = "https://shop.example" + path,
        Referrer = referrer ?? "",
        ScreenWidth = 1280,
    };

    public static Event Custom(string name, string path = "/checkout", long revenueMicros = 0, string currency = "", uint engagementMs = 0) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = name,
        Url = "https://shop.example" + path,
        RevenueMicros = revenueMicros,
        Currency = currency,
        EngagementMs = engagementMs,
        ScreenWidth = 1280,
    };

    /// <summary>Sends events as the visitor named by <paramref name="userAgent"/>, received at <paramref name="at"/>.</summary>
    public async Task SendAsync(string userAgent, DateTimeOffset at, params Event[] events)
    {
        Clock.Now = at;
        var batch = new EventBatch { SiteKey = Site.SiteKey };
        batch.Events.AddRange(events);
        using var socket = await Host.ConnectAsync(userAgent);
        var ack = await Wire.SendAsync(socket, batch);
        Assert.Equal((uint)events.Length, ack.Accepted);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        // The v1 aggregate's events leave out engagement pings (a batch is stored in one round).
        _sent += events.Count(e => e.Name != "engagement");
    }

    /// <summary>A browser User-Agent unique to <paramref name="visitor"/> (so a distinct visitor).</summary>
    public static string Visitor(string visitor) => TestHost.BrowserUserAgent + " Visitor/" + visitor;

    public const string Bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    /// <summary>Waits until Rollup has stored every event sent (bots included), at most 30 s;
    /// counted by the v1 aggregate endpoint, not the code under test.</summary>
    public async Task WaitForStoredAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        long stored = 0;
        while (DateTime.UtcNow < deadline)
        {
            stored = await StoredEventsAsync();
            if (stored >= _sent) return;
            await Task.Delay(100, Ct);
        }
        Assert.Fail($"Rollup stored {stored} of {_sent} events within 30 s");
    }

    private async Task<long> StoredEventsAsync()
    {
        var json = await Host.Http.GetFromJsonAsync<JsonElement>($"/v1/sites/{Site.PublicId}/aggregate?metrics=events,bots&from=2000-01-01&to=2099-12-31", Ct);
        return json.GetProperty("results").GetProperty("events").GetInt64() + json.GetProperty("results").GetProperty("bots").GetInt64();
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> QueryAsync(object query, string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = JsonContent.Create(query) };
        return await SendAsync(request, token);
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> QueryRawAsync(string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
        return await SendAsync(request, null);
    }

    public async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpRequestMessage request, string? token)
    {
        if (token is not null) request.Headers.Authorization = new("Bearer", token);
        using var response = await Host.Http.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        var body = text.Length > 0 && text[0] is '{' or '[' ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return (response.StatusCode, body);
    }

    /// <summary>Asks and expects 200; returns the body.</summary>
    public async Task<JsonElement> AnswerAsync(object query)
    {
        var (status, body) = await QueryAsync(query);
        Assert.True(status == HttpStatusCode.OK, $"{(int)status}: {body}");
        return body;
    }

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
