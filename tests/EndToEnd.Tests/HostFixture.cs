using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Analytics.Host;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

[assembly: AssemblyFixture(typeof(Analytics.Tests.Shared.EngineFixture))]
[assembly: AssemblyFixture(typeof(Analytics.EndToEnd.Tests.HostDataDirectories))]

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Deletes, after the last test, every data directory a <see cref="TestHost"/> made. A host that
/// keeps its data (<see cref="TestHost.KeepData"/>) leaves it to the host restarted on it, which a
/// test that fails in between never starts.
/// </summary>
public sealed class HostDataDirectories : IDisposable
{
    private static readonly ConcurrentDictionary<string, bool> s_made = new(StringComparer.Ordinal);

    public static void Add(string path) => s_made.TryAdd(path, true);

    public void Dispose()
    {
        foreach (var path in s_made.Keys)
        {
            try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}

/// <summary>A clock the test moves: events are received at the times it says.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;
    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>One running embedded host (ingest + rollup + query) on a free loopback port.</summary>
public sealed class TestHost : IAsyncDisposable
{
    public const string BrowserUserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    private TestHost(WebApplication app, string dataDirectory, string database, Site site, string token, TimeProvider clock)
    {
        Token = token;
        Clock = clock;
        App = app;
        DataDirectory = dataDirectory;
        Database = database;
        Site = site;
        BaseAddress = app.BoundAddress();
        Http = new HttpClient { BaseAddress = new Uri(BaseAddress) };
        if (token.Length > 0) Http.DefaultRequestHeaders.Authorization = new("Bearer", token);
    }

    /// <summary>An access token of the test site's merchant with every scope (admin included);
    /// <see cref="Http"/> sends it.</summary>
    public string Token { get; }

    public WebApplication App { get; }
    public string DataDirectory { get; }
    public string Database { get; }
    public Site Site { get; }
    /// <summary>Set to keep the data directory on dispose (for a restart on the same data).</summary>
    public bool KeepData { get; set; }
    public string BaseAddress { get; }
    public HttpClient Http { get; }
    /// <summary>The host's clock: events are received at its times (a test's ManualClock, or the system's).</summary>
    public TimeProvider Clock { get; }
    public Uri WebSocketUri => new(BaseAddress.Replace("http://", "ws://", StringComparison.Ordinal) + "/v1/ws");

    /// <summary>A new host; or, given <paramref name="restartOf"/>, the same data and database again.</summary>
    /// <param name="kafka">Kafka as the event log instead of the local log.</param>
    /// <param name="storeOf">Another host whose database (and site) this one shares, with a data
    /// directory of its own: a second replica of a service in a scale-out deployment.</param>
    /// <param name="controlPlane">The control plane (--control-plane); null: SQLite in the data directory.</param>
    /// <param name="echo">Also map the /v1/echo WebSocket endpoint (the benchmark baseline).</param>
    /// <param name="trustedProxies">Proxies whose X-Forwarded-For (or Forwarded: <paramref name="forwardedHeader"/>) the host believes.</param>
    /// <param name="geoIpDatabase">A GeoIP2 database instead of the GeoLite2 City of the enrichment data.</param>
    /// <param name="telemetry">Trace exporters (tests add an in-memory one).</param>
    /// <param name="edgePurgeUrls">Edge caches the purge notifier tells about reprocessed site-days.</param>
    /// <param name="retention">How long each table keeps its rows (applied as TTLs at start).</param>
    /// <param name="dataDirectory">The data directory (prepared by the test); default: a new one under /tmp.</param>
    /// <param name="auth">Token settings (a test may make access tokens expire in seconds).</param>
    public static async Task<TestHost> StartAsync(EngineFixture engine, Analytics.FastIngest.Validation.IngestLimits? limits = null, TestHost? restartOf = null,
        ushort logicVersion = Analytics.Rollup.ProcessingLogic.Current, TimeProvider? clock = null,
        Analytics.EventLog.Kafka.KafkaLogOptions? kafka = null, Roles roles = Roles.All, TestHost? storeOf = null, int rollupBatchRecords = 50_000, bool echo = false,
        IReadOnlyList<string>? trustedProxies = null, string? controlPlane = null, string? geoIpDatabase = null, TelemetrySettings? telemetry = null,
        IReadOnlyList<Uri>? edgePurgeUrls = null, CircuitBreakerSettings? breakers = null, RetentionPolicy? retention = null, string? dataDirectory = null, AuthSettings? auth = null,
        Analytics.FastIngest.Transport.ClientAddressHeader forwardedHeader = Analytics.FastIngest.Transport.ClientAddressHeader.XForwardedFor)
    {
        string id = Guid.NewGuid().ToString("N");
        string data = restartOf?.DataDirectory ?? dataDirectory ?? Path.Combine(Path.GetTempPath(), "analytics-e2e-" + id);
        string database = restartOf?.Database ?? storeOf?.Database ?? "e2e_" + id;
        if (restartOf is null && dataDirectory is null) HostDataDirectories.Add(data);
        var app = await AnalyticsHost.BuildAsync(new HostSettings
        {
            DataDirectory = data,
            ChDbPath = engine.ChDbPath,
            Database = database,
            Urls = "http://127.0.0.1:0",
            Quiet = true,
            Limits = limits ?? Analytics.FastIngest.Validation.IngestLimits.Default,
            LogicVersion = logicVersion,
            Clock = clock ?? TimeProvider.System,
            Kafka = kafka,
            Roles = roles,
            RollupBatchRecords = rollupBatchRecords,
            EnableEcho = echo,
            TrustedProxies = trustedProxies ?? [],
            ForwardedHeader = forwardedHeader,
            ControlPlane = controlPlane,
            GeoIpDatabase = geoIpDatabase,
            CircuitBreakers = breakers ?? new(),
            Enrichment = geoIpDatabase is null ? engine.Enrichment : null,
            Telemetry = telemetry ?? new TelemetrySettings(),
            EdgePurgeUrls = edgePurgeUrls ?? [],
            Retention = retention ?? RetentionPolicy.KeepEverything,
            Auth = auth ?? new AuthSettings(),
        });
        try
        {
            var registry = app.Services.GetRequiredService<SiteRegistry>();
            var site = restartOf?.Site ?? storeOf?.Site ?? registry.CreateSite(registry.CreateMerchant("Test Merchant " + id), "shop.example", "key-" + id);
            await app.StartAsync();
            using var tokenHttp = new HttpClient { BaseAddress = new Uri(app.BoundAddress()) };
            // A replica with a control plane of its own (storeOf, no shared control plane) does not
            // know the merchant: it serves no API calls in those tests, so it gets no token.
            string token = registry.Store.GetMerchant(site.MerchantId) is null ? ""
                : await Analytics.Tests.Shared.TestTokens.ClientTokenAsync(app.Services, tokenHttp, site.MerchantId);
            return new TestHost(app, data, database, site, token, clock ?? TimeProvider.System);
        }
        catch
        {
            // A host that failed to start still holds the log, the registry and an engine reference.
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            throw;
        }
    }

    public async Task<ClientWebSocket> ConnectAsync(string userAgent = BrowserUserAgent, params (string Name, string Value)[] headers)
    {
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", userAgent);
        foreach (var (name, value) in headers) socket.Options.SetRequestHeader(name, value);
        await socket.ConnectAsync(WebSocketUri, TestContext.Current.CancellationToken);
        return socket;
    }

    /// <summary>Sends <paramref name="batch"/> over a WebSocket of its own (a browser's user agent)
    /// and checks that every event of it was accepted.</summary>
    public async Task SendAllAsync(EventBatch batch)
    {
        using var socket = await ConnectAsync();
        Assert.Equal((uint)batch.Events.Count, (await Wire.SendAsync(socket, batch)).Accepted);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, TestContext.Current.CancellationToken);
    }

    /// <summary>Polls the aggregate endpoint until <paramref name="done"/> holds; fails after 30 s
    /// with the last totals (a wait that ran out silently once hid a question about the wrong days).</summary>
    public async Task<Dictionary<string, long>> WaitForAggregateAsync(Func<Dictionary<string, long>, bool> done, string metrics = "pageviews,events,visitors,visits")
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var last = await AggregateAsync(metrics);
            if (done(last)) return last;
            if (DateTime.UtcNow >= deadline)
                throw new Xunit.Sdk.XunitException($"the totals did not reach the expected values within 30 s; last: {string.Join(", ", last.Select(p => $"{p.Key} {p.Value}"))}");
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>The aggregate from the day before the host's clock to the day after, so that a host on a
    /// ManualClock is asked about the days its events were received on.</summary>
    public async Task<Dictionary<string, long>> AggregateAsync(string metrics = "pageviews,events,visitors,visits")
    {
        var now = Clock.GetUtcNow().UtcDateTime;
        string from = now.AddDays(-1).ToString("yyyy-MM-dd");
        string to = now.AddDays(1).ToString("yyyy-MM-dd");
        var json = await Http.GetFromJsonAsync<JsonElement>($"/v1/sites/{Site.PublicId}/aggregate?metrics={metrics}&from={from}&to={to}", TestContext.Current.CancellationToken);
        return json.GetProperty("results").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
    }

    /// <summary>
    /// One series' value from GET /metrics (Prometheus text): <paramref name="series"/> is the name
    /// with its labels as exported (<c>name{reason="InvalidId"}</c>), or the bare name for a series
    /// without labels (which OpenTelemetry's exporter writes as <c>name{}</c>).
    /// </summary>
    public async Task<long> MetricAsync(string series) =>
        MetricValue(await Http.GetStringAsync("/metrics", TestContext.Current.CancellationToken), series);

    /// <summary>One series' value in Prometheus text (see <see cref="MetricAsync"/>), for a server that is not a TestHost.</summary>
    public static long MetricValue(string text, string series)
    {
        foreach (var line in text.Split('\n'))
        {
            int space = line.LastIndexOf(' ');
            if (line.StartsWith('#') || space < 0) continue;
            string name = line[..space];
            if (name == series || name == series + "{}")
                return (long)double.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new Xunit.Sdk.XunitException($"/metrics has no series {series}:\n{text}");
    }

    /// <summary>An HttpClient request with the test's access token (admin scope).</summary>
    public HttpRequestMessage AdminRequest(HttpMethod method, string path, object? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new("Bearer", Token);
        if (body is not null) request.Content = JsonContent.Create(body);
        return request;
    }

    /// <summary>Starts a reprocessing job and waits until it is done; returns the job JSON.</summary>
    public async Task<JsonElement> ReprocessAsync(object request, int timeoutSeconds = 60)
    {
        var response = await Http.SendAsync(AdminRequest(HttpMethod.Post, "/admin/reprocess", request), TestContext.Current.CancellationToken);
        string body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, body);
        string id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (DateTime.UtcNow < deadline)
        {
            using var poll = await Http.SendAsync(AdminRequest(HttpMethod.Get, $"/admin/reprocess/{id}"), TestContext.Current.CancellationToken);
            var job = JsonDocument.Parse(await poll.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;
            string state = job.GetProperty("state").GetString()!;
            if (state == "done") return job;
            Assert.True(state != "failed", job.GetProperty("error").ToString());
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException("reprocess job did not finish");
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        if (KeepData) return;
        try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { }
    }
}

public static class Wire
{
    public static Event Pageview(string path = "/", string? referrer = null) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = "pageview",
        Url = "https://shop.example" + path,
        Referrer = referrer ?? "",
        ScreenWidth = 1280,
    };

    public static Event Custom(string name) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = name,
        Url = "https://shop.example/checkout",
    };

    public static async Task<Ack> SendAsync(ClientWebSocket socket, EventBatch batch)
    {
        await socket.SendAsync(batch.ToByteArray(), WebSocketMessageType.Binary, true, TestContext.Current.CancellationToken);
        return await ReceiveAckAsync(socket);
    }

    public static async Task<Ack> ReceiveAckAsync(ClientWebSocket socket)
    {
        var buffer = new byte[64 * 1024];
        int length = 0;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(length), TestContext.Current.CancellationToken);
            if (result.MessageType == WebSocketMessageType.Close) throw new WebSocketException($"closed: {socket.CloseStatus} {socket.CloseStatusDescription}");
            length += result.Count;
            if (result.EndOfMessage) return Ack.Parser.ParseFrom(buffer, 0, length);
        }
    }
}
