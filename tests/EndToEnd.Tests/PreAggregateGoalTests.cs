using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json.Nodes;
using Analytics.ControlPlane;
using Analytics.Contracts.Internal;
using Analytics.EventLog;
using Analytics.QueryService.PreAggregates;
using Analytics.QueryService.Query;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Goal conversions and revenue per currency from the dimension rollup are exactly what the scan
/// of enriched events answers and what the documented definitions give. Events of three UTC days
/// (visits with pageviews on /blog/* and other paths, custom events on blog paths without a
/// pageview there, signups with a plan property, purchases with revenue in EUR and USD, bots with
/// revenue) go through the real log and the real Rollup in small rounds. Expected numbers come
/// from LINQ over the generated events (docs/query-api.md, "Metrics" and "Goals"); the same
/// queries through QueryEngine with and without the planner give the same JSON.
/// </summary>
public class PreAggregateGoalTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const ulong Merchant = 8, Site = 80, OldSite = 81;
    private static readonly DateTimeOffset Day0 = new(2026, 4, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Created = Day0.AddDays(-10);

    private static readonly Goal Blog = new(1, (long)Site, "Blog", GoalKinds.Page, "/blog/*", Created);
    private static readonly Goal Signup = new(2, (long)Site, "Signup", GoalKinds.Event, "signup", Created);
    private static readonly Goal Purchase = new(3, (long)Site, "Purchase", GoalKinds.Event, "purchase", Created);
    private static readonly Goal ProSignup = new(4, (long)Site, "Pro signup", GoalKinds.Event, "signup", Created) { Property = new("plan", "pro") };
    private static readonly Goal EuroPurchase = new(5, (long)Site, "Euro purchase", GoalKinds.Event, "purchase", Created) { Currency = "EUR" };
    private static readonly Goal[] Planned = [Blog, Signup, Purchase];

    private static readonly string[] Pages = ["/", "/blog", "/blog/a", "/blog/b", "/blog/a/deep", "/pricing"];
    private static readonly (string Referrer, string Source)[] Referrers =
        [("", "Direct / None"), ("https://www.google.com/", "Google"), ("https://www.bing.com/search?q=shoes", "Bing")];
    private const string Bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    /// <summary>One generated event and what the generator knows: bot or person, its visit's source.</summary>
    private sealed record Generated(StoredEvent Event, bool IsBot, string Path, string Source);

    /// <summary>The contract's goal definitions over one generated event (docs/query-api.md, "Goals").</summary>
    private static bool Completes(Goal goal, Generated g)
    {
        var e = g.Event;
        bool match = goal.Kind == GoalKinds.Page
            // "/blog/*": /blog/ followed by a run of characters without '/'.
            ? e.Name == "pageview" && g.Path.StartsWith("/blog/", StringComparison.Ordinal) && !g.Path[6..].Contains('/')
            : e.Name == goal.Match;
        string prop(string key) => e.Props.FirstOrDefault(p => p.Key == key)?.Value ?? "";
        return match && (goal.Property is null || prop(goal.Property.Key) == goal.Property.Value) && (goal.Currency is null || e.Currency == goal.Currency);
    }

    private static string Day(Generated g) => DateTimeOffset.FromUnixTimeMilliseconds(g.Event.ReceivedMs).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static List<Generated> People(List<Generated> all, ulong site) => all.Where(g => !g.IsBot && g.Event.SiteId == site).ToList();

    private static string Rate(int part, int whole) =>
        (whole == 0 ? 0m : Math.Round(part * 100m / whole, 1, MidpointRounding.AwayFromZero)).ToString("0.##", CultureInfo.InvariantCulture);

    [Fact]
    public async Task Conversions_and_rates_of_a_wildcard_path_goal_and_event_goals_by_day_come_from_the_rollup_and_equal_LINQ_and_the_scan()
    {
        var (db, events) = await RolledUpAsync();
        var q = Query(Site, ["visitors", "conversions", "conversion_rate", "group_conversion_rate", "events"], ["time:day", "goal"]);
        Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is not null, $"the planner fell back: {reason}");

        var people = People(events, Site);
        int total = people.Select(g => g.Event.VisitorId).Distinct().Count();
        var expected = people.GroupBy(Day).SelectMany(day => Planned.Select(goal =>
        {
            var converted = day.Where(g => Completes(goal, g)).ToList();
            int visitors = converted.Select(g => g.Event.VisitorId).Distinct().Count();
            int dayVisitors = day.Select(g => g.Event.VisitorId).Distinct().Count();
            return (converted.Count, Line: $"{day.Key} | {goal.Name} => {visitors}, {converted.Count}, {Rate(visitors, total)}, {Rate(visitors, dayVisitors)}, {converted.Count}");
        })).Where(x => x.Count > 0).Select(x => x.Line).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(9, expected.Count);

        var answer = await AnswerBothWaysAsync(db, q);
        Assert.Equal(expected, Lines(answer));
        // The page goal's visitors are those with a pageview on a matching path, fewer than
        // everyone with an event there (the generator's blog shares come without one).
        Assert.True(people.Where(g => g.Path is "/blog/a" or "/blog/b").Select(g => g.Event.VisitorId).Distinct().Count()
            > people.Where(g => Completes(Blog, g)).Select(g => g.Event.VisitorId).Distinct().Count());

        // A rebuilt site-day (new generation, old rows deleted) answers the same.
        await RebuildAsync(db, Site, Day0.AddDays(1));
        Assert.Equal(expected, Lines(await AnswerBothWaysAsync(db, q)));
    }

    public static IEnumerable<TheoryDataRow<string>> GoalNames() => [new("Blog"), new("Signup")];

    [Theory]
    [MemberData(nameof(GoalNames))]
    public async Task Conversion_rates_of_a_goal_by_source_equal_LINQ_through_the_scan_with_planned_denominators(string goalName)
    {
        var (db, events) = await RolledUpAsync();
        var goal = Planned.Single(g => g.Name == goalName);
        var filter = new FilterLeaf("is", QueryVocabulary.ParseDimension("goal")!, [goalName], true, "filters[0]");
        var q = Query(Site, ["visitors", "conversions", "conversion_rate", "group_conversion_rate"], ["source"], filter);
        Assert.Null(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason));
        Assert.Contains("cross tab", reason, StringComparison.Ordinal);
        // The denominators (visitors by source, all visitors) are planned.
        Assert.NotNull(NormalQueryPlanner.TryPlanRaw(q with { Metrics = ["visitors"], Filter = null }, db, 10, out _));

        var people = People(events, Site);
        int total = people.Select(g => g.Event.VisitorId).Distinct().Count();
        var expected = people.GroupBy(g => g.Source).Select(source =>
        {
            var converted = source.Where(g => Completes(goal, g)).ToList();
            int visitors = converted.Select(g => g.Event.VisitorId).Distinct().Count();
            return (converted.Count, Line: $"{source.Key} => {visitors}, {converted.Count}, {Rate(visitors, total)}, {Rate(visitors, source.Select(g => g.Event.VisitorId).Distinct().Count())}");
        }).Where(x => x.Count > 0).Select(x => x.Line).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(3, expected.Count);
        Assert.Equal(expected, Lines(await AnswerBothWaysAsync(db, q)));
    }

    public static IEnumerable<TheoryDataRow<string>> RevenueDimensions() => [new(""), new("time:day"), new("source"), new("event")];

    [Theory]
    [MemberData(nameof(RevenueDimensions))]
    public async Task Revenue_per_currency_comes_from_the_rollup_and_equals_LINQ_and_the_scan(string dimension)
    {
        var (db, events) = await RolledUpAsync();
        string[] dims = dimension.Length == 0 ? [] : [dimension];
        var q = Query(Site, ["total_revenue", "average_revenue", "visitors"], dims);
        Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is not null, $"the planner fell back: {reason}");

        Func<Generated, string> key = dimension switch
        {
            "" => _ => "",
            "time:day" => Day,
            "source" => g => g.Source,
            _ => g => g.Event.Name,
        };
        var expected = People(events, Site).GroupBy(key).Select(row => (dimension.Length == 0 ? "" : row.Key + " => ") + Money(row) + $", {row.Select(g => g.Event.VisitorId).Distinct().Count()}")
            .Order(StringComparer.Ordinal).ToList();
        Assert.Contains(expected, l => l.Contains("EUR", StringComparison.Ordinal) && l.Contains("USD", StringComparison.Ordinal));
        var answer = await AnswerBothWaysAsync(db, q);
        Assert.Equal(expected, Lines(answer));

        await RebuildAsync(db, Site, Day0.AddDays(2));
        Assert.Equal(expected, Lines(await AnswerBothWaysAsync(db, q)));
    }

    [Fact]
    public async Task Revenue_of_an_event_goal_by_day_comes_from_the_rollup_and_equals_LINQ_and_the_scan()
    {
        var (db, events) = await RolledUpAsync();
        var filter = new FilterLeaf("is", QueryVocabulary.ParseDimension("goal")!, ["Purchase"], true, "filters[0]");
        var q = Query(Site, ["conversions", "total_revenue", "average_revenue", "visitors"], ["time:day"], filter);
        Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is not null, $"the planner fell back: {reason}");
        var expected = People(events, Site).Where(g => Completes(Purchase, g)).GroupBy(Day)
            .Select(day => $"{day.Key} => {day.Count()}, {Money(day)}, {day.Select(g => g.Event.VisitorId).Distinct().Count()}").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(3, expected.Count);
        Assert.Equal(expected, Lines(await AnswerBothWaysAsync(db, q)));
    }

    /// <summary>total_revenue and average_revenue per currency as the contract defines them:
    /// units of the people's non-zero revenue, and that over the number of such events.</summary>
    private static string Money(IEnumerable<Generated> events)
    {
        var paying = events.Where(g => g.Event.RevenueMicros != 0).GroupBy(g => g.Event.Currency).OrderBy(c => c.Key, StringComparer.Ordinal).ToList();
        string total = string.Join(";", paying.Select(c => $"{c.Key}:{c.Sum(g => g.Event.RevenueMicros) / 1_000_000m:0.######}"));
        string average = string.Join(";", paying.Select(c => $"{c.Key}:{Math.Round(c.Sum(g => g.Event.RevenueMicros) / 1_000_000m / c.Count(), 2, MidpointRounding.AwayFromZero):0.######}"));
        return $"{{{total}}}, {{{average}}}";
    }

    [Fact]
    public async Task Rollup_rows_written_before_migration_012_are_answered_by_the_scan_never_as_zero()
    {
        var (db, events) = await RolledUpAsync();
        // Rewrite one site-day's rollup rows as Rollup wrote them before 012 (no revenue, no
        // pageview visitors, written_012 left at its default 0).
        string day = Day0.AddDays(1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        const string old = "merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation";
        string rows = $"merchant_id = {Merchant} AND site_id = {OldSite} AND bucket = '{day}'";
        string copy = "old_" + Guid.NewGuid().ToString("N")[..8];
        await engine.Store.ExecuteAsync($"CREATE TABLE {db}.{copy} ENGINE = Memory AS SELECT {old} FROM {db}.rollup_dims_day WHERE {rows}", Ct);
        await engine.Store.ExecuteAsync($"DELETE FROM {db}.rollup_dims_day WHERE {rows}", Ct);
        await engine.Store.ExecuteAsync($"INSERT INTO {db}.rollup_dims_day ({old}) SELECT {old} FROM {db}.{copy}", Ct);

        var people = People(events, OldSite);
        var revenue = Query(OldSite, ["total_revenue", "average_revenue"], ["time:day"]);
        var blog = Query(OldSite, ["visitors", "conversions"], ["time:day", "goal"]);
        foreach (var q in new[] { revenue, blog })
        {
            // The plan runs, but its marker says a row summed lacks the columns: the engine scans.
            var planned = NormalQueryPlanner.TryPlanRaw(q, db, 10, out _)!;
            Assert.False(GoalRevenuePlanner.Complete(await engine.Store.QueryRowsAsync(planned, Ct), q.Dimensions.Count, QuerySql.RawColumns.Length));
        }
        var expectedRevenue = people.GroupBy(Day).Select(d => $"{d.Key} => {Money(d)}").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedRevenue, Lines(await AnswerBothWaysAsync(db, revenue, kept: false)));
        var expectedBlog = people.GroupBy(Day).SelectMany(d => Planned.Select(goal => (goal, converted: d.Where(g => Completes(goal, g)).ToList()))
            .Where(x => x.converted.Count > 0)
            .Select(x => $"{d.Key} | {x.goal.Name} => {x.converted.Select(g => g.Event.VisitorId).Distinct().Count()}, {x.converted.Count}")).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expectedBlog, Lines(await AnswerBothWaysAsync(db, blog, kept: false)));

        // Reprocessing the site-day writes its rows anew, with the columns: planned again.
        await RebuildAsync(db, OldSite, Day0.AddDays(1));
        Assert.True(GoalRevenuePlanner.Complete(await engine.Store.QueryRowsAsync(NormalQueryPlanner.TryPlanRaw(revenue, db, 10, out _)!, Ct), 1, QuerySql.RawColumns.Length));
        Assert.Equal(expectedRevenue, Lines(await AnswerBothWaysAsync(db, revenue)));
    }

    [Fact]
    public void Goal_queries_the_rollup_cannot_answer_exactly_fall_back_with_a_reason()
    {
        var goal = QueryVocabulary.ParseDimension("goal")!;
        FilterLeaf Is(string dimension, string value, string op = "is") => new(op, QueryVocabulary.ParseDimension(dimension)!, [value], true, "filters[0]");
        var basis = Query(Site, ["conversions"], ["goal"]);
        var cases = new Dictionary<string, (NormalQuery Query, string Reason)>
        {
            ["a property-match goal"] = (basis with { Goals = [.. Planned, ProSignup] }, "property match"),
            ["a revenue goal"] = (basis with { Goals = [.. Planned, EuroPurchase] }, "revenue goal"),
            ["a filter naming a property-match goal"] = (basis with { Dimensions = [], Filter = Is("goal", "Pro signup"), Goals = [.. Planned, ProSignup] }, "property match"),
            ["goal by country"] = (basis with { Dimensions = [goal, QueryVocabulary.ParseDimension("country")!] }, "cross tab"),
            ["goal and a country filter"] = (basis with { Filter = new FilterAnd([Is("country", "DE"), Is("goal", "Blog")]), Dimensions = [] }, "another dimension"),
            ["goal is_not"] = (basis with { Dimensions = [], Filter = Is("goal", "Blog", "is_not") }, "is_not"),
            ["revenue of a page goal"] = (basis with { Metrics = ["total_revenue"] }, "page goal"),
            ["hours"] = (basis with { Dimensions = [goal, QueryVocabulary.ParseDimension("time:hour")!] }, "UTC days"),
            ["visits"] = (basis with { Metrics = ["visits"] }, "metric visits"),
        };
        foreach (var (name, (q, why)) in cases)
        {
            Assert.True(NormalQueryPlanner.TryPlanRaw(q, "db", 10, out var reason) is null, $"{name}: planned");
            Assert.Contains(why, reason, StringComparison.Ordinal);
        }
    }

    private static NormalQuery Query(ulong site, string[] metrics, string[] dimensions, Filter? filter = null) => new(
        (long)Merchant, (long)site, "site", Day0, Day0.AddDays(3), TimeZoneInfo.Utc, metrics,
        dimensions.Select(d => QueryVocabulary.ParseDimension(d)!).ToList(), filter, [new(metrics[0], true)], 10_000, 0, TimeLabels: false, null, Planned, "custom");

    /// <summary>QueryEngine's answer with the planner, checked equal (as JSON) to its answer
    /// without it, and to its answers with each past day's numbers kept (DailyRowsCache: the
    /// first reads the days by the planner's statement grouped by day and keeps them, the second
    /// adds the kept days up), as a small and as a large site.</summary>
    /// <param name="kept">Whether days are kept: not from rows that send the question to the scan.</param>
    private async Task<JsonObject> AnswerBothWaysAsync(string db, NormalQuery q, bool kept = true)
    {
        var planned = await new QueryEngine(engine.Store, db).AnswerAsync(q, Ct);
        var scanned = await new QueryEngine(engine.Store, db) { UsePreAggregates = false }.AnswerAsync(q, Ct);
        Assert.Equal(scanned.ToJsonString(), planned.ToJsonString());
        foreach (long largeFrom in new long[] { long.MaxValue, 0 })
        {
            var keeping = new QueryEngine(engine.Store, db)
            {
                LargeSiteFromVisits = largeFrom, GenerationActivations = new GenerationActivations(), SiteDayWrites = new SiteDayWrites(),
            };
            Assert.Equal(scanned.ToJsonString(), (await keeping.AnswerAsync(q, Ct)).ToJsonString());
            Assert.Equal(scanned.ToJsonString(), (await keeping.AnswerAsync(q, Ct)).ToJsonString());
            Assert.Equal(kept, keeping.DailyRows!.DaysKept > 0);
        }
        return planned;
    }

    /// <summary>Each result row as "dimensions => metrics" (revenue as {CUR:units;…}), sorted; the
    /// answer as a client reads it (parsed JSON).</summary>
    private static List<string> Lines(JsonObject answer) => JsonNode.Parse(answer.ToJsonString())!["results"]!.AsArray().Select(r =>
    {
        var dims = r!["dimensions"]!.AsArray().Select(d => d!.GetValue<string>()).ToList();
        var metrics = r["metrics"]!.AsArray().Select(m => m is JsonObject money
            ? "{" + string.Join(";", money.Select(kv => $"{kv.Key}:{kv.Value!.GetValue<decimal>():0.######}")) + "}"
            : m!.GetValue<decimal>().ToString("0.##", CultureInfo.InvariantCulture));
        return (dims.Count == 0 ? "" : string.Join(" | ", dims) + " => ") + string.Join(", ", metrics);
    }).Order(StringComparer.Ordinal).ToList();

    private static readonly SemaphoreSlim s_once = new(1, 1);
    private static (string Db, List<Generated> Events)? s_rolledUp;

    /// <summary>The generated events stored by the real Rollup, once for the class.</summary>
    private async Task<(string Db, List<Generated> Events)> RolledUpAsync()
    {
        await s_once.WaitAsync(Ct);
        try
        {
            if (s_rolledUp is { } done) return done;
            string db = "goals_" + Guid.NewGuid().ToString("N")[..12];
            string dir = Path.Combine(Path.GetTempPath(), db);
            await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
            var events = Generate();
            try
            {
                await using var log = LocalLog.Open(Path.Combine(dir, "log"));
                foreach (var chunk in events.Chunk(83)) await AppendAsync(log, chunk.Select(g => g.Event));
                var status = new RollupStatus();
                var options = new RollupOptions { Database = db, QuarantineDirectory = Path.Combine(dir, "quarantine"), MaxBatchRecords = 200, MaxWait = TimeSpan.FromMilliseconds(20), MinRoundInterval = TimeSpan.Zero };
                using var worker = new RollupWorker(log, engine.Store, options, new ProcessingLogic(engine.Enrichment), status,
                    new ReprocessQueue(Path.Combine(dir, "jobs")), NullLogger<RollupWorker>.Instance);
                await worker.StartAsync(Ct);
                var deadline = DateTime.UtcNow.AddSeconds(90);
                while (status.EventsStored < events.Count && DateTime.UtcNow < deadline) await Task.Delay(50, Ct);
                await worker.StopAsync(CancellationToken.None);
                Assert.Equal(events.Count, status.EventsStored);
            }
            finally
            {
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
            }
            s_rolledUp = (db, events);
            return (db, events);
        }
        finally
        {
            s_once.Release();
        }
    }

    private async Task RebuildAsync(string db, ulong site, DateTimeOffset day)
    {
        var rebuilder = new SiteDayRebuilder(engine.Store, db, new Generations(engine.Store, db), new ProcessingLogic(engine.Enrichment));
        await rebuilder.RebuildAsync(Merchant, site, DateOnly.FromDateTime(day.UtcDateTime), ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
    }

    private static async Task AppendAsync(IEventLog log, IEnumerable<StoredEvent> events)
    {
        using var buffer = new MemoryStream();
        int count = 0;
        Span<byte> length = stackalloc byte[4];
        foreach (var bytes in events.Select(e => e.ToByteArray()))
        {
            BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
            buffer.Write(length);
            buffer.Write(bytes);
            count++;
        }
        await log.AppendAsync(Merchant, buffer.ToArray(), count, Ct);
    }

    /// <summary>
    /// Three UTC days of two sites: per day 40 people with 1-2 visits 40+ minutes apart, each of
    /// 1-6 events under 10 minutes apart starting with a pageview: pageviews of six paths (three
    /// match /blog/*), engagement pings, `share` events on blog paths (no pageview needed),
    /// signups with plan pro or free, purchases with revenue in EUR or USD (a few without
    /// revenue); a bot with pageviews and a purchase. Visitor ids are per day.
    /// </summary>
    private static List<Generated> Generate()
    {
        var random = new Random(20261201);
        var events = new List<Generated>();
        foreach (ulong site in new[] { Site, OldSite })
        {
            for (int day = 0; day < 3; day++)
            {
                for (int person = 0; person < 40; person++)
                {
                    ulong visitor = (ulong)random.NextInt64(1, long.MaxValue);
                    long t = Day0.AddDays(day).ToUnixTimeMilliseconds() + random.Next(0, 3600) * 1000L;
                    for (int v = random.Next(1, 3); v > 0; v--)
                    {
                        var (referrer, source) = Referrers[random.Next(Referrers.Length)];
                        for (int i = 0, n = random.Next(1, 7); i < n; i++)
                        {
                            string path = Pages[random.Next(Pages.Length)];
                            var e = Event(site, visitor, t, i == 0 ? "pageview" : random.Next(7) switch
                            {
                                0 => "engagement", 1 => "signup", 2 or 3 => "purchase", 4 => "share", _ => "pageview",
                            }, path, i == 0 ? referrer : "https://shop.example/", TestHost.BrowserUserAgent);
                            if (e.Name == "share") e.Url = "https://shop.example" + (path = random.Next(2) == 0 ? "/blog/a" : "/blog/b");
                            if (e.Name == "signup") e.Props.Add(new StoredProperty { Key = "plan", Value = random.Next(3) == 0 ? "pro" : "free" });
                            if (e.Name == "purchase" && random.Next(6) > 0)
                            {
                                e.Currency = random.Next(2) == 0 ? "EUR" : "USD";
                                e.RevenueMicros = random.Next(1, 20_000) * 10_000L + random.Next(0, 3) * 3_333L;
                            }
                            events.Add(new Generated(e, false, path, source));
                            t += random.Next(5, 600) * 1000L;
                        }
                        t += random.Next(40, 120) * 60_000L;
                    }
                }
                long crawl = Day0.AddDays(day).ToUnixTimeMilliseconds() + 7_200_000;
                for (int i = 0; i < Pages.Length; i++)
                    events.Add(new Generated(Event(site, 424242, crawl + i * 1000, "pageview", Pages[i], "", Bot), true, Pages[i], ""));
                var paid = Event(site, 424242, crawl + 10_000, "purchase", "/pricing", "", Bot);
                paid.Currency = "EUR";
                paid.RevenueMicros = 99_000_000;
                events.Add(new Generated(paid, true, "/pricing", ""));
            }
        }
        return events.OrderBy(g => g.Event.ReceivedMs).ToList();
    }

    private static StoredEvent Event(ulong site, ulong visitor, long receivedMs, string name, string path, string referrer, string userAgent) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        MerchantId = Merchant,
        SiteId = site,
        ReceivedMs = receivedMs,
        ClientTimeMs = receivedMs,
        Name = name,
        Url = "https://shop.example" + path,
        Referrer = referrer,
        ScreenWidth = 1280,
        VisitorId = visitor,
        IpPrefix = "81.2.69.0/24",
        UserAgent = userAgent,
    };
}
