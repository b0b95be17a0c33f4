using System.Globalization;
using System.Text.Json.Nodes;
using Analytics.ControlPlane;
using Analytics.Contracts.Internal;
using Analytics.QueryService.PreAggregates;
using Analytics.QueryService.Query;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// A database upgraded from schema 009 (before the day pre-aggregates) answers exactly: days
/// stored before migrations 010/011 are not in rollup_dims_day or rollup_visits_day, so the
/// planner scans them (or refuses them past the enriched horizon) until they are reprocessed,
/// then answers from the pre-aggregates with the same numbers. The old days are stored by the
/// real Rollup into a scratch database and copied with only the columns schema 009 had (what
/// Rollup wrote then: raw and enriched events, minute/hour/day rollups, event ids); the new
/// days go through the real log and the real Rollup after the upgrade. Expected numbers come
/// from LINQ over the generated events and the documented definitions (docs/query-api.md).
/// </summary>
public class PreAggregateUpgradeTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const ulong Merchant = 9, Site = 90, NewSite = 91;
    private const int OldDays = 3, Days = 6;
    private static readonly DateTimeOffset Day0 = new(2026, 5, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly string Schemas = Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse");

    private static readonly Goal Signup = new(1, (long)Site, "Signup", GoalKinds.Event, "signup", Day0.AddDays(-1));
    private static readonly Goal Cart = new(2, (long)Site, "Cart", GoalKinds.Page, "/cart", Day0.AddDays(-1));

    private static readonly string[] Pages = ["/", "/cart", "/shoes", "/about"];
    private static readonly string[] Countries = ["DE", "FR", "GB", "US"];

    /// <summary>One generated event: its day, visit (per generator) and path.</summary>
    private sealed record Generated(StoredEvent Event, int Day, int Visit, string Path);

    private static readonly Dictionary<string, (string[] Metrics, string[] Dimensions)> Questions = new()
    {
        ["visitors by country"] = (["visitors", "visits"], ["country"]),
        ["bounce rate by entry page"] = (["visitors", "visits", "bounce_rate"], ["entry_page"]),
        ["goal conversions"] = (["visitors", "conversions"], ["goal"]),
    };

    [Fact]
    public async Task Days_stored_before_the_pre_aggregates_existed_are_scanned_or_refused_until_reprocessed_then_answered_from_them_alike()
    {
        var events = Generate();
        string db = "upgrade_" + Guid.NewGuid().ToString("N")[..12];
        string dir = Path.Combine(Path.GetTempPath(), db);
        try
        {
            await StoreAsSchema009Async(db, dir, events.Where(g => g.Day < OldDays).ToList());
            await new SchemaMigrator(engine.Store).MigrateAsync(Schemas, db, Ct);
            await RollUpAsync(db, Path.Combine(dir, "new"), events.Where(g => g.Day >= OldDays).ToList());

            // The old site-days are listed for both tables; nothing after them, nothing of the new site.
            Assert.Equal(
                ["rollup_dims_day 2026-05-01", "rollup_dims_day 2026-05-02", "rollup_dims_day 2026-05-03",
                 "rollup_visits_day 2026-05-01", "rollup_visits_day 2026-05-02", "rollup_visits_day 2026-05-03"],
                (await engine.Store.QueryRowsAsync($"SELECT rollup, toString(day) FROM {db}.preaggregate_gaps WHERE merchant_id = {Merchant} AND site_id = {Site}", Ct))
                .Select(r => $"{r[0].GetString()} {r[1].GetString()}").Order(StringComparer.Ordinal));
            Assert.Empty(await Uncovered(db, Query(NewSite, "visitors by country", 0, Days)));

            var past = new QueryEngine(engine.Store, db)
            {
                Retention = new RetentionPolicy { Enriched = RetentionPeriod.Parse("30d") },
                Clock = new ManualClock(Day0.AddDays(31).AddHours(12)),
            };
            foreach (var question in Questions.Keys)
            {
                var all = Query(Site, question, 0, Days);
                var expected = Expected(events, all, question);
                Assert.True(expected.Count >= 2, question);

                // Without the guard the planner would read the pre-aggregates, which miss the old days.
                var unguarded = NormalQueryPlanner.TryPlanRaw(all, db, 10, out var why);
                Assert.True(unguarded is not null, $"{question}: {why}");
                long missing = (await engine.Store.QueryRowsAsync(unguarded, Ct)).Sum(r => long.Parse(r[1].ToString(), CultureInfo.InvariantCulture));
                Assert.True(missing < expected.Sum(l => long.Parse(l.Split(" => ")[1].Split(", ")[0], CultureInfo.InvariantCulture)), question);

                // With it: not planned, scanned, exact.
                var uncovered = await Uncovered(db, all);
                Assert.Null(NormalQueryPlanner.TryPlanRaw(all, db, 10, out var reason, uncovered));
                Assert.Contains("stored before it existed (migration 010)", reason, StringComparison.Ordinal);
                Assert.Contains("stored before it existed (migration 011)", reason, StringComparison.Ordinal);
                Assert.Equal(expected, Lines(await new QueryEngine(engine.Store, db).AnswerAsync(all, Ct)));

                // The days after the upgrade, and a site that came after it, are planned and exact.
                foreach (var covered in new[] { Query(Site, question, OldDays, Days - OldDays), Query(NewSite, question, 0, Days) })
                {
                    Assert.True(NormalQueryPlanner.TryPlanRaw(covered, db, 10, out reason, await Uncovered(db, covered)) is not null, $"{question}: {reason}");
                    Assert.Equal(Expected(events, covered, question), Lines(await new QueryEngine(engine.Store, db).AnswerAsync(covered, Ct)));
                }

                // Past the enriched horizon only the pre-aggregates may answer: refused, never a partial answer.
                var refused = await Assert.ThrowsAsync<QueryException>(() => past.AnswerAsync(all, Ct));
                Assert.Equal("date_range", refused.Field);
                Assert.Contains("were not reprocessed since", refused.Message, StringComparison.Ordinal);
            }

            // Reprocessing the old days makes them whole: planned again, the same numbers, past the horizon too.
            var rebuilder = new SiteDayRebuilder(engine.Store, db, new Generations(engine.Store, db), new ProcessingLogic(engine.Enrichment));
            for (int day = 0; day < OldDays; day++)
                await rebuilder.RebuildAsync(Merchant, Site, DateOnly.FromDateTime(Day0.AddDays(day).UtcDateTime), ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
            foreach (var question in Questions.Keys)
            {
                var all = Query(Site, question, 0, Days);
                var uncovered = await Uncovered(db, all);
                Assert.Empty(uncovered);
                Assert.True(NormalQueryPlanner.TryPlanRaw(all, db, 10, out var reason, uncovered) is not null, $"{question}: {reason}");
                var expected = Expected(events, all, question);
                Assert.Equal(expected, Lines(await new QueryEngine(engine.Store, db).AnswerAsync(all, Ct)));
                Assert.Equal(expected, Lines(await past.AnswerAsync(all, Ct)));
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private async Task<IReadOnlySet<string>> Uncovered(string db, NormalQuery q) =>
        PreAggregateCoverage.Read(await engine.Store.QueryRowsAsync(PreAggregateCoverage.Sql(q.MerchantId, q.SiteId, q.From, q.To, db), Ct));

    /// <summary>
    /// The database as schema 009 left it, holding <paramref name="old"/>: migrations 001-009 only,
    /// then what Rollup wrote then. The real Rollup stores the events into a scratch database of
    /// the current schema; every table Rollup wrote before 010 is copied over with the columns
    /// the 009 table has (the enriched events lose their visit stamps, as before 010).
    /// </summary>
    private async Task StoreAsSchema009Async(string db, string dir, List<Generated> old)
    {
        string schema009 = Path.Combine(dir, "schema-009");
        Directory.CreateDirectory(schema009);
        foreach (var m in SchemaMigrator.Discover(Schemas).Where(m => m.Version <= 9)) File.Copy(m.FilePath, Path.Combine(schema009, m.Name));
        Assert.Equal(9, (await new SchemaMigrator(engine.Store).MigrateAsync(schema009, db, Ct)).Count);

        string scratch = db + "_scratch";
        await new SchemaMigrator(engine.Store).MigrateAsync(Schemas, scratch, Ct);
        await RollUpAsync(scratch, Path.Combine(dir, "old"), old);
        foreach (var table in new[] { "events_raw", "events_enriched", "event_ids", "rollup_minute", "rollup_hour", "rollup_day" })
        {
            var columns = await engine.Store.QueryRowsAsync(
                $"SELECT name FROM system.columns WHERE database = '{db}' AND table = '{table}' AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position", Ct);
            string list = string.Join(", ", columns.Select(c => c[0].GetString()));
            await engine.Store.ExecuteAsync($"INSERT INTO {db}.{table} ({list}) SELECT {list} FROM {scratch}.{table}", Ct);
        }
        await engine.Store.ExecuteAsync($"DROP DATABASE {scratch}", Ct);
        Assert.Equal(old.Count, (await engine.Store.QueryRowsAsync($"SELECT count() FROM {db}.events_enriched", Ct))[0][0].GetInt64());
    }

    [Fact]
    public async Task Migration_013_lists_the_site_days_stored_before_each_pre_aggregate_and_none_rebuilt_since_none_later_none_on_a_fresh_database()
    {
        string fresh = "gaps_fresh_" + Guid.NewGuid().ToString("N")[..8], db = "gaps_" + Guid.NewGuid().ToString("N")[..8];
        string dir = Path.Combine(Path.GetTempPath(), db);
        try
        {
            await new SchemaMigrator(engine.Store).MigrateAsync(Schemas, fresh, Ct);
            Assert.Equal(0, (await engine.Store.QueryRowsAsync($"SELECT count() FROM {fresh}.preaggregate_gaps", Ct))[0][0].GetInt64());

            // Up to 011; then a day stored before (generation 0), a day stored before but rebuilt
            // after the migrations (generation 7, activated now), and a later day of another site.
            string schema011 = Path.Combine(dir, "schema-011");
            Directory.CreateDirectory(schema011);
            foreach (var m in SchemaMigrator.Discover(Schemas).Where(m => m.Version <= 11)) File.Copy(m.FilePath, Path.Combine(schema011, m.Name));
            await new SchemaMigrator(engine.Store).MigrateAsync(schema011, db, Ct);
            await engine.Store.ExecuteAsync($"INSERT INTO {db}.events_enriched (merchant_id, site_id, event_id, received_at, generation) VALUES " +
                $"({Merchant}, {Site}, 'a', '2026-05-01 10:00:00', 0), ({Merchant}, {Site}, 'b', '2026-05-02 10:00:00', 0), ({Merchant}, {Site}, 'c', '2026-05-02 10:00:00', 7), " +
                $"({Merchant}, {NewSite}, 'd', now64(3) + INTERVAL 1 HOUR, 0)", Ct);
            await engine.Store.ExecuteAsync($"INSERT INTO {db}.generations VALUES ({Merchant}, {Site}, '2026-05-02', 7, 3, 1, now64(6) + INTERVAL 1 SECOND)", Ct);
            await new SchemaMigrator(engine.Store).MigrateAsync(Schemas, db, Ct);

            // Generation 0 of the rebuilt day is listed too, and never read: 7 is active.
            string listed = $"SELECT DISTINCT site_id, rollup, toString(day), generation FROM {db}.preaggregate_gaps ORDER BY rollup, day";
            string[] expected = [$"{Site} rollup_dims_day 2026-05-01 0", $"{Site} rollup_dims_day 2026-05-02 0", $"{Site} rollup_visits_day 2026-05-01 0", $"{Site} rollup_visits_day 2026-05-02 0"];
            Assert.Equal(expected, (await engine.Store.QueryRowsAsync(listed, Ct)).Select(r => string.Join(' ', r.Select(c => c.ToString()))));
            var days = Query(Site, "visitors by country", 0, 2);
            Assert.Equal(["rollup_dims_day", "rollup_visits_day"], (await Uncovered(db, days)).Order(StringComparer.Ordinal));
            Assert.Empty(await Uncovered(db, days with { From = Day0.AddDays(1) }));

            // Run again (as after a failure half way): the same list.
            foreach (var statement in SchemaMigrator.Statements(SchemaMigrator.Discover(Schemas).Single(m => m.Version == 13), db, SchemaTarget.SingleServer))
                await engine.Store.ExecuteAsync(statement, Ct);
            Assert.Equal(expected, (await engine.Store.QueryRowsAsync(listed, Ct)).Select(r => string.Join(' ', r.Select(c => c.ToString()))));
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private Task RollUpAsync(string db, string dir, List<Generated> events) =>
        LogRecords.RollUpAsync(engine, db, dir, Merchant, events.Select(g => g.Event).ToList(), 200, Ct);

    private static NormalQuery Query(ulong site, string question, int fromDay, int days)
    {
        var (metrics, dimensions) = Questions[question];
        return new NormalQuery((long)Merchant, (long)site, "site", Day0.AddDays(fromDay), Day0.AddDays(fromDay + days), TimeZoneInfo.Utc, metrics,
            dimensions.Select(d => QueryVocabulary.ParseDimension(d)!).ToList(), null, [new(metrics[0], true)], 10_000, 0, TimeLabels: false, null,
            [Signup with { SiteId = (long)site }, Cart with { SiteId = (long)site }], "custom");
    }

    /// <summary>
    /// The answer under the contract's definitions, as "dimension => metrics" lines: a visit's
    /// country is its first event's (every event of a generated visitor has the same), its entry
    /// page its first pageview's path ('' without one), a bounce a visit with at most one
    /// pageview and no other event than pageviews and engagement pings; Signup completes on a
    /// signup event, Cart on a pageview of /cart.
    /// </summary>
    private static List<string> Expected(List<Generated> all, NormalQuery q, string question)
    {
        var events = all.Where(g => g.Event.SiteId == (ulong)q.SiteId && g.Event.ReceivedMs >= q.From.ToUnixTimeMilliseconds() && g.Event.ReceivedMs < q.To.ToUnixTimeMilliseconds()).ToList();
        var visits = events.GroupBy(g => g.Visit).Select(v => v.OrderBy(g => g.Event.ReceivedMs).ToList()).ToList();
        static string Line(string key, params long[] counts) => key + " => " + string.Join(", ", counts);
        static string Rate(int part, int whole) => Math.Round(part * 100m / whole, 1, MidpointRounding.AwayFromZero).ToString("0.##", CultureInfo.InvariantCulture);
        return (question switch
        {
            "visitors by country" => visits.GroupBy(v => v[0].Event.Country)
                .Select(c => Line(c.Key, c.Select(v => v[0].Event.VisitorId).Distinct().Count(), c.Count())),
            "bounce rate by entry page" => visits.GroupBy(v => v.FirstOrDefault(g => g.Event.Name == "pageview")?.Path ?? "").Select(e =>
            {
                int bounces = e.Count(v => v.Count(g => g.Event.Name == "pageview") <= 1 && v.All(g => g.Event.Name is "pageview" or "engagement"));
                return Line(e.Key, e.Select(v => v[0].Event.VisitorId).Distinct().Count(), e.Count()) + ", " + Rate(bounces, e.Count());
            }),
            _ => new[] { (Signup.Name, (Func<Generated, bool>)(g => g.Event.Name == "signup")), (Cart.Name, g => g.Event.Name == "pageview" && g.Path == "/cart") }
                .Select(goal => (goal.Name, Converted: events.Where(goal.Item2).ToList()))
                .Select(goal => Line(goal.Name, goal.Converted.Select(g => g.Event.VisitorId).Distinct().Count(), goal.Converted.Count)),
        }).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The answer's rows as a client reads them (parsed JSON), as "dimension => metrics" lines.</summary>
    private static List<string> Lines(JsonObject answer) => JsonNode.Parse(answer.ToJsonString())!["results"]!.AsArray()
        .Select(r => r!["dimensions"]![0]!.GetValue<string>() + " => " +
            string.Join(", ", r["metrics"]!.AsArray().Select(m => m!.GetValue<decimal>().ToString("0.##", CultureInfo.InvariantCulture))))
        .Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Six UTC days: the first three of the upgraded site only (stored before the upgrade), the
    /// last three of it and of a site added after. Per site and day 25 people, each from one
    /// country (stored at ingest, so the generator knows it), with 1-2 visits 40+ minutes apart
    /// of 1-5 events under 10 minutes apart: pageviews of four paths, engagement pings and
    /// signups; some visits start with a signup. Visitor ids are per day.
    /// </summary>
    private static List<Generated> Generate()
    {
        var random = new Random(20261201);
        var events = new List<Generated>();
        int visit = 0;
        for (int day = 0; day < Days; day++)
        {
            foreach (ulong site in day < OldDays ? new[] { Site } : new[] { Site, NewSite })
            {
                for (int person = 0; person < 25; person++)
                {
                    ulong visitor = (ulong)random.NextInt64(1, long.MaxValue);
                    string country = Countries[random.Next(Countries.Length)];
                    long t = Day0.AddDays(day).ToUnixTimeMilliseconds() + random.Next(0, 3600) * 1000L;
                    for (int v = random.Next(1, 3); v > 0; v--, visit++)
                    {
                        for (int i = 0, n = random.Next(1, 6); i < n; i++)
                        {
                            string path = Pages[random.Next(Pages.Length)];
                            string name = i == 0 ? (random.Next(6) == 0 ? "signup" : "pageview") : random.Next(5) switch { 0 => "engagement", 1 => "signup", _ => "pageview" };
                            events.Add(new Generated(new StoredEvent
                            {
                                Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                                MerchantId = Merchant,
                                SiteId = site,
                                ReceivedMs = t,
                                ClientTimeMs = t,
                                Name = name,
                                Url = "https://shop.example" + path,
                                Referrer = i == 0 ? "https://www.google.com/" : "https://shop.example/",
                                ScreenWidth = 1280,
                                VisitorId = visitor,
                                IpPrefix = "81.2.69.0/24",
                                UserAgent = TestHost.BrowserUserAgent,
                                Country = country,
                                EngagementMs = name == "engagement" ? 5000u : 0u,
                            }, day, visit, path));
                            t += random.Next(5, 600) * 1000L;
                        }
                        t += random.Next(40, 120) * 60_000L;
                    }
                }
            }
        }
        return events.OrderBy(g => g.Event.ReceivedMs).ToList();
    }
}
