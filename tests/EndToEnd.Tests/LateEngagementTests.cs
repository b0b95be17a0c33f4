using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Processing logic 4: the agent's `engagement` ping (sent when a page is hidden) never starts a
/// visit. Under version 3 a ping that came 30 minutes or more after its visitor's last event (a
/// tab left open), after the UTC midnight that renews the visitor id, or with no pageview at all
/// made a visit of its own: a visit and a bounce more, a visitor more, its time counted on pages
/// it never viewed. The expected numbers are worked out by hand below from the documented
/// definitions (docs/query-api.md, "Metrics"), not by the product's sessionizer.
/// </summary>
public class LateEngagementTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly DateTimeOffset Day = new(2026, 2, 11, 0, 0, 0, TimeSpan.Zero);

    /// <summary>(visitor, time after Day's midnight, event, engagement ms); pings the rule drops are marked.</summary>
    private static readonly (int Visitor, TimeSpan At, string Name, string Path, uint EngagementMs)[] Traffic =
    [
        // A: a visit of two pages and a ping 3:04 later (304 s long, not a bounce); a ping 35 min
        // after that ping (late); a new visit 50 min after the late ping, 85 min after the last
        // counted event.
        (1, new(10, 0, 0), "pageview", "/", 0),
        (1, new(10, 2, 0), "pageview", "/pricing", 0),
        (1, new(10, 5, 4), "engagement", "/pricing", 120_000),
        (1, new(10, 40, 4), "engagement", "/pricing", 600_000), // late: 35 min
        (1, new(11, 30, 0), "pageview", "/", 0),
        // B: a pageview at 23:50 and its ping 20 minutes later, after UTC midnight: a new visitor id.
        (2, new(23, 50, 0), "pageview", "/", 0),
        (2, new(24, 10, 0), "engagement", "/", 300_000), // late: after midnight
        // C: a ping and nothing else (the page was viewed before the agent had consent).
        (3, new(12, 0, 0), "engagement", "/", 60_000), // late: no visit at all
        // D: a ping exactly 30 minutes after the pageview: the visit has ended.
        (4, new(13, 0, 0), "pageview", "/blog", 0),
        (4, new(13, 30, 0), "engagement", "/blog", 1_800_000), // late: 30 min exactly
    ];

    private static readonly string[] Metrics = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "time_on_page"];

    // Version 3: every ping counts and the late ones are visits of their own: visitors A, B on
    // both days, C, D (5); visits A ×3, B ×2, C, D ×2 (8), of which all but A's first bounce
    // (7/8); durations 304 s and seven 0 (304/8 = 38 s); time on page: all pings' 2,880 s over 5
    // pageviews.
    private const string Version3 = "visitors 5, visits 8, pageviews 5, events 5, bounce_rate 87.5, visit_duration 38, time_on_page 576";
    // Version 4: the four late pings count nowhere: visitors A, B (day one), D (3); visits A ×2,
    // B, D (4), three bouncing (75 %); durations 304 s and three 0 (76 s); time on page: A's
    // first ping, 120 s over 5 pageviews.
    private const string Version4 = "visitors 3, visits 4, pageviews 5, events 5, bounce_rate 75, visit_duration 76, time_on_page 24";

    [Fact]
    public async Task A_late_engagement_ping_starts_no_visit_live_and_after_reprocessing_version_3_history()
    {
        var clock = new ManualClock(Day.AddHours(9));
        var old = await TestHost.StartAsync(engine, logicVersion: 3, clock: clock);
        old.KeepData = true;
        try
        {
            await SendAsync(old, clock);
            Assert.Equal(Version3, await AskAsync(old));
            Assert.Equal(0, await old.MetricAsync("analytics_rollup_engagement_without_visit_total"));
        }
        finally
        {
            await old.DisposeAsync();
        }

        await using (var upgraded = await TestHost.StartAsync(engine, restartOf: old, logicVersion: 4, clock: clock))
        {
            var job = await upgraded.ReprocessAsync(new { merchantId = upgraded.Site.MerchantId, from = "2026-02-11", to = "2026-02-12" });
            Assert.Equal(Traffic.Length, job.GetProperty("eventsDone").GetInt64());
            Assert.Equal(Version4, await AskAsync(upgraded));
            // The pings are kept: the raw archive still has every event, so a later logic can count them.
            var raw = await engine.Store.QueryRowsAsync($"SELECT count() FROM {upgraded.Database}.events_raw WHERE site_id = {upgraded.Site.SiteId}", Ct);
            Assert.Equal(Traffic.Length, long.Parse(raw[0][0].ToString(), CultureInfo.InvariantCulture));
        }

        // Live under version 4, from the start: the same numbers, and each late ping counted as such.
        var liveClock = new ManualClock(Day.AddHours(9));
        await using var live = await TestHost.StartAsync(engine, logicVersion: 4, clock: liveClock);
        await SendAsync(live, liveClock);
        Assert.Equal(Version4, await AskAsync(live));
        Assert.Equal(Traffic.Count(e => e.Name == "engagement") - 1, await live.MetricAsync("analytics_rollup_engagement_without_visit_total"));
    }

    /// <summary>Sends the traffic in time order, one batch per event, each visitor on a socket of its
    /// own (its user agent makes it a visitor), and waits until Rollup has stored all of it.</summary>
    private static async Task SendAsync(TestHost host, ManualClock clock)
    {
        var sockets = new Dictionary<int, ClientWebSocket>();
        try
        {
            foreach (var (visitor, at, name, path, engagementMs) in Traffic.OrderBy(e => e.At))
            {
                if (!sockets.TryGetValue(visitor, out var socket))
                    sockets[visitor] = socket = await host.ConnectAsync(TestHost.BrowserUserAgent.Replace("Chrome/131", $"Chrome/131.{visitor}", StringComparison.Ordinal));
                clock.Now = Day + at;
                var batch = new EventBatch { SiteKey = host.Site.SiteKey };
                batch.Events.Add(new Event
                {
                    Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                    Name = name,
                    Url = "https://shop.example" + path,
                    ScreenWidth = 1280,
                    EngagementMs = engagementMs,
                });
                Assert.Equal(1u, (await Wire.SendAsync(socket, batch)).Accepted);
            }
        }
        finally
        {
            foreach (var socket in sockets.Values)
            {
                if (socket.State == WebSocketState.Open) await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
                socket.Dispose();
            }
        }
        clock.Now = Day.AddDays(2);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await host.MetricAsync("analytics_rollup_events_stored_total") < Traffic.Length && DateTime.UtcNow < deadline) await Task.Delay(100, Ct);
        Assert.Equal(Traffic.Length, await host.MetricAsync("analytics_rollup_events_stored_total"));
    }

    /// <summary>POST /v1/query over both days in UTC: "metric value, …" in the order asked.</summary>
    private static async Task<string> AskAsync(TestHost host)
    {
        using var response = await host.Http.PostAsJsonAsync("/v1/query",
            new { site_id = host.Site.PublicId, date_range = new[] { "2026-02-11", "2026-02-12" }, timezone = "UTC", metrics = Metrics }, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
        var values = Assert.Single(body.GetProperty("results").EnumerateArray()).GetProperty("metrics").EnumerateArray().ToList();
        return string.Join(", ", Metrics.Select((m, i) => $"{m} {values[i].GetDouble().ToString(CultureInfo.InvariantCulture)}"));
    }
}
