using System.Globalization;
using System.Text.Json.Nodes;
using Analytics.QueryService.PreAggregates;
using Analytics.QueryService.Query;
using Analytics.Store;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The visit rollup (rollup_visits_day) answers the visit metrics exactly: on the same data as
/// the dimension rollup's tests (three UTC days through the real log and the real Rollup in
/// rounds of 250 records, so visits span rounds), bounce rate, visit duration, entry and exit
/// pages, with visit-dimension filters, answered by QueryEngine with the planner equal the
/// answer without it (the scan of events_enriched), and, where the generator knows them, plain
/// LINQ over the generated events and the documented definitions (a visit's pageviews,
/// interactions, first and last event and pageview). After a site-day is reprocessed the
/// answers are the same again.
/// </summary>
public partial class PreAggregateTests
{
    private const string IPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

    public static IEnumerable<TheoryDataRow<string>> VisitQuestions() => VisitQuestionTable.Keys.Select(k => new TheoryDataRow<string>(k));

    /// <summary>POST /v1/query questions the visit rollup answers: (metrics, dimensions, filters as [operator, dimension, value]).</summary>
    private static readonly Dictionary<string, (string[] Metrics, string[] Dimensions, string[][] Filters)> VisitQuestionTable = new()
    {
        ["totals with bounce rate and duration"] = (["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration", "time_on_page"], [], []),
        ["main graph with bounce rate and duration"] = (["visitors", "visits", "bounce_rate", "visit_duration"], ["time:day"], []),
        ["entry pages"] = (["visitors", "visits", "bounce_rate", "visit_duration"], ["entry_page"], []),
        ["exit pages"] = (["visitors", "visits", "bounce_rate", "visit_duration"], ["exit_page"], []),
        ["exit pages of mobile visits"] = (["visitors", "visits", "bounce_rate", "visit_duration"], ["exit_page"], [["is", "device", "Mobile"]]),
        ["sources with bounce rate"] = (["visitors", "visits", "bounce_rate", "visit_duration", "views_per_visit", "percentage"], ["source"], []),
        ["entry pages from search"] = (["visitors", "bounce_rate", "visit_duration"], ["entry_page"], [["is", "source", "Google"], ["is", "channel", "Organic Search"]]),
        ["one entry page's sources"] = (["visitors", "visits", "bounce_rate"], ["source"], [["is", "entry_page", "/shoes"]]),
        ["exit page filter by week and country"] = (["visitors", "bounce_rate"], ["time:week", "country"], [["is_not", "exit_page", "/cart"]]),
        ["entry page contains"] = (["visits", "bounce_rate"], ["time:month", "entry_page", "browser"], [["contains", "entry_page", "SHOES", "ci"]]),
    };

    [Theory]
    [MemberData(nameof(VisitQuestions))]
    public async Task A_visit_question_answered_from_the_visit_rollup_equals_the_scan_and_the_generator(string question)
    {
        var (db, events) = await RolledUpAsync();
        var q = VisitQuery(question);
        var sql = NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason);
        Assert.True(sql is not null, $"the planner fell back: {reason}");
        Assert.Contains(VisitRollupPlanner.Table, sql, StringComparison.Ordinal);

        Assert.Contains(" FINAL", NormalQueryPlanner.TryPlanRaw(q, db, 10, out _, largeSite: true), StringComparison.Ordinal);
        Assert.DoesNotContain(" FINAL", sql, StringComparison.Ordinal);

        var planned = (await new QueryEngine(engine.Store, db).AnswerAsync(q, Ct)).ToJsonString();
        var scanned = (await new QueryEngine(engine.Store, db) { UsePreAggregates = false }.AnswerAsync(q, Ct)).ToJsonString();
        Assert.Equal(scanned, planned);
        // Read merged by the engine (FINAL) rather than grouped per visit: the same answer.
        Assert.Equal(planned, (await new QueryEngine(engine.Store, db) { LargeSiteFromVisits = 0 }.AnswerAsync(q, Ct)).ToJsonString());
        // With each past day's numbers kept (DailyRowsCache), read grouped and merged: the first
        // answer reads the days and keeps them, the second adds up the kept ones. Questions
        // without a filter are kept from the visit rollup's rows per value and day, filtered ones
        // from the planner's statement by day; one with two dimensions besides time is asked as before.
        foreach (long mergedFrom in new long[] { long.MaxValue, 0 })
        {
            var keeping = new QueryEngine(engine.Store, db)
            {
                LargeSiteFromVisits = mergedFrom, GenerationActivations = new GenerationActivations(), SiteDayWrites = new SiteDayWrites(),
            };
            Assert.Equal(planned, (await keeping.AnswerAsync(q, Ct)).ToJsonString());
            Assert.Equal(planned, (await keeping.AnswerAsync(q, Ct)).ToJsonString());
            Assert.Equal(q.Dimensions.Count(d => d.Kind != DimensionKind.Time) <= 1, keeping.DailyRows!.DaysKept > 0);
        }
        var rows = JsonNode.Parse(planned)!["results"]!.AsArray();
        Assert.True(rows.Count > (q.Dimensions.Count == 0 ? 0 : 1), planned);
        if (ExpectedByGenerator(question, q, events) is { } expected)
            Assert.Equal(expected, rows.Select(r => Line(r!["dimensions"]!.AsArray(), r["metrics"]!.AsArray())).Order(StringComparer.Ordinal));

        // A rebuilt site-day (new generation, old rows deleted) answers the same.
        await RebuildAsync(db, Day0.AddDays(2));
        Assert.Equal(planned, (await new QueryEngine(engine.Store, db).AnswerAsync(q, Ct)).ToJsonString());
        Assert.Equal(planned, (await new QueryEngine(engine.Store, db) { LargeSiteFromVisits = 0 }.AnswerAsync(q, Ct)).ToJsonString());
        Assert.Equal(planned, (await new QueryEngine(engine.Store, db) { UsePreAggregates = false }.AnswerAsync(q, Ct)).ToJsonString());
    }

    [Fact]
    public async Task Visit_questions_the_pre_aggregates_cannot_answer_exactly_fall_back_with_a_reason_and_still_answer_like_the_scan()
    {
        var (db, _) = await RolledUpAsync();
        var basis = VisitQuery("entry pages");
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var cases = new Dictionary<string, NormalQuery>
        {
            ["range not whole UTC days"] = basis with { From = Day0.AddHours(1) },
            ["days of another zone"] = basis with { Dimensions = [Dimension("time:day")], TimeZone = berlin },
            ["hours"] = basis with { Dimensions = [Dimension("time:hour")] },
            ["an event filter"] = basis with { Filter = Leaf("is", "page", "/shoes") },
            ["an event filter inside an or"] = basis with { Filter = new FilterOr([Leaf("is", "source", "Google"), Leaf("is", "page", "/cart")]) },
            ["bots"] = basis with { Metrics = ["bots"] },
            ["revenue"] = basis with { Metrics = ["visits", "total_revenue"] },
            ["a page dimension"] = basis with { Metrics = ["visitors", "time_on_page"], Dimensions = [Dimension("page")] },
        };
        foreach (var (name, q) in cases)
        {
            Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is null, $"{name}: planned");
            Assert.Contains("visit rollup: ", reason, StringComparison.Ordinal);
        }
        // The fall-back is the scan: with and without the planner the same answer.
        var mixed = cases["an event filter"];
        Assert.Equal((await new QueryEngine(engine.Store, db) { UsePreAggregates = false }.AnswerAsync(mixed, Ct)).ToJsonString(),
            (await new QueryEngine(engine.Store, db).AnswerAsync(mixed, Ct)).ToJsonString());
    }

    [Fact]
    public async Task The_visit_rollup_holds_one_row_per_visit_once_merged_and_reprocessing_counts_it()
    {
        var (db, events) = await RolledUpAsync();
        var rows = await engine.Store.QueryRowsAsync(
            $"SELECT count(), uniqExact(site_id, visit_id) FROM {db}.{VisitRollupPlanner.Table} FINAL WHERE merchant_id = {Merchant}", Ct);
        Assert.Equal(events.Where(g => !g.IsBot).Select(g => g.Visit).Distinct().Count(), rows[0][1].GetInt64());
        Assert.Equal(rows[0][1].GetInt64(), rows[0][0].GetInt64());

        var generations = new Analytics.Rollup.Generations(engine.Store, db);
        var rebuilder = new Analytics.Rollup.Reprocessing.SiteDayRebuilder(engine.Store, db, generations, new Analytics.Rollup.ProcessingLogic(engine.Enrichment));
        var result = await rebuilder.RebuildAsync(Merchant, OtherSite, DateOnly.FromDateTime(Day0.UtcDateTime), Analytics.Rollup.ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
        var day0 = Day0.ToUnixTimeMilliseconds();
        Assert.Equal(events.Where(g => !g.IsBot && g.Event.SiteId == OtherSite && g.Event.ReceivedMs < day0 + 86_400_000).Select(g => g.Visit).Distinct().Count(),
            result.RowsWritten[VisitRollupPlanner.Table]);
    }

    /// <summary>
    /// The visit rollup's reader merges a visit's rows itself: with merges stopped, visit A lies in
    /// two parts (a pageview of /a in one round, a pageview of /b and a signup in the next) beside
    /// visit B (one pageview of /b, a bounce). Written by hand, so the expected numbers are the
    /// definitions applied to these five events: A enters at /a, leaves at /b, 2 pageviews, an
    /// interaction, 10:00 to 10:07; B enters and leaves at /b.
    /// </summary>
    [Fact]
    public async Task The_visit_rollup_reader_merges_a_visit_stored_in_two_rounds_before_it_counts_or_filters_it()
    {
        string db = "visits_split_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        await engine.Store.ExecuteAsync($"SYSTEM STOP MERGES {db}.{VisitRollupPlanner.Table}", Ct);
        string RoundRow(ulong visit, ulong visitor, string first, string last, int pageviews, int interactions, int events, string entry, string exit) => string.Create(CultureInfo.InvariantCulture, $"""
            INSERT INTO {db}.{VisitRollupPlanner.Table} (merchant_id, site_id, bucket, visit_id, generation, visitor_id, first_at, last_at,
                pageviews, interactions, events, engagement_ms, entry_page, exit_page, device)
            SELECT {Merchant}, {Site}, toDate('2026-03-01'), {visit}, 0, {visitor}, toDateTime64('{first}', 3, 'UTC'), toDateTime64('{last}', 3, 'UTC'),
                {pageviews}, {interactions}, {events}, 0, argMinState(p, (t, o)), argMaxState(x, (u, o)), 'Desktop'
            FROM (SELECT '{entry}' AS p, '{exit}' AS x, toDateTime64('{first}', 3, 'UTC') AS t, toDateTime64('{last}', 3, 'UTC') AS u, toUInt64({visit}) AS o)
            """);
        await engine.Store.ExecuteAsync(RoundRow(1, 11, "2026-03-01 10:00:00", "2026-03-01 10:00:00", 1, 0, 1, "/a", "/a"), Ct);
        await engine.Store.ExecuteAsync(RoundRow(1, 11, "2026-03-01 10:05:00", "2026-03-01 10:07:00", 1, 1, 2, "/b", "/b"), Ct);
        await engine.Store.ExecuteAsync(RoundRow(2, 22, "2026-03-01 11:00:00", "2026-03-01 11:00:00", 1, 0, 1, "/b", "/b"), Ct);
        var split = await engine.Store.QueryRowsAsync($"SELECT count(), countDistinct(visit_id) FROM {db}.{VisitRollupPlanner.Table}", Ct);
        Assert.Equal((3L, 2L), (split[0][0].GetInt64(), split[0][1].GetInt64()));

        // Each question asked with the visit's rows grouped by the reader and merged by the engine
        // (FINAL, LargeSiteFromVisits = 0): both must give the one answer.
        async Task<string[]> Ask(string dimension, FilterLeaf? filter = null)
        {
            var q = new NormalQuery((long)Merchant, (long)Site, "site", Day0, Day0.AddDays(1), TimeZoneInfo.Utc,
                ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], [Dimension(dimension)], filter,
                [new("visitors", true)], 100, 0, false, null, [], "custom");
            Assert.Contains(VisitRollupPlanner.Table, NormalQueryPlanner.TryPlanRaw(q, db, 10, out _), StringComparison.Ordinal);
            // And with each past day's numbers kept (DailyRowsCache), whose statements read the
            // day's visits grouped by value (or, filtered, the planner's by day), read twice (the
            // second adds up the kept day). Not kept as a large site's: its day is built from the
            // events (KeptVisits), which rows written by hand have none of (the visits test in
            // DailyRowsCacheTests asks that form of a visit stored in several rounds).
            var answers = new List<string[]>();
            foreach (long mergedFrom in new long[] { long.MaxValue, 0 })
            foreach (bool keep in mergedFrom == 0 ? [false] : new[] { false, true })
            {
                var query = new QueryEngine(engine.Store, db) { LargeSiteFromVisits = mergedFrom };
                if (keep) query = new QueryEngine(engine.Store, db)
                {
                    LargeSiteFromVisits = mergedFrom, GenerationActivations = new GenerationActivations(), SiteDayWrites = new SiteDayWrites(),
                };
                for (int ask = 0; ask < (keep ? 2 : 1); ask++)
                {
                    var rows = JsonNode.Parse((await query.AnswerAsync(q, Ct)).ToJsonString())!["results"]!.AsArray();
                    answers.Add([.. rows.Select(r => Line(r!["dimensions"]!.AsArray(), r["metrics"]!.AsArray())).Order(StringComparer.Ordinal)]);
                }
                if (keep) Assert.True(query.DailyRows!.DaysKept > 0, "no day was kept");
            }
            Assert.All(answers, a => Assert.Equal(answers[0], a));
            return answers[0];
        }
        Assert.Equal(["/a => 1, 1, 2, 0, 420", "/b => 1, 1, 1, 100, 0"], await Ask("entry_page"));
        Assert.Equal(["/b => 2, 2, 3, 50, 210"], await Ask("exit_page"));
        // A's second round alone starts at /b: counted as entering there, A would be a second visit.
        Assert.Equal(["Desktop => 1, 1, 1, 100, 0"], await Ask("device", Leaf("is", "entry_page", "/b")));
        Assert.Equal(["Desktop => 1, 1, 2, 0, 420"], await Ask("device", Leaf("is", "entry_page", "/a")));
        // A's first round alone leaves at /a; the visit leaves at /b.
        Assert.Empty(await Ask("device", Leaf("is", "exit_page", "/a")));
    }

    /// <summary>
    /// A site is read as a large one (the visit rollup merged by the engine, FINAL) once an answer
    /// of its total visits by time puts the range at LargeSiteFromVisits visits or more, and as a
    /// small one before that and for shorter ranges. The visits come from the generator (LINQ).
    /// </summary>
    [Fact]
    public async Task The_visit_rollup_is_read_merged_by_the_engine_once_a_site_is_known_to_have_that_many_visits_in_the_range()
    {
        var (db, events) = await RolledUpAsync();
        long visits = events.Where(g => !g.IsBot && g.Event.SiteId == Site).Select(g => g.Visit).Distinct().LongCount();
        var threeDays = VisitQuery("entry pages");
        var oneDay = threeDays with { To = Day0.AddDays(1), Comparison = null };
        var query = new QueryEngine(engine.Store, db) { LargeSiteFromVisits = visits };
        Assert.False(query.IsLargeSite(threeDays));

        await query.AnswerAsync(VisitQuery("main graph with bounce rate and duration"), Ct);
        Assert.True(query.IsLargeSite(threeDays));
        Assert.False(query.IsLargeSite(oneDay));
        Assert.False(query.IsLargeSite(threeDays with { SiteId = (long)OtherSite }));
        // Rows of another range than the one asked (a comparison's, a denominator's: RawAsync
        // without `asked`) leave the estimate as it is; here the three empty days before.
        await query.RawAsync(VisitQuery("main graph with bounce rate and duration") with { From = Day0.AddDays(-3), To = Day0, Comparison = null }, Ct);
        Assert.True(query.IsLargeSite(threeDays));
        // A filtered answer counts only some visits: it leaves the estimate as it is.
        await query.AnswerAsync(VisitQuery("main graph with bounce rate and duration") with { Filter = Leaf("is", "entry_page", "/nowhere") }, Ct);
        Assert.True(query.IsLargeSite(threeDays));
        Assert.False(new QueryEngine(engine.Store, db) { LargeSiteFromVisits = visits + 1 }.IsLargeSite(threeDays));
    }

    private static NormalQuery VisitQuery(string question)
    {
        var (metrics, dimensions, filters) = VisitQuestionTable[question];
        var leaves = filters.Select(f => (Filter)Leaf(f[0], f[1], f[2], caseSensitive: f.Length < 4)).ToList();
        return new NormalQuery((long)Merchant, (long)Site, "site", Day0, Day0.AddDays(3), TimeZoneInfo.Utc, metrics,
            dimensions.Select(Dimension).ToList(), leaves.Count switch { 0 => null, 1 => leaves[0], _ => new FilterAnd(leaves) },
            [new(metrics[0], true)], 10_000, 0, TimeLabels: dimensions.Length == 1 && dimensions[0].StartsWith("time:", StringComparison.Ordinal),
            // The previous three days have no events: the comparison rows are zeros from both paths.
            new ComparisonRange("previous_period", Day0.AddDays(-3), Day0, false), [], "custom");
    }

    private static Dimension Dimension(string name) => QueryVocabulary.ParseDimension(name)!;

    private static FilterLeaf Leaf(string op, string dimension, string value, bool caseSensitive = true) =>
        new(op, Dimension(dimension), [value], caseSensitive, "filters[0]");

    /// <summary>One visit as the documented definitions see it, from the generated events alone.</summary>
    private sealed record GeneratedVisit(ulong Visitor, string Day, string UserAgent, int Pageviews, int Interactions, long DurationMs, string Entry, string Exit)
    {
        public bool Bounce => Pageviews <= 1 && Interactions == 0;
    }

    /// <summary>The answer LINQ computes for the questions whose dimensions and filters the generator
    /// knows (time, entry and exit page, mobile by user agent), as "dimensions => metrics" lines.</summary>
    private static List<string>? ExpectedByGenerator(string question, NormalQuery q, List<Generated> all)
    {
        var visits = all.Where(g => !g.IsBot && g.Event.SiteId == Site).GroupBy(g => g.Visit).Select(v =>
        {
            var ordered = v.OrderBy(g => g.Event.ReceivedMs).ToList();
            var pages = ordered.Where(g => g.Event.Name == "pageview").ToList();
            return new GeneratedVisit(ordered[0].Event.VisitorId,
                DateTimeOffset.FromUnixTimeMilliseconds(ordered[0].Event.ReceivedMs).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                ordered[0].Event.UserAgent, pages.Count, ordered.Count(g => g.Event.Name is not ("pageview" or "engagement")),
                ordered[^1].Event.ReceivedMs - ordered[0].Event.ReceivedMs, pages.FirstOrDefault()?.Path ?? "", pages.LastOrDefault()?.Path ?? "");
        }).ToList();
        Func<GeneratedVisit, string>? key = question switch
        {
            "totals with bounce rate and duration" => _ => "",
            "main graph with bounce rate and duration" => v => v.Day,
            "entry pages" => v => v.Entry,
            "exit pages" => v => v.Exit,
            "exit pages of mobile visits" => v => v.Exit,
            _ => null,
        };
        if (key is null) return null;
        if (question == "exit pages of mobile visits") visits = visits.Where(v => v.UserAgent == IPhone).ToList();
        if (question.StartsWith("totals", StringComparison.Ordinal))
        {
            var people = all.Where(g => !g.IsBot && g.Event.SiteId == Site).ToList();
            long pageviews = people.Count(g => g.Event.Name == "pageview");
            long engagement = people.Where(g => g.Event.Name == "engagement").Sum(g => (long)g.Event.EngagementMs);
            return [Line([], [visits.Select(v => v.Visitor).Distinct().Count(), visits.Count, pageviews, people.Count(g => g.Event.Name != "engagement"),
                Round(pageviews, visits.Count, 1, 2), Round(visits.Count(v => v.Bounce), visits.Count, 100, 1),
                Round(visits.Sum(v => v.DurationMs), visits.Count, 0.001m, 0), Round(engagement, pageviews, 0.001m, 1)])];
        }
        return visits.GroupBy(key).Select(g => Line([g.Key], [g.Select(v => v.Visitor).Distinct().Count(), g.Count(),
            Round(g.Count(v => v.Bounce), g.Count(), 100, 1), Round(g.Sum(v => v.DurationMs), g.Count(), 0.001m, 0)]))
            .Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The contract's rounding: half away from zero.</summary>
    private static decimal Round(long numerator, long denominator, decimal scale, int decimals) =>
        denominator == 0 ? 0 : Math.Round(numerator * scale / denominator, decimals, MidpointRounding.AwayFromZero);

    private static string Line(IEnumerable<string> dimensions, IEnumerable<decimal> metrics) =>
        string.Join(" | ", dimensions) + " => " + string.Join(", ", metrics.Select(m => m.ToString("0.##", CultureInfo.InvariantCulture)));

    private static string Line(JsonArray dimensions, JsonArray metrics) =>
        Line(dimensions.Select(d => d!.GetValue<string>()), metrics.Select(m => m!.GetValue<decimal>()));
}
