using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Analytics.ControlPlane;
using Analytics.Contracts.V1;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests.Oracle;

[CollectionDefinition(Name)]
public sealed class OracleCollection : ICollectionFixture<OracleFixture>
{
    public const string Name = "query oracle";
}

/// <summary>
/// One host that ingested <see cref="Dataset"/> through the real WebSocket ingest, each event
/// received at its own time (<see cref="ManualClock"/>), each simulated person from its own
/// address (X-Forwarded-For through the trusted proxy 127.0.0.1) with its own user agent, and
/// MaxMind's GeoIP2 City test database for places. Shared by every oracle test: the data is
/// ingested once and asked many questions.
/// </summary>
public sealed class OracleFixture(EngineFixture engine) : IAsyncLifetime
{
    /// <summary>"Now" for the queries after ingest (the named ranges end with this day).</summary>
    public static readonly DateTimeOffset Now = new(2026, 11, 3, 12, 0, 0, TimeSpan.Zero);

    private static readonly string GeoDatabase = Path.Combine(AppContext.BaseDirectory, "TestData", "maxmind", "GeoIP2-City-Test.mmdb");

    /// <summary>The site's goals: event goals, page goals with <c>*</c> and <c>**</c>, and one
    /// nobody completes.</summary>
    public static readonly QueryOracle.Goal[] Goals =
    [
        new("Signup", "event", "signup"),
        new("Purchase", "event", "purchase"),
        new("Blog", "page", "/blog/**"),
        new("Product", "page", "/products/*"),
        new("Pricing", "page", "/pricing"),
        new("Never", "event", "never"),
    ];

    public Dataset.Data Data { get; } = Dataset.Generate();
    public QueryOracle Oracle { get; private set; } = null!;
    public TestHost Host { get; private set; } = null!;
    public ManualClock Clock { get; } = new(new DateTimeOffset(2025, 10, 1, 0, 0, 0, TimeSpan.Zero));

    public async ValueTask InitializeAsync()
    {
        Oracle = new QueryOracle(Data) { Now = Now, Goals = Goals };
        Host = await TestHost.StartAsync(engine, clock: Clock, trustedProxies: ["127.0.0.1"], geoIpDatabase: GeoDatabase);
        // Goals are the control plane's (set up as the goals API stores them); the query API reads them.
        var registry = Host.App.Services.GetRequiredService<SiteRegistry>();
        foreach (var goal in Goals) registry.Store.CreateGoal(Host.Site.SiteId, goal.Name, goal.Kind, goal.Match);
        await IngestAsync(Host, Host.Site, Clock, Data, TestContext.Current.CancellationToken);
        Clock.Now = Now;
    }

    /// <summary>Sends <paramref name="data"/> to <paramref name="site"/> through the real WebSocket
    /// ingest (each person from its own address and user agent, each event received at its own
    /// time on <paramref name="clock"/>) and waits until Rollup stored all of it. The site must be
    /// of the host's own merchant (the wait reads the API with the host's token).</summary>
    public static async Task IngestAsync(TestHost host, Site site, ManualClock clock, Dataset.Data data, CancellationToken ct)
    {
        var sockets = new Dictionary<int, ClientWebSocket>();
        try
        {
            foreach (var person in data.People)
            {
                sockets[person.Id] = await host.ConnectAsync(person.UserAgent, ("X-Forwarded-For", person.Address));
            }
            ulong seq = 0;
            // Events of one person at one instant travel in one batch, received at that instant.
            foreach (var batchEvents in Runs(data.Events))
            {
                clock.Now = batchEvents[0].At;
                var batch = new EventBatch { SiteKey = site.SiteKey, Seq = ++seq };
                batch.Events.AddRange(batchEvents.Select(Wire));
                var ack = await Analytics.EndToEnd.Tests.Wire.SendAsync(sockets[batchEvents[0].Person], batch);
                if (ack.Accepted != batch.Events.Count) throw new InvalidOperationException($"batch {seq}: {ack}");
            }
        }
        finally
        {
            foreach (var socket in sockets.Values)
            {
                if (socket.State == WebSocketState.Open) await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, ct);
                socket.Dispose();
            }
        }
        await WaitUntilStoredAsync(host, site, data, ct);
    }

    private static IEnumerable<List<Dataset.Event>> Runs(IReadOnlyList<Dataset.Event> events)
    {
        var run = new List<Dataset.Event>();
        foreach (var e in events)
        {
            if (run.Count > 0 && (run[0].Person != e.Person || run[0].At != e.At))
            {
                yield return run;
                run = [];
            }
            run.Add(e);
        }
        if (run.Count > 0) yield return run;
    }

    private static Event Wire(Dataset.Event e)
    {
        var wire = new Event
        {
            Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
            Name = e.Name,
            Url = e.Url,
            Referrer = e.Referrer,
            RevenueMicros = e.RevenueMicros,
            Currency = e.Currency,
            EngagementMs = e.EngagementMs,
            ScreenWidth = e.ScreenWidth,
        };
        wire.Props.AddRange(e.Props.Select(p => new Property { Key = p.Key, Value = p.Value }));
        return wire;
    }

    /// <summary>Waits until Rollup stored every event: the v1 aggregate over all days counts
    /// them all (events without the engagement pings, and the bots).</summary>
    private static async Task WaitUntilStoredAsync(TestHost host, Site site, Dataset.Data data, CancellationToken ct)
    {
        long events = data.Events.Count(e => !data.People[e.Person].IsBot && e.Name != "engagement");
        long bots = data.Events.Count(e => data.People[e.Person].IsBot);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            var json = await host.Http.GetFromJsonAsync<JsonElement>(
                $"/v1/sites/{site.PublicId}/aggregate?metrics=events,bots&from=2025-10-01&to=2026-11-30", ct);
            var results = json.GetProperty("results");
            last = results.ToString();
            if (results.GetProperty("events").GetInt64() == events && results.GetProperty("bots").GetInt64() == bots)
            {
                // Pings are stored with the rest of their batch; one more look for stragglers.
                await Task.Delay(500, ct);
                return;
            }
            await Task.Delay(200, ct);
        }
        throw new TimeoutException($"Rollup did not store the data set in 120 s: expected events={events} bots={bots}, last {last}");
    }

    public async ValueTask DisposeAsync()
    {
        if (Host is not null) await Host.DisposeAsync();
    }

    // ---------------------------------------------------------------- asking

    public async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(JsonObject request)
    {
        using var response = await Host.Http.PostAsync("/v1/query",
            new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        JsonElement body;
        try { body = JsonDocument.Parse(text.Length == 0 ? "null" : text).RootElement.Clone(); }
        catch (JsonException) { body = JsonSerializer.SerializeToElement(text); }
        return (response.StatusCode, body);
    }

    /// <summary>Asks the product and the oracle the same query and asserts the answers agree,
    /// with both answers in the failure message.</summary>
    public async Task<JsonElement> AssertAgreesAsync(JsonObject request)
    {
        request["site_id"] = Host.Site.PublicId;
        var expected = Oracle.Run(request);
        var (status, body) = await PostAsync(request);
        Assert.True(status == HttpStatusCode.OK, $"{(int)status} for {request.ToJsonString()}\n{body}");
        var problems = AnswerComparer.Differences(request, expected, body);
        Assert.True(problems.Count == 0, AnswerComparer.Report(request, expected, body, problems));
        return body;
    }

    /// <summary>The request body of a query over <paramref name="from"/>..<paramref name="to"/>.</summary>
    public static JsonObject Query(string from, string to, string tz, string[] metrics, string[]? dimensions = null, JsonArray? filters = null)
    {
        var q = new JsonObject
        {
            ["date_range"] = new JsonArray(from, to),
            ["timezone"] = tz,
            ["metrics"] = new JsonArray([.. metrics.Select(m => (JsonNode)m)]),
        };
        if (dimensions is { Length: > 0 }) q["dimensions"] = new JsonArray([.. dimensions.Select(d => (JsonNode)d)]);
        if (filters is not null) q["filters"] = filters;
        return q;
    }

    public static JsonArray Filters(string json) => JsonNode.Parse(json)!.AsArray();

    public static string Date(DateOnly d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
