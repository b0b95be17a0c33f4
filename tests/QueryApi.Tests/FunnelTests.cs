using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// POST /v1/funnel against events sent through the real ingest at times a ManualClock sets. The
/// expected numbers come from plain LINQ over the events the test sent, following the documented
/// definition: per visitor, the longest chain of steps in order that starts at a step-1 event in
/// the range, each step at most window_seconds after that step-1 event; strict: no other
/// pageview or custom event between two steps (engagement pings do not count); bots never count.
/// Each step is another event, later in the log: one event never completes two steps; events of
/// one batch (one millisecond) follow their order in the batch. The same traffic and late rounds
/// also check a large site's goal conversions kept per goal (POST /v1/query).
/// </summary>
public class FunnelTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly DateTimeOffset T0 = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);
    private const int Window = 600;
    private const string Range = """["2026-01-15T12:00:00Z", "2026-01-15T13:00:00Z"]""";

    /// <summary>One event a visitor sends: a pageview (path starts with '/'), "engagement", or a custom event with optional plan property.</summary>
    private sealed record Sent(string Visitor, int Second, string What, string? Plan = null)
    {
        public bool IsPageview => What.StartsWith('/');
        public string Name => IsPageview ? "pageview" : What;
    }

    private const string Bot = "bot";

    // Written by hand from the goals' documented meaning (page patterns: * = any characters but '/').
    private static readonly (string Name, Func<Sent, bool> Completes)[] Steps =
    [
        ("Home", e => e.IsPageview && e.What == "/"),
        ("Product", e => e.IsPageview && e.What.StartsWith("/product/", StringComparison.Ordinal) && !e.What["/product/".Length..].Contains('/')),
        ("Signup", e => e.Name == "signup"),
        ("Pro purchase", e => e.Name == "purchase" && e.Plan == "pro"),
    ];

    private static readonly Sent[] Traffic =
    [
        // the whole funnel
        new("v1", 0, "/"), new("v1", 60, "/product/a"), new("v1", 120, "signup"), new("v1", 180, "purchase", "pro"),
        // step 2 one second past the window, and exactly at its edge
        new("v2", 0, "/"), new("v2", Window + 1, "/product/a"),
        new("v3", 0, "/"), new("v3", Window, "/product/a"),
        // order matters: product before home
        new("v4", 0, "/product/a"), new("v4", 10, "/"), new("v4", 20, "signup"),
        // another page between steps: sequential goes on, strict stops
        new("v5", 0, "/"), new("v5", 10, "/about"), new("v5", 20, "/product/b"), new("v5", 30, "signup"),
        // engagement pings are not events for strict
        new("v6", 0, "/"), new("v6", 10, "/product/x"), new("v6", 15, "engagement"), new("v6", 20, "signup"), new("v6", 25, "purchase", "pro"),
        // strict starts again at a later step-1 event
        new("v7", 0, "/"), new("v7", 5, "/about"), new("v7", 10, "/"), new("v7", 15, "/product/y"),
        // a new step-1 event in the middle: strict does not carry the earlier chain across it
        new("v8", 0, "/"), new("v8", 5, "/product/a"), new("v8", 8, "/"), new("v8", 12, "signup"),
        // the property must match
        new("v9", 0, "/"), new("v9", 5, "/product/a"), new("v9", 10, "signup"), new("v9", 15, "purchase", "free"), new("v9", 20, "purchase", "pro"),
        // not a step-1 start in range: home before the range, product inside
        new("v10", -100, "/"), new("v10", 10, "/product/a"),
        // * does not cross '/'
        new("v11", 0, "/"), new("v11", 10, "/product/a/b"),
        // only later steps
        new("v12", 0, "signup"),
        // a chain that starts late, within the window of the second home only
        new("v13", 0, "/"), new("v13", 1000, "/"), new("v13", 1500, "/product/z"), new("v13", 1550, "signup"),
        // a bot doing everything
        new(Bot, 0, "/"), new(Bot, 5, "/product/a"), new(Bot, 10, "signup"), new(Bot, 15, "purchase", "pro"),
        // after the range
        new("v14", 3600, "/"), new("v14", 3610, "/product/a"),
        // one batch (the same millisecond): its events in the order sent, home then product...
        new("v15", 40, "/"), new("v15", 40, "/product/c"),
        // ...and product then home, which is not the funnel's order
        new("v16", 40, "/product/d"), new("v16", 40, "/"), new("v16", 45, "signup"),
    ];

    // Steps whose goals overlap: "/" completes both "Any page" (a page pattern, * = any characters
    // but '/') and "Home".
    private static readonly (string Name, Func<Sent, bool> Completes)[] OverlappingSteps =
    [
        ("Any page", e => e.IsPageview && !e.What[1..].Contains('/')),
        Steps[0],
        Steps[2],
    ];

    private static long[] Expected(bool strict) => Expected(strict, T0, T0.AddHours(1));

    private static long[] Expected(bool strict, DateTimeOffset from, DateTimeOffset to, Func<Sent, bool>? selected = null) =>
        Expected(Steps, strict, from, to, selected);

    private static long[] Expected((string Name, Func<Sent, bool> Completes)[] steps, bool strict, DateTimeOffset from, DateTimeOffset to,
        Func<Sent, bool>? selected = null, IEnumerable<Sent>? traffic = null)
    {
        var counts = new long[steps.Length];
        // A visitor is one per UTC day: the id is keyed with the day's salt (docs/control-plane.md).
        foreach (var visitor in (traffic ?? Traffic).Where(e => e.Visitor != Bot).GroupBy(e => (e.Visitor, T0.AddSeconds(e.Second).UtcDateTime.Date)))
        {
            var events = visitor.Where(e => e.Name != "engagement" && T0.AddSeconds(e.Second) >= from && T0.AddSeconds(e.Second) < to && (selected?.Invoke(e) ?? true))
                .OrderBy(e => e.Second).ToList(); // stable: a batch's events stay in the order sent
            int best = 0;
            for (int i = 0; i < events.Count; i++)
            {
                if (!steps[0].Completes(events[i])) continue;
                int reached = 1, at = i;
                while (reached < steps.Length)
                {
                    var step = steps[reached];
                    int next = strict
                        ? (at + 1 < events.Count && step.Completes(events[at + 1]) ? at + 1 : -1)
                        : events.FindIndex(at + 1, e => step.Completes(e));
                    if (next < 0 || events[next].Second - events[i].Second > Window) break;
                    (reached, at) = (reached + 1, next);
                }
                best = Math.Max(best, reached);
            }
            for (int k = 0; k < best; k++) counts[k]++;
        }
        return counts;
    }

    private static async Task<(TestHost Host, ManualClock Clock)> StartWithTrafficAsync(EngineFixture engine)
    {
        var clock = new ManualClock(T0.AddMinutes(-5));
        var host = await TestHost.StartAsync(engine, clock: clock);
        try
        {
            string goals = $"/v1/sites/{host.Site.PublicId}/goals";
            foreach (var goal in new object[]
            {
                new { name = "Home", kind = "page", match = "/" },
                new { name = "Any page", kind = "page", match = "/*" },
                new { name = "Product", kind = "page", match = "/product/*" },
                new { name = "Signup", kind = "event", match = "signup" },
                new { name = "Pro purchase", kind = "event", match = "purchase", property = new { key = "plan", value = "pro" } },
                new { name = "Never", kind = "event", match = "never-sent" },
            })
            {
                Assert.Equal(HttpStatusCode.Created, (await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, goals, goal)).Status);
            }

            var sockets = new Dictionary<string, ClientWebSocket>();
            try
            {
                // One batch per visitor and second, its events in the order listed.
                foreach (var group in Traffic.GroupBy(e => (e.Visitor, e.Second)).OrderBy(g => g.Key.Second))
                {
                    var (visitor, second) = group.Key;
                    if (!sockets.TryGetValue(visitor, out var socket))
                    {
                        string ua = visitor == Bot ? "Googlebot/2.1 (+http://www.google.com/bot.html)" : TestHost.BrowserUserAgent.Replace("Chrome/131", $"Chrome/131.{visitor[1..]}", StringComparison.Ordinal);
                        sockets[visitor] = socket = await host.ConnectAsync(ua);
                    }
                    clock.Now = T0.AddSeconds(second);
                    var batch = new EventBatch { SiteKey = host.Site.SiteKey };
                    foreach (var e in group) batch.Events.Add(ToWire(e));
                    Assert.Equal((uint)batch.Events.Count, (await Wire.SendAsync(socket, batch)).Accepted);
                }
            }
            finally
            {
                foreach (var socket in sockets.Values)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
                    socket.Dispose();
                }
            }
            clock.Now = T0.AddHours(2);
            int stored = Traffic.Length;
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await StoredAsync(host) < stored && DateTime.UtcNow < deadline) await Task.Delay(100, Ct);
            Assert.Equal(stored, await StoredAsync(host));
            return (host, clock);
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    private static Event ToWire(Sent e)
    {
        var wire = e.IsPageview ? Wire.Pageview(e.What) : Wire.Custom(e.What);
        if (e.Name == "engagement") wire.EngagementMs = 5000;
        if (e.Plan is not null) wire.Props.Add(new Property { Key = "plan", Value = e.Plan });
        return wire;
    }

    /// <summary>Sends <paramref name="late"/> through ingest (a socket per visitor, the clock at each
    /// event's second), then waits until Rollup has stored <paramref name="stored"/> events and its
    /// rounds of <paramref name="days"/> have ended (their last insert comes before the end of the
    /// announcement). The clock is left at <paramref name="after"/>.</summary>
    private static async Task SendLateAsync(TestHost host, ManualClock clock, IEnumerable<Sent> late, int stored, DateTimeOffset after, params DateTime[] days)
    {
        foreach (var visitor in late.GroupBy(e => e.Visitor))
        {
            using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent.Replace("Chrome/131", $"Chrome/131.{visitor.Key[1..]}", StringComparison.Ordinal));
            foreach (var e in visitor)
            {
                clock.Now = T0.AddSeconds(e.Second);
                Assert.Equal(1u, (await Wire.SendAsync(socket, new EventBatch { SiteKey = host.Site.SiteKey, Events = { ToWire(e) } })).Accepted);
            }
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        clock.Now = after;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await StoredAsync(host) < stored && DateTime.UtcNow < deadline) await Task.Delay(100, Ct);
        Assert.Equal(stored, await StoredAsync(host));
        await RoundsEndedAsync(host, days);
    }

    private static async Task RoundsEndedAsync(TestHost host, params DateTime[] days)
    {
        var writes = host.App.Services.GetRequiredService<Analytics.Store.SiteDayWrites>();
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); days.Any(d => !writes.TryQuiet(host.Database,
            (ulong)host.Site.MerchantId, (ulong)host.Site.SiteId, DateOnly.FromDateTime(d), out _)); await Task.Delay(20, Ct))
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "Rollup's round never ended");
    }

    /// <summary>The sequential funnel has a statement for small sites and one for large ones
    /// (FunnelReader.SequentialLevels): every site read as one or as the other.</summary>
    private static void ReadAsLargeSite(TestHost host, bool largeSite) =>
        host.App.Services.GetRequiredService<Analytics.QueryService.Query.QueryEngine>().LargeSiteFromVisits = largeSite ? 0 : long.MaxValue;

    /// <summary>Events stored by Rollup (bots included): the traffic is in once this reaches its size.</summary>
    private static async Task<long> StoredAsync(TestHost host)
    {
        var rows = await host.App.Services.GetRequiredService<Analytics.Store.IColumnStore>()
            .QueryRowsAsync($"SELECT count() FROM {host.Database}.events_enriched", Ct);
        return rows[0][0].ValueKind == JsonValueKind.String ? long.Parse(rows[0][0].GetString()!) : rows[0][0].GetInt64();
    }

    private static async Task<JsonElement> FunnelAsync(TestHost host, string inlineOrId, string range = Range)
    {
        string json = $$"""{"site_id": "{{host.Site.PublicId}}", "date_range": {{range}}, {{inlineOrId}}}""";
        var (status, body) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, "/v1/funnel", json);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        return body;
    }

    private static void AssertSteps(long[] expected, JsonElement answer)
    {
        var steps = answer.GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal(expected, steps.Select(s => s.GetProperty("visitors").GetInt64()));
        for (int i = 0; i < expected.Length; i++)
        {
            double rate = expected[0] == 0 ? 0 : Math.Round(100.0 * expected[i] / expected[0], 1, MidpointRounding.AwayFromZero);
            long drop = i == 0 ? 0 : expected[i - 1] - expected[i];
            double dropRate = i == 0 || expected[i - 1] == 0 ? 0 : Math.Round(100.0 * drop / expected[i - 1], 1, MidpointRounding.AwayFromZero);
            Assert.Equal((rate, drop, dropRate), (steps[i].GetProperty("conversion_rate").GetDouble(), steps[i].GetProperty("drop_off").GetInt64(), steps[i].GetProperty("drop_off_rate").GetDouble()));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Sequential_and_strict_funnels_count_what_the_definition_counts(bool largeSite)
    {
        var (host, _) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        ReadAsLargeSite(host, largeSite);
        string steps = """["Home", "Product", "Signup", "Pro purchase"]""";
        var sequential = Expected(strict: false);
        var strict = Expected(strict: true);
        // The traffic really tells the two apart, and reaches every step.
        Assert.NotEqual(sequential, strict);
        Assert.True(strict[^1] > 0);

        AssertSteps(sequential, await FunnelAsync(host, $$"""  "steps": {{steps}}, "window_seconds": {{Window}}  """));
        AssertSteps(strict, await FunnelAsync(host, $$"""  "steps": {{steps}}, "window_seconds": {{Window}}, "order": "strict"  """));

        // A stored funnel answers the same as its inline steps.
        var (created, funnel) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, $"/v1/sites/{host.Site.PublicId}/funnels",
            new { name = "Checkout", steps = new[] { "Home", "Product", "Signup", "Pro purchase" }, window_seconds = Window, order = "strict" });
        Assert.Equal(HttpStatusCode.Created, created);
        var stored = await FunnelAsync(host, $"\"funnel_id\": {funnel.GetProperty("id").GetInt64()}");
        AssertSteps(strict, stored);
        Assert.Equal(["Home", "Product", "Signup", "Pro purchase"], stored.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()));

        // "all": from the day of the first event (v10's home, before the hour above) through today.
        var all = await FunnelAsync(host, $"\"funnel_id\": {funnel.GetProperty("id").GetInt64()}", "\"all\"");
        AssertSteps(Expected(strict: true, T0.AddDays(-1), T0.AddDays(1)), all);
        Assert.Equal(["2026-01-15T00:00:00+00:00", "2026-01-16T00:00:00+00:00"], all.GetProperty("query").GetProperty("date_range").EnumerateArray().Select(d => d.GetString()));

        // A rebuild in progress (reprocessing) writes the same events again under a new generation
        // before activating it: only the active generation counts (strict would otherwise see
        // every event twice in a row and stop at step 1).
        await host.App.Services.GetRequiredService<Analytics.Store.IColumnStore>().ExecuteAsync(
            $"INSERT INTO {host.Database}.events_enriched SELECT * REPLACE (toUInt64(99) AS generation) FROM {host.Database}.events_enriched", Ct);
        Assert.Equal(2 * Traffic.Length, await StoredAsync(host));
        AssertSteps(strict, await FunnelAsync(host, $"\"funnel_id\": {funnel.GetProperty("id").GetInt64()}"));
        AssertSteps(sequential, await FunnelAsync(host, $$"""  "steps": {{steps}}, "window_seconds": {{Window}}  """));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task One_event_never_completes_two_steps_and_a_batch_keeps_its_order(bool largeSite)
    {
        var (host, _) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        ReadAsLargeSite(host, largeSite);
        string steps = """["Any page", "Home", "Signup"]""";
        var sequential = Expected(OverlappingSteps, strict: false, T0, T0.AddHours(1));
        var strict = Expected(OverlappingSteps, strict: true, T0, T0.AddHours(1));
        // By hand: 13 visitors have a page in range; only v7 and v8 have a second "/" after one,
        // and only v8 a signup after that. Counting one "/" as both steps gives 13, 13, 8.
        Assert.Equal([13, 2, 1], sequential);
        AssertSteps(sequential, await FunnelAsync(host, $$"""  "steps": {{steps}}, "window_seconds": {{Window}}  """));
        AssertSteps(strict, await FunnelAsync(host, $$"""  "steps": {{steps}}, "window_seconds": {{Window}}, "order": "strict"  """));
        // The batches of v15 (home, product) and v16 (product, home, then signup) in the order sent.
        var ordered = Expected(strict: false);
        AssertSteps(ordered, await FunnelAsync(host, $$"""  "steps": ["Home", "Product", "Signup", "Pro purchase"], "window_seconds": {{Window}}  """));
    }

    /// <summary>
    /// A funnel over past whole UTC days adds up numbers kept per day (QueryEngine.KeptDaysAsync):
    /// asked again it reads no day, a day kept inside a span of days read counts once, and a late
    /// event Rollup stores into a kept day (the clock set back) is in the next answer. A chain
    /// across UTC midnight is two visitors, one per day, kept or not.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Past_days_add_up_kept_numbers_and_a_late_event_is_counted(bool strict)
    {
        var (host, clock) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        var daily = host.App.Services.GetRequiredService<Analytics.QueryService.Query.QueryEngine>().DailyRows!;
        string steps = $$"""  "steps": ["Home", "Product", "Signup", "Pro purchase"], "window_seconds": {{Window}}{{(strict ? ", \"order\": \"strict\"" : "")}}  """;
        var day = T0.UtcDateTime.Date;
        var late = new List<Sent>();
        long[] Expect(int fromDay, int toDay) => Expected(Steps, strict, day.AddDays(fromDay), day.AddDays(toDay), traffic: Traffic.Concat(late));
        string Dates(int fromDay, int lastDay) => $"""["{day.AddDays(fromDay):yyyy-MM-dd}", "{day.AddDays(lastDay):yyyy-MM-dd}"]""";

        var writes = host.App.Services.GetRequiredService<Analytics.Store.SiteDayWrites>();
        DateTime[] days = [day.AddDays(-1), day, day.AddDays(1)];
        await RoundsEndedAsync(host, days);
        clock.Now = T0.AddDays(3);
        AssertSteps(Expect(0, 1), await FunnelAsync(host, steps, Dates(0, 0)));
        long read = daily.DaysRead, kept = daily.DaysKept;
        AssertSteps(Expect(0, 1), await FunnelAsync(host, steps, Dates(0, 0)));
        Assert.Equal((read, kept + 1), (daily.DaysRead, daily.DaysKept));
        // The day before and the day after are read in one statement whose span holds the kept day.
        AssertSteps(Expect(-1, 2), await FunnelAsync(host, steps, Dates(-1, 1)));
        Assert.Equal((read + 2, kept + 2), (daily.DaysRead, daily.DaysKept));

        // Late events: a whole chain on the kept day, and one across midnight into the next day.
        late.AddRange([
            new("v20", 3600 * 8, "/"), new("v20", 3600 * 8 + 10, "/product/late"), new("v20", 3600 * 8 + 20, "signup"),
            new("v21", 3600 * 12 - 10, "/"), new("v21", 3600 * 12 + 10, "/product/midnight"), new("v21", 3600 * 12 + 20, "signup"),
        ]);
        await SendLateAsync(host, clock, late, Traffic.Length + late.Count, T0.AddDays(3), days);
        var withLate = Expect(-1, 2);
        Assert.NotEqual(Expected(Steps, strict, day.AddDays(-1), day.AddDays(2)), withLate);
        // v21's home and product are on two days: two visitors, neither reaching step 2 by it.
        Assert.Equal(Expected(Steps, strict, day.AddDays(-1), day.AddDays(2))[1] + 1, withLate[1]);
        AssertSteps(withLate, await FunnelAsync(host, steps, Dates(-1, 1)));
        AssertSteps(withLate, await FunnelAsync(host, steps, Dates(-1, 1)));

        // A generation not active (as reprocessing writes one before it activates it): other
        // visitors' copies of the kept day's events, announced, so the day is read again with
        // the active generations written into the statement. They are not counted.
        (ulong, ulong, DateOnly)[] written = [((ulong)host.Site.MerchantId, (ulong)host.Site.SiteId, DateOnly.FromDateTime(day))];
        writes.Begin(host.Database, written);
        await host.App.Services.GetRequiredService<Analytics.Store.IColumnStore>().ExecuteAsync(
            $"INSERT INTO {host.Database}.events_enriched SELECT * REPLACE (visitor_id + 1000000 AS visitor_id, 999 AS generation) FROM {host.Database}.events_enriched " +
            $"WHERE merchant_id = {host.Site.MerchantId} AND site_id = {host.Site.SiteId} AND toDate(received_at) = '{day:yyyy-MM-dd}'", Ct);
        writes.End(host.Database, written);
        read = daily.DaysRead;
        AssertSteps(withLate, await FunnelAsync(host, steps, Dates(-1, 1)));
        Assert.Equal(read + 1, daily.DaysRead);
    }

    /// <summary>
    /// A large site's day (on a busy site, today after each round) is kept per visitor
    /// (KeptFunnelVisitors): after a Rollup round only the events it wrote are read (their
    /// write_version), and only their visitors' levels change. Each answer equals the definition's
    /// over every event: a visitor reaching a further step, a new visitor, an event landing between
    /// a visitor's older ones (strict: a chain made and one broken), a round that changes no level.
    /// With an event filter the round's events are read through it too: a left-out /about
    /// pageview between two steps then breaks no strict chain.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task A_large_sites_day_is_kept_per_visitor_and_a_round_reads_only_its_events(bool strict, bool filtered)
    {
        var (host, clock) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        ReadAsLargeSite(host, true);
        var kept = host.App.Services.GetRequiredService<Analytics.QueryService.Query.QueryEngine>().KeptFunnelVisitors!;
        string steps = $$"""  "steps": ["Home", "Product", "Signup", "Pro purchase"], "window_seconds": {{Window}}{{(strict ? ", \"order\": \"strict\"" : "")}}{{(filtered ? ", \"filters\": [[\"is_not\", \"page\", [\"/about\"]]]" : "")}}  """;
        var day = T0.UtcDateTime.Date;
        string today = $"""["{day:yyyy-MM-dd}", "{day:yyyy-MM-dd}"]""";
        var late = new List<Sent>();
        long[] Expect() => Expected(Steps, strict, day, day.AddDays(1), filtered ? e => e.What != "/about" : null, Traffic.Concat(late));
        async Task SendAsync(params Sent[] round)
        {
            late.AddRange(round);
            await SendLateAsync(host, clock, round, Traffic.Length + late.Count, T0.AddHours(2), day);
        }

        await SendAsync(new Sent("v30", 300, "/about")); // the traffic's rounds ended, and one more
        AssertSteps(Expect(), await FunnelAsync(host, steps, today));
        Assert.Equal((1, 0), (kept.DaysRead, kept.DaysUpdated));
        AssertSteps(Expect(), await FunnelAsync(host, steps, today)); // no round since: the day's numbers kept
        Assert.Equal((1, 0), (kept.DaysRead, kept.DaysUpdated));

        Sent[][] rounds =
        [
            // v2's product now within the window of its home; a new visitor's chain, an /about
            // pageview after its home (strict: the chain stops at 1, unless the filter leaves it out)
            [new("v2", 100, "/product/b"), new("v31", 400, "/"), new("v31", 405, "/about"), new("v31", 410, "/product/n"), new("v31", 420, "signup")],
            // between older events: v5's product right after its home (strict: a chain to step 2),
            // v1's free purchase between its signup and pro purchase (strict: the chain stops at 3)
            [new("v5", 5, "/product/q"), new("v1", 130, "purchase", "free")],
            // an event after v6's chain, completing no step: no level changes
            [new("v6", 30, "download")],
        ];
        var answers = new List<long[]> { Expect() };
        foreach (var round in rounds)
        {
            await SendAsync(round);
            AssertSteps(Expect(), await FunnelAsync(host, steps, today));
            answers.Add(Expect());
        }
        Assert.Equal((1, rounds.Length), (kept.DaysRead, kept.DaysUpdated));
        // The rounds changed the answer (both orders), and the read of the whole day agrees.
        Assert.NotEqual(answers[0], answers[^1]);
        ReadAsLargeSite(host, false);
        AssertSteps(Expect(), await FunnelAsync(host, steps, $"""["{day:yyyy-MM-dd}T00:00:00Z", "{day:yyyy-MM-dd}T23:59:59Z"]"""));
    }

    // The goals of the goal questions below, written by hand from their documented meaning, as the steps are.
    private static readonly (string Name, Func<Sent, bool> Completes)[] Goals =
    [
        Steps[0], OverlappingSteps[0], Steps[1], Steps[2], ("Never", e => e.Name == "never-sent"),
    ];

    /// <summary>
    /// A large site's day of a goal question (on a busy site, today after each round) is kept per
    /// goal (KeptGoalVisitors): after a Rollup round only the events it wrote are read. Each answer,
    /// by goal and for a goal filter naming overlapping goals ("/" completes both Home and Any
    /// page: one conversion), equals the definition's over every event: a visitor's first
    /// conversion of a goal, a new visitor, a visitor converting again (a conversion, not a
    /// visitor), a round completing no goal.
    /// </summary>
    [Fact]
    public async Task A_large_sites_goal_conversions_are_kept_per_goal_and_a_round_reads_only_its_events()
    {
        var (host, clock) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        ReadAsLargeSite(host, true);
        var kept = host.App.Services.GetRequiredService<Analytics.QueryService.Query.QueryEngine>().KeptGoalVisitors!;
        // A goal with a property match sends the goal dimension to the scan (the rollup holds no properties).
        var (_, listed) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Get, $"/v1/sites/{host.Site.PublicId}/goals");
        long pro = listed.EnumerateArray().Single(g => g.GetProperty("name").GetString() == "Pro purchase").GetProperty("id").GetInt64();
        Assert.Equal(HttpStatusCode.NoContent, (await GoalApiTests.SendAsync(host.Http, HttpMethod.Delete, $"/v1/sites/{host.Site.PublicId}/goals/{pro}")).Status);

        var day = T0.UtcDateTime.Date;
        var late = new List<Sent>();
        string today = $"""["{day:yyyy-MM-dd}", "{day:yyyy-MM-dd}"]""";
        string byGoal = $$"""{"site_id": "{{host.Site.PublicId}}", "date_range": {{today}}, "metrics": ["visitors", "conversions", "pageviews", "events", "conversion_rate"], "dimensions": ["goal"]}""";
        string filtered = $$"""{"site_id": "{{host.Site.PublicId}}", "date_range": {{today}}, "metrics": ["visitors", "conversions", "pageviews"], "filters": [["is", "goal", ["Any page", "Home", "Signup"]]]}""";
        async Task AssertAnswersAsync(string range = "")
        {
            // People only, the day's events: per goal its visitors, conversions and pageviews.
            var events = Traffic.Concat(late).Where(e => e.Visitor != Bot).ToList();
            long all = events.Select(e => e.Visitor).Distinct().Count();
            (long Visitors, long Conversions, long Pageviews) Of(Func<Sent, bool> completes) =>
                (events.Where(completes).Select(e => e.Visitor).Distinct().Count(), events.Count(completes), events.Count(e => completes(e) && e.IsPageview));
            var expected = Goals.Select(g => (g.Name, Of(g.Completes))).Where(g => g.Item2.Visitors > 0).OrderBy(g => g.Name, StringComparer.Ordinal).ToList();
            var answer = await QueryAsync(host, range.Length == 0 ? byGoal : byGoal.Replace(today, range, StringComparison.Ordinal));
            var rows = answer.GetProperty("results").EnumerateArray().Select(r => (Name: r.GetProperty("dimensions")[0].GetString()!, M: r.GetProperty("metrics")))
                .OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
            Assert.Equal(expected.Select(g => g.Name), rows.Select(r => r.Name));
            foreach (var ((_, (visitors, conversions, pageviews)), (name, m)) in expected.Zip(rows))
            {
                Assert.True((visitors, conversions, pageviews, conversions) == (m[0].GetInt64(), m[1].GetInt64(), m[2].GetInt64(), m[3].GetInt64()),
                    $"{name}: expected {(visitors, conversions, pageviews)}, got {m}");
                Assert.Equal(100.0 * visitors / all, m[4].GetDouble(), 0.05);
            }
            var union = Of(e => Goals.Where(g => g.Name is "Any page" or "Home" or "Signup").Any(g => g.Completes(e)));
            var one = (await QueryAsync(host, range.Length == 0 ? filtered : filtered.Replace(today, range, StringComparison.Ordinal))).GetProperty("results")[0].GetProperty("metrics");
            Assert.Equal(union, (one[0].GetInt64(), one[1].GetInt64(), one[2].GetInt64()));
        }
        async Task SendAsync(params Sent[] round)
        {
            late.AddRange(round);
            await SendLateAsync(host, clock, round, Traffic.Length + late.Count, T0.AddHours(2), day);
        }

        await SendAsync(new Sent("v30", 300, "/about")); // the traffic's rounds ended, and one more
        await AssertAnswersAsync();
        Assert.Equal((2, 0), (kept.DaysRead, kept.DaysUpdated)); // the two questions: a day kept each
        await AssertAnswersAsync(); // no round since: the days kept
        Assert.Equal((2, 0), (kept.DaysRead, kept.DaysUpdated));

        Sent[][] rounds =
        [
            // v12's first pageview (its first conversion of Home and Any page); a new visitor's home and signup
            [new("v12", 100, "/"), new("v31", 400, "/"), new("v31", 420, "signup")],
            // v1 converts again: conversions, not visitors; a product page of v2 (Product, not Any page)
            [new("v1", 500, "/"), new("v1", 510, "signup"), new("v2", 520, "/product/b")],
            // completing no goal, and an engagement ping
            [new("v6", 530, "download"), new("v6", 540, "engagement")],
        ];
        foreach (var round in rounds)
        {
            await SendAsync(round);
            await AssertAnswersAsync();
        }
        Assert.Equal((2, 2 * rounds.Length), (kept.DaysRead, kept.DaysUpdated));
        // The day read by the scan (not whole UTC days: no plan) agrees.
        ReadAsLargeSite(host, false);
        await AssertAnswersAsync($"""["{day:yyyy-MM-dd}T00:00:00Z", "{day:yyyy-MM-dd}T23:59:59Z"]""");
        Assert.Equal((2, 2 * rounds.Length), (kept.DaysRead, kept.DaysUpdated));
    }

    private static async Task<JsonElement> QueryAsync(TestHost host, string json)
    {
        var (status, body) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, "/v1/query", json);
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        return body;
    }

    [Fact]
    public async Task A_step_nobody_reaches_answers_zero_and_errors_name_their_field()
    {
        var (host, _) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        var answer = await FunnelAsync(host, $$"""  "steps": ["Home", "Product", "Never"], "window_seconds": {{Window}}  """);
        var visitors = answer.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("visitors").GetInt64()).ToList();
        Assert.Equal(0, visitors[2]);
        var never = answer.GetProperty("steps")[2];
        Assert.Equal((0.0, visitors[1], 100.0), (never.GetProperty("conversion_rate").GetDouble(), never.GetProperty("drop_off").GetInt64(), never.GetProperty("drop_off_rate").GetDouble()));

        // Filters select events as in POST /v1/query: without the /about pageviews, v5's chain is
        // no longer broken for strict.
        var filtered = await FunnelAsync(host, $$"""  "steps": ["Home", "Product", "Signup", "Pro purchase"], "window_seconds": {{Window}}, "order": "strict", "filters": [["is_not", "page", ["/about"]]]  """);
        var withoutAbout = Expected(strict: true, T0, T0.AddHours(1), e => e.What != "/about");
        Assert.NotEqual(Expected(strict: true), withoutAbout);
        AssertSteps(withoutAbout, filtered);

        foreach (var (json, field) in new[]
        {
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "steps": ["Home", "Product"], "filters": [["is", "nope", ["x"]]]}""", "filters[0][1]"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "steps": ["Home", "Product"], "filters": [["matches", "page", ["(unclosed"]]]}""", "filters[0][2][0]"),
            ("""{"date_range": "7d", "steps": ["Home", "Product"]}""", "site_id"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "steps": ["Home", "Product"]}""", "date_range"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "fortnight", "steps": ["Home", "Product"]}""", "date_range"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": ["2026-01-02", "2026-01-01"], "steps": ["Home", "Product"]}""", "date_range"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "timezone": "Mars/Olympus", "steps": ["Home", "Product"]}""", "timezone"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "steps": ["Home"]}""", "steps"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "steps": ["Home", "Nope"]}""", "steps[1]"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "steps": ["Home", "Product"], "window_seconds": 2592001}""", "window_seconds"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "funnel_id": 1, "steps": ["Home", "Product"]}""", "funnel_id"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d"}""", "steps"),
            ($$"""{"site_id": "{{host.Site.PublicId}}", "date_range": "7d", "steps": ["Home", "Product"], "segment": 1}""", "segment"),
        })
        {
            var (status, problem) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, "/v1/funnel", json);
            Assert.True(status == HttpStatusCode.BadRequest, $"{json}: {(int)status} {problem}");
            Assert.Equal(field, problem.GetProperty("field").GetString());
        }
    }

    [Fact]
    public async Task Another_merchants_funnel_and_site_answer_404()
    {
        var (host, _) = await StartWithTrafficAsync(engine);
        await using var owned = host;
        var store = host.App.Services.GetRequiredService<Analytics.ControlPlane.SiteRegistry>().Store;
        var other = store.CreateSite(store.CreateMerchant("Other").Id, "other.example");
        var g1 = store.CreateGoal(other.SiteId, "Home", "page", "/");
        var g2 = store.CreateGoal(other.SiteId, "Product", "page", "/product/*");
        var theirs = store.CreateFunnel(other.SiteId, "Theirs", [g1.Id, g2.Id]);

        var (status, _) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, "/v1/funnel",
            $$"""{"site_id": "{{host.Site.PublicId}}", "date_range": {{Range}}, "funnel_id": {{theirs.Id}}}""");
        Assert.Equal(HttpStatusCode.NotFound, status);
        (status, _) = await GoalApiTests.SendAsync(host.Http, HttpMethod.Post, "/v1/funnel",
            $$"""{"site_id": "{{other.PublicId}}", "date_range": {{Range}}, "steps": ["Home", "Product"]}""");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal(HttpStatusCode.NotFound, (await GoalApiTests.SendAsync(host.Http, HttpMethod.Get, $"/v1/sites/{other.PublicId}/funnels")).Status);
    }
}
