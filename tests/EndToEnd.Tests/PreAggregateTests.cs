using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Analytics.Contracts.Internal;
using Analytics.EventLog;
using Analytics.QueryService.PreAggregates;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The dimension rollup answers exactly what a scan of the events answers. Events of three UTC
/// days (people in visits of several events, bots, engagement pings, custom events, two sites)
/// go through the real log and the real Rollup in small rounds, so visits span rounds. Then a
/// table of dashboard questions is answered by the planner from rollup_dims_day and, written
/// independently here, by a scan of events_enriched that takes visit dimensions from each
/// visit's first event (argMin per visit id, not the stamped entry columns), by qcore's
/// builder over events_enriched (QueryEngine without the planner), and for the
/// questions whose answer the generator knows, by LINQ over the generated events. After a site-day
/// is reprocessed (a new generation) the answers are the same again.
/// </summary>
public partial class PreAggregateTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const ulong Merchant = 7, Site = 70, OtherSite = 71;
    private static readonly DateTimeOffset Day0 = new(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly string[] Browsers =
    [
        TestHost.BrowserUserAgent,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ];
    private const string Bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    private static readonly string[] Referrers = ["", "https://www.google.com/", "https://www.bing.com/search?q=shoes", "https://news.ycombinator.com/item?id=1"];
    private static readonly string[] Pages = ["/", "/shoes", "/shoes/red", "/cart", "/checkout", "/about"];
    private static readonly string[] IpPrefixes = ["81.2.69.0/24", "89.160.20.0/24", "175.16.199.0/24", "216.160.83.0/24"];

    /// <summary>One generated event, with what the generator knows about it.</summary>
    private sealed record Generated(StoredEvent Event, bool IsBot, int Visit, string Path);

    public static IEnumerable<TheoryDataRow<string>> Questions() => QuestionTable.Keys.Select(k => new TheoryDataRow<string>(k));

    /// <summary>The dashboard's questions and more: (metrics, dimensions, filters, days of the range).</summary>
    private static readonly Dictionary<string, (string[] Metrics, string[] Dimensions, QueryFilter[] Filters, int FromDay, int Days)> QuestionTable = new()
    {
        ["totals"] = (["visitors", "visits", "pageviews", "events", "views_per_visit"], [], [], 0, 3),
        ["main graph"] = (["visitors", "visits", "pageviews"], ["time:day"], [], 0, 3),
        ["top pages"] = (["visitors", "pageviews", "events", "percentage"], ["page"], [], 0, 3),
        ["top pages of one day"] = (["visitors", "pageviews"], ["page"], [], 1, 1),
        ["sources"] = (["visitors", "visits", "pageviews", "views_per_visit", "percentage"], ["source"], [], 0, 3),
        ["channels by day"] = (["visitors", "visits"], ["time:day", "channel"], [], 0, 3),
        ["countries"] = (["visitors", "visits"], ["country"], [], 0, 2),
        ["devices"] = (["visitors", "visits", "pageviews"], ["device"], [], 0, 3),
        ["browsers"] = (["visitors"], ["browser"], [], 0, 3),
        ["campaigns"] = (["visitors", "visits"], ["utm_campaign"], [], 0, 3),
        ["events"] = (["visitors", "events"], ["event"], [], 0, 3),
        ["filtered by source"] = (["visitors", "visits", "pageviews"], [], [new("is", "source", ["Google", "Bing"])], 0, 3),
        ["filtered by page"] = (["visitors", "pageviews"], ["time:day"], [new("is", "page", ["/shoes"])], 0, 3),
        ["one device's row"] = (["visitors", "visits"], ["device"], [new("is", "device", ["Mobile"])], 0, 3),
        ["bots by page"] = (["bots"], ["page"], [], 0, 3),
    };

    [Theory]
    [MemberData(nameof(Questions))]
    public async Task A_question_answered_from_the_dimension_rollup_equals_the_scan_of_events(string question)
    {
        var (db, events) = await RolledUpAsync();
        var q = Query(question);
        var (answer, reason) = await new PreAggregateReader(engine.Store, db).TryAnswerAsync(q, Ct);
        Assert.True(answer is not null, $"the planner fell back: {reason}");
        Assert.True(q.Dimensions.Count == 0 || q.Filters.Count > 0 || answer!.Rows.Count > 1, "an unfiltered question with a dimension has several rows");
        Assert.NotEmpty(answer!.Rows);
        var scanned = await ScanAsync(db, q);
        Assert.Equal(Shape(scanned), Shape(answer!.Rows));
        Assert.Equal(scanned.Count, answer.TotalRows);
        CheckAgainstGenerator(question, q, answer.Rows, events);

        // A rebuilt site-day (new generation, rows of the old one deleted) answers the same.
        await RebuildAsync(db, Day0.AddDays(1));
        var (again, _) = await new PreAggregateReader(engine.Store, db).TryAnswerAsync(q, Ct);
        Assert.Equal(Shape(answer.Rows), Shape(again!.Rows));
        Assert.Equal(Shape(answer.Rows), Shape(await ScanAsync(db, q)));
    }

    public static IEnumerable<TheoryDataRow<string>> EngineQuestions() => EngineQuestionTable.Keys.Select(k => new TheoryDataRow<string>(k));

    /// <summary>Queries of POST /v1/query, normalised: (metrics, dimensions, filters).</summary>
    private static readonly Dictionary<string, (string[] Metrics, string[] Dimensions, (string Dimension, string Value)[] Filters)> EngineQuestionTable = new()
    {
        ["main graph"] = (["visitors", "visits", "pageviews", "views_per_visit", "events"], ["time:day"], []),
        ["top pages with their share"] = (["visitors", "pageviews", "percentage"], ["page"], []),
        ["pages with bots"] = (["bots", "pageviews"], ["page"], []),
        ["sources"] = (["visitors", "visits", "views_per_visit", "percentage"], ["source"], []),
        ["one source's rows"] = (["visitors", "visits"], ["source"], [("source", "Google")]),
        ["countries by week"] = (["visitors", "visits"], ["time:week", "country"], []),
        ["devices by month"] = (["visitors"], ["time:month", "device"], []),
        ["hostnames"] = (["visitors", "events"], ["hostname"], []),
        ["events"] = (["visitors", "events"], ["event"], []),
        ["a page's totals"] = (["visitors", "pageviews", "events"], [], [("page", "/shoes")]),
        ["campaigns by day"] = (["visits", "visitors"], ["time:day", "utm_campaign"], []),
        ["totals with bots"] = (["visitors", "visits", "pageviews", "events", "bots"], [], []),
    };

    [Theory]
    [MemberData(nameof(EngineQuestions))]
    public async Task The_query_engine_answers_the_same_with_and_without_the_planner_in_front_of_its_builder(string question)
    {
        var (db, _) = await RolledUpAsync();
        var (metrics, dimensions, filters) = EngineQuestionTable[question];
        var leaves = filters.Select((f, i) => (Analytics.QueryService.Query.Filter)new Analytics.QueryService.Query.FilterLeaf(
            "is", Analytics.QueryService.Query.QueryVocabulary.ParseDimension(f.Dimension)!, [f.Value], true, $"filters[{i}]")).ToList();
        var from = Day0;
        var q = new Analytics.QueryService.Query.NormalQuery(
            (long)Merchant, (long)Site, "site", from, from.AddDays(3), TimeZoneInfo.Utc, metrics,
            dimensions.Select(d => Analytics.QueryService.Query.QueryVocabulary.ParseDimension(d)!).ToList(),
            leaves.Count switch { 0 => null, 1 => leaves[0], _ => new Analytics.QueryService.Query.FilterAnd(leaves) },
            [new(metrics[0], true)], 10_000, 0, TimeLabels: true,
            // The previous three days have no events: the comparison rows are zeros from both paths.
            new Analytics.QueryService.Query.ComparisonRange("previous_period", from.AddDays(-3), from, false), [], "custom");
        Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is not null, $"the planner fell back: {reason}");

        var planned = await new Analytics.QueryService.Query.QueryEngine(engine.Store, db).AnswerAsync(q, Ct);
        var scanned = await new Analytics.QueryService.Query.QueryEngine(engine.Store, db) { UsePreAggregates = false }.AnswerAsync(q, Ct);
        Assert.Equal(scanned.ToJsonString(), planned.ToJsonString());
        Assert.NotEmpty(planned["results"]!.AsArray());
        // As a large site is read (LargeSiteFromVisits = 0): a top list's visitors summed per day.
        var large = await new Analytics.QueryService.Query.QueryEngine(engine.Store, db) { LargeSiteFromVisits = 0 }.AnswerAsync(q, Ct);
        Assert.Equal(scanned.ToJsonString(), large.ToJsonString());
        bool topList = dimensions.Any(d => !d.StartsWith("time:", StringComparison.Ordinal));
        Assert.Equal(topList && !metrics.Any(m => m.Contains("revenue", StringComparison.Ordinal)),
            NormalQueryPlanner.TryPlanRaw(q, db, 10, out _, largeSite: true)!.Contains("GROUP BY bucket", StringComparison.Ordinal));

        // As a large site is read when the engine keeps each past day's numbers (DailyRowsCache):
        // the first answer reads the days and keeps them, the second adds up the kept ones.
        var keeping = new Analytics.QueryService.Query.QueryEngine(engine.Store, db)
        {
            LargeSiteFromVisits = 0, GenerationActivations = new GenerationActivations(), SiteDayWrites = new SiteDayWrites(),
        };
        Assert.Equal(scanned.ToJsonString(), (await keeping.AnswerAsync(q, Ct)).ToJsonString());
        Assert.Equal(scanned.ToJsonString(), (await keeping.AnswerAsync(q, Ct)).ToJsonString());
        // Every one of these questions is the dimension rollup's (no goal, no revenue), so the
        // second answer added up kept days.
        Assert.True(keeping.DailyRows!.DaysKept > 0, "no day was kept");
    }

    /// <summary>
    /// The query engine's planned answers (the plans POST /v1/query runs) against distinct visitor
    /// ids counted here from the generated events over one, two and three days: the whole site,
    /// per page, and two sources in one filter, where a visitor who came from both counts once
    /// (the data has such visitors, so a sum per source would show).
    /// </summary>
    [Fact]
    public async Task Visitors_over_several_days_are_the_distinct_visitors_of_the_range()
    {
        var (db, events) = await RolledUpAsync();
        // A visit's source is its first event's utm_source, else its referrer (the generator sets
        // both on a visit's first event only): Google and Bing are the search engines' referrers.
        var firstReferrer = events.Where(g => !g.IsBot).GroupBy(g => g.Visit).ToDictionary(v => v.Key, v =>
        {
            var first = v.OrderBy(g => g.Event.ReceivedMs).First().Event;
            return first.Url.Contains("utm_source=", StringComparison.Ordinal) ? "utm" : first.Referrer;
        });
        // Both as a small site is read (each row's sets merged over the range) and as a large one
        // (LargeSiteFromVisits = 0: a top list's visitors counted per day and added up), also with
        // each past day's numbers kept (DailyRowsCache: the longer ranges add up days kept by the
        // shorter ones and days read now).
        var keeping = new Analytics.QueryService.Query.QueryEngine(engine.Store, db)
        {
            LargeSiteFromVisits = 0, GenerationActivations = new GenerationActivations(), SiteDayWrites = new SiteDayWrites(),
        };
        foreach (var planned in new[] { new Analytics.QueryService.Query.QueryEngine(engine.Store, db), new Analytics.QueryService.Query.QueryEngine(engine.Store, db) { LargeSiteFromVisits = 0 }, keeping })
        foreach (int days in new[] { 1, 2, 3 })
        {
            var people = events.Where(g => !g.IsBot && g.Event.SiteId == Site && g.Event.ReceivedMs < Day0.AddDays(days).ToUnixTimeMilliseconds()).ToList();
            Assert.Equal([$"[] {people.Select(g => g.Event.VisitorId).Distinct().Count()}"], await AskAsync(planned, days, "visitors", null, null));
            Assert.Equal(people.GroupBy(g => g.Path).Select(p => $"[\"{p.Key}\"] {p.Select(g => g.Event.VisitorId).Distinct().Count()}").Order(StringComparer.Ordinal),
                (await AskAsync(planned, days, "visitors", "page", null)).Order(StringComparer.Ordinal));
            var searched = people.Where(g => firstReferrer[g.Visit] is "https://www.google.com/" or "https://www.bing.com/search?q=shoes").ToList();
            Assert.True(searched.Select(g => g.Event.VisitorId).Distinct().Count()
                < searched.GroupBy(g => firstReferrer[g.Visit]).Sum(s => s.Select(g => g.Event.VisitorId).Distinct().Count()),
                "some visitor came from both sources: a sum of the two would count them twice");
            Assert.Equal([$"[] {searched.Select(g => g.Event.VisitorId).Distinct().Count()}"], await AskAsync(planned, days, "visitors", null, ["Google", "Bing"]));
            // By day and by week (Day0 is a Sunday: its week began on the Monday before, the
            // next days are the following week), the whole site and one source.
            static string Day(Generated g) => DateTimeOffset.FromUnixTimeMilliseconds(g.Event.ReceivedMs).UtcDateTime.ToString("yyyy-MM-dd");
            static string Week(Generated g) => DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeMilliseconds(g.Event.ReceivedMs).UtcDateTime) switch
                { var d => d.AddDays(-(((int)d.DayOfWeek + 6) % 7)).ToString("yyyy-MM-dd") };
            Assert.Equal(people.GroupBy(Day).Select(b => $"[\"{b.Key}\"] {b.Select(g => g.Event.VisitorId).Distinct().Count()}").Order(StringComparer.Ordinal),
                (await AskAsync(planned, days, "visitors", "time:day", null)).Order(StringComparer.Ordinal));
            Assert.Equal(people.GroupBy(Week).Select(b => $"[\"{b.Key}\"] {b.Select(g => g.Event.VisitorId).Distinct().Count()}").Order(StringComparer.Ordinal),
                (await AskAsync(planned, days, "visitors", "time:week", null)).Order(StringComparer.Ordinal));
            var google = people.Where(g => firstReferrer[g.Visit] == "https://www.google.com/").ToList();
            Assert.Equal(google.GroupBy(Day).Select(b => $"[\"{b.Key}\"] {b.Select(g => g.Event.VisitorId).Distinct().Count()}").Order(StringComparer.Ordinal),
                (await AskAsync(planned, days, "visitors", "time:day", ["Google"])).Order(StringComparer.Ordinal));
        }
        Assert.True(keeping.DailyRows!.DaysKept >= 12, $"{keeping.DailyRows.DaysKept} days kept"); // days 1-2 of the page, total, by-day and Google questions

        // The two sources' question (the planner's statement by day, kept per day) over the middle
        // day, then over all three: the first and last are read in one statement spanning the
        // kept middle day, whose rows there are not counted again. Between them a question of
        // another filter (two pages, against LINQ) keeps its own days under the same site.
        var gaps = new Analytics.QueryService.Query.QueryEngine(engine.Store, db)
        {
            GenerationActivations = new GenerationActivations(), SiteDayWrites = new SiteDayWrites(),
        };
        var all = events.Where(g => !g.IsBot && g.Event.SiteId == Site && firstReferrer[g.Visit] is "https://www.google.com/" or "https://www.bing.com/search?q=shoes").ToList();
        Assert.Equal([$"[] {all.Where(g => g.Event.ReceivedMs >= Day0.AddDays(1).ToUnixTimeMilliseconds() && g.Event.ReceivedMs < Day0.AddDays(2).ToUnixTimeMilliseconds()).Select(g => g.Event.VisitorId).Distinct().Count()}"],
            await AskAsync(gaps, 1, "visitors", null, ["Google", "Bing"], first: 1));
        var pages = new Analytics.QueryService.Query.FilterLeaf("is", Analytics.QueryService.Query.QueryVocabulary.ParseDimension("page")!, ["/shoes", "/cart"], true, "filters[0]");
        // A page filter selects the events on those pages: their distinct visitors.
        string OnPages(int first, int days) => $"[] {events.Where(g => !g.IsBot && g.Event.SiteId == Site && g.Path is "/shoes" or "/cart"
            && g.Event.ReceivedMs >= Day0.AddDays(first).ToUnixTimeMilliseconds() && g.Event.ReceivedMs < Day0.AddDays(first + days).ToUnixTimeMilliseconds())
            .Select(g => g.Event.VisitorId).Distinct().Count()}";
        Assert.Equal([OnPages(1, 1)], await AskAsync(gaps, 1, "visitors", null, null, first: 1, filter: pages));
        Assert.Equal([$"[] {all.Select(g => g.Event.VisitorId).Distinct().Count()}"], await AskAsync(gaps, 3, "visitors", null, ["Google", "Bing"]));
        Assert.Equal([OnPages(0, 3)], await AskAsync(gaps, 3, "visitors", null, null, filter: pages));
        Assert.Equal(2, gaps.DailyRows!.DaysKept); // the middle day, once per question

        async Task<List<string>> AskAsync(Analytics.QueryService.Query.QueryEngine planned, int days, string metric, string? dimension, string[]? sources,
            int first = 0, Analytics.QueryService.Query.Filter? filter = null)
        {
            var q = new Analytics.QueryService.Query.NormalQuery(
                (long)Merchant, (long)Site, "site", Day0.AddDays(first), Day0.AddDays(first + days), TimeZoneInfo.Utc, [metric],
                dimension is null ? [] : [Analytics.QueryService.Query.QueryVocabulary.ParseDimension(dimension)!],
                filter ?? (sources is null ? null : new Analytics.QueryService.Query.FilterLeaf("is", Analytics.QueryService.Query.QueryVocabulary.ParseDimension("source")!, sources, true, "filters[0]")),
                [new(metric, true)], 10_000, 0, TimeLabels: false, null, [], "custom");
            Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is not null, $"the planner fell back: {reason}");
            var answer = JsonNode.Parse((await planned.AnswerAsync(q, Ct)).ToJsonString())!["results"]!.AsArray();
            return answer.Select(r => $"{r!["dimensions"]!.ToJsonString()} {r["metrics"]![0]}").ToList();
        }
    }

    [Fact]
    public void Questions_the_rollup_cannot_answer_exactly_fall_back_with_a_reason()
    {
        var basis = new PreAggregateQuery(Merchant, Site, Day0, Day0.AddDays(3), TimeZoneInfo.Utc, ["visitors"], [], []);
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var cases = new Dictionary<string, PreAggregateQuery>
        {
            ["range not whole UTC days"] = basis with { From = Day0.AddHours(-1) },
            ["days of another zone"] = basis with { Dimensions = ["time:day"], TimeZone = berlin },
            ["hours"] = basis with { Dimensions = ["time:hour"] },
            ["bounce rate"] = basis with { Metrics = ["bounce_rate"] },
            ["visit duration"] = basis with { Metrics = ["visit_duration"] },
            ["two dimensions"] = basis with { Dimensions = ["source", "country"] },
            ["a dimension not held"] = basis with { Dimensions = ["exit_page"] },
            ["entry page"] = basis with { Dimensions = ["entry_page"] },
            ["a filter on another dimension"] = basis with { Dimensions = ["page"], Filters = [new("is", "country", ["DE"])] },
            ["contains"] = basis with { Filters = [new("contains", "page", ["/shoes"])] },
            ["case-insensitive"] = basis with { Filters = [new("is", "page", ["/shoes"], CaseSensitive: false)] },
            ["visits by page"] = basis with { Metrics = ["visits"], Dimensions = ["page"] },
            ["visits with a page filter"] = basis with { Metrics = ["visits"], Filters = [new("is", "page", ["/shoes"])] },
            ["bots by source"] = basis with { Metrics = ["bots"], Dimensions = ["source"] },
        };
        foreach (var (name, q) in cases)
        {
            Assert.True(PreAggregatePlanner.TryPlan(q, "db", out var reason) is null, $"{name}: planned");
            Assert.False(string.IsNullOrEmpty(reason), name);
        }
    }

    [Fact]
    public void The_planner_and_Rollup_agree_on_the_dimensions_the_rollup_holds()
    {
        Assert.Equal(DerivedRows.EventDimensions.Select(d => d.Dimension).Where(d => d.Length > 0).Order(),
            PreAggregatePlanner.EventDimensions.Order());
        Assert.Equal(DerivedRows.VisitDimensions.Select(d => d.Dimension).Order(), PreAggregatePlanner.VisitDimensions.Order());
    }

    private static PreAggregateQuery Query(string question)
    {
        var (metrics, dimensions, filters, fromDay, days) = QuestionTable[question];
        return new PreAggregateQuery(Merchant, Site, Day0.AddDays(fromDay), Day0.AddDays(fromDay + days), TimeZoneInfo.Utc, metrics, dimensions, filters);
    }

    private static List<string> Shape(IEnumerable<QueryRow> rows) =>
        rows.Select(r => string.Join(" | ", r.Dimensions) + " => " + string.Join(", ", r.Metrics.Select(m => m.ToString("0.##", CultureInfo.InvariantCulture))))
            .Order(StringComparer.Ordinal).ToList();

    /// <summary>The contract's definitions over events_enriched, written for this test: visit
    /// dimensions from each visit's first event (argMin), entry page from its first pageview.</summary>
    private async Task<List<QueryRow>> ScanAsync(string db, PreAggregateQuery q)
    {
        static string VisitValue(string dimension) => dimension switch
        {
            "source" => "argMin(referrer_source, (received_at, event_id))",
            "country" or "region" or "city" or "device" or "browser" or "os" or "channel" or "utm_source" or "utm_medium" or "utm_campaign"
                => $"argMin({dimension}, (received_at, event_id))",
            _ => throw new ArgumentException(dimension),
        };
        static string EventValue(string dimension) => dimension switch
        {
            "page" => "e.pathname",
            "hostname" => "e.hostname",
            "event" => "e.name",
            "time:day" => "toString(toDate(e.received_at))",
            _ => $"v.v_{dimension}",
        };
        var visitDims = q.Dimensions.Concat(q.Filters.Select(f => f.Dimension)).Distinct().Where(PreAggregatePlanner.VisitDimensions.Contains).ToList();
        bool bots = q.Metrics.Contains("bots");
        string range = string.Create(CultureInfo.InvariantCulture,
            $"merchant_id = {q.MerchantId} AND site_id = {q.SiteId} AND received_at >= fromUnixTimestamp64Milli({q.From.ToUnixTimeMilliseconds()}, 'UTC') " +
            $"AND received_at < fromUnixTimestamp64Milli({q.To.ToUnixTimeMilliseconds()}, 'UTC') " +
            $"AND (toDate(received_at), generation) IN (SELECT day, argMax(generation, activated_at) FROM {db}.generations WHERE merchant_id = {q.MerchantId} AND site_id = {q.SiteId} GROUP BY day " +
            $"UNION ALL SELECT DISTINCT toDate(received_at), toUInt64(0) FROM {db}.events_enriched WHERE merchant_id = {q.MerchantId} AND site_id = {q.SiteId} " +
            $"AND toDate(received_at) NOT IN (SELECT day FROM {db}.generations WHERE merchant_id = {q.MerchantId} AND site_id = {q.SiteId}))");
        string people = bots ? "e.is_bot = 1" : "e.is_bot = 0";
        string visits = visitDims.Count == 0 ? "" :
            $"LEFT JOIN (SELECT visit_id, {string.Join(", ", visitDims.Select(d => $"{VisitValue(d)} AS v_{d}"))} FROM {db}.events_enriched " +
            $"WHERE {range} AND is_bot = 0 GROUP BY visit_id) AS v ON e.visit_id = v.visit_id";
        var where = new List<string> { people };
        foreach (var f in q.Filters)
            where.Add($"{EventValue(f.Dimension)} IN ({string.Join(", ", f.Values.Select(ClickHouseSql.StringLiteral))})");
        string Metric(string m) => m switch
        {
            "visitors" => "uniqExact(e.visitor_id)",
            "visits" => "uniqExact(e.visit_id)",
            "pageviews" => "countIf(e.name = 'pageview')",
            "events" => "countIf(e.name != 'engagement')",
            "views_per_visit" => "round(countIf(e.name = 'pageview') / uniqExact(e.visit_id), 2)",
            "bots" => "count()",
            "percentage" => $"round(uniqExact(e.visitor_id) * 100 / (SELECT uniqExact(e.visitor_id) FROM (SELECT * FROM {db}.events_enriched WHERE {range}) AS e {visits} WHERE {string.Join(" AND ", where)}), 1)",
            _ => throw new ArgumentException(m),
        };
        var select = q.Dimensions.Select(d => EventValue(d)).Concat(q.Metrics.Select(Metric));
        string sql = $"SELECT {string.Join(", ", select)} FROM (SELECT * FROM {db}.events_enriched WHERE {range}) AS e {visits} WHERE {string.Join(" AND ", where)}" +
            (q.Dimensions.Count > 0 ? $" GROUP BY {string.Join(", ", q.Dimensions.Select(EventValue))}" : "");
        var rows = await engine.Store.QueryRowsAsync(sql, Ct);
        return rows.Select(r => new QueryRow(
            r.Take(q.Dimensions.Count).Select(v => v.GetString()!).ToList(),
            r.Skip(q.Dimensions.Count).Select(v => v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0).ToList())).ToList();
    }

    /// <summary>Where the generator knows the answer without any engine: totals, per day and per page.</summary>
    private static void CheckAgainstGenerator(string question, PreAggregateQuery q, IReadOnlyList<QueryRow> rows, List<Generated> all)
    {
        var people = all.Where(g => !g.IsBot && g.Event.SiteId == Site && g.Event.ReceivedMs >= q.From.ToUnixTimeMilliseconds() && g.Event.ReceivedMs < q.To.ToUnixTimeMilliseconds()).ToList();
        if (question == "totals")
        {
            Assert.Equal(people.Select(g => g.Event.VisitorId).Distinct().Count(), rows[0].Metrics[0]);
            Assert.Equal(people.Select(g => g.Visit).Distinct().Count(), rows[0].Metrics[1]);
            Assert.Equal(people.Count(g => g.Event.Name == "pageview"), rows[0].Metrics[2]);
            Assert.Equal(people.Count(g => g.Event.Name != "engagement"), rows[0].Metrics[3]);
        }
        if (question is "top pages" or "top pages of one day")
        {
            var expected = people.GroupBy(g => g.Path)
                .Select(p => $"{p.Key} => {p.Select(g => g.Event.VisitorId).Distinct().Count()}, {p.Count(g => g.Event.Name == "pageview")}")
                .Order(StringComparer.Ordinal);
            Assert.Equal(expected, rows.Select(r => $"{r.Dimensions[0]} => {r.Metrics[0]}, {r.Metrics[1]}").Order(StringComparer.Ordinal));
        }
        if (question == "main graph")
        {
            var expected = people.GroupBy(g => DateTimeOffset.FromUnixTimeMilliseconds(g.Event.ReceivedMs).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))
                .Select(d => $"{d.Key} => {d.Select(g => g.Event.VisitorId).Distinct().Count()}, {d.Select(g => g.Visit).Distinct().Count()}, {d.Count(g => g.Event.Name == "pageview")}");
            Assert.Equal(expected.Order(StringComparer.Ordinal), rows.Select(r => $"{r.Dimensions[0]} => {r.Metrics[0]}, {r.Metrics[1]}, {r.Metrics[2]}").Order(StringComparer.Ordinal));
        }
    }

    private static readonly SemaphoreSlim s_once = new(1, 1);
    private static (string Db, List<Generated> Events)? s_rolledUp;

    /// <summary>The generated events stored by the real Rollup, once for the whole class (every
    /// question reads the same data; the rebuild in each question changes no number).</summary>
    private async Task<(string Db, List<Generated> Events)> RolledUpAsync()
    {
        await s_once.WaitAsync(Ct);
        try
        {
            if (s_rolledUp is { } done) return done;
            string db = "preagg_" + Guid.NewGuid().ToString("N")[..12];
            string dir = Path.Combine(Path.GetTempPath(), db);
            await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
            var events = Generate();
            try
            {
                await using (var log = LocalLog.Open(Path.Combine(dir, "log")))
                {
                    foreach (var chunk in events.Chunk(97)) await LogRecords.AppendAsync(log, Merchant, chunk.Select(g => g.Event), Ct);
                    var status = new RollupStatus();
                    // Rounds of 250 records: a visit's events land in several rounds, so its entry
                    // must come from the Sessionizer, not from the round.
                    var options = new RollupOptions { Database = db, QuarantineDirectory = Path.Combine(dir, "quarantine"), MaxBatchRecords = 250, MaxWait = TimeSpan.FromMilliseconds(20), MinRoundInterval = TimeSpan.Zero };
                    using var worker = new RollupWorker(log, engine.Store, options, new ProcessingLogic(engine.Enrichment), status,
                        new ReprocessQueue(Path.Combine(dir, "jobs")), NullLogger<RollupWorker>.Instance);
                    await worker.StartAsync(Ct);
                    var deadline = DateTime.UtcNow.AddSeconds(90);
                    while (status.EventsStored < events.Count && DateTime.UtcNow < deadline) await Task.Delay(50, Ct);
                    await worker.StopAsync(CancellationToken.None);
                    Assert.Equal(events.Count, status.EventsStored);
                }
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

    private async Task RebuildAsync(string db, DateTimeOffset day)
    {
        var generations = new Generations(engine.Store, db);
        var rebuilder = new SiteDayRebuilder(engine.Store, db, generations, new ProcessingLogic(engine.Enrichment));
        await rebuilder.RebuildAsync(Merchant, Site, DateOnly.FromDateTime(day.UtcDateTime), ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
    }

    /// <summary>
    /// Three UTC days of two sites: per day 30 people, each with 1-3 visits at least 40 minutes
    /// apart (so the 30-minute rule separates them), each visit 1-7 events under 10 minutes
    /// apart, most starting with a pageview, some with a signup (entry page: the first pageview
    /// after it, or none); engagement pings and signups mixed in; a bot crawling
    /// pages. Visitor ids are per day (the real salt rotates at UTC midnight). Sorted by time:
    /// the log's order is receive order.
    /// </summary>
    private static List<Generated> Generate()
    {
        var random = new Random(20261130);
        var events = new List<Generated>();
        int visitNo = 0;
        foreach (ulong site in new[] { Site, OtherSite })
        {
            for (int day = 0; day < 3; day++)
            {
                for (int person = 0; person < 30; person++)
                {
                    ulong visitor = (ulong)random.NextInt64(1, long.MaxValue);
                    string ua = Browsers[random.Next(Browsers.Length)], ip = IpPrefixes[random.Next(IpPrefixes.Length)];
                    long t = Day0.AddDays(day).ToUnixTimeMilliseconds() + random.Next(0, 3600) * 1000L;
                    int visits = random.Next(1, 4);
                    for (int v = 0; v < visits; v++, visitNo++)
                    {
                        string referrer = Referrers[random.Next(Referrers.Length)];
                        string utm = random.Next(4) == 0 ? "?utm_source=newsletter&utm_medium=email&utm_campaign=spring" : "";
                        int n = random.Next(1, 8);
                        for (int i = 0; i < n; i++)
                        {
                            string path = Pages[random.Next(Pages.Length)];
                            string name = i == 0 ? (random.Next(8) == 0 ? "signup" : "pageview") : random.Next(6) switch { 0 => "engagement", 1 => "signup", _ => "pageview" };
                            events.Add(new Generated(Event(site, visitor, t, name, "https://shop.example" + path + (i == 0 ? utm : ""),
                                i == 0 ? referrer : "https://shop.example/", ua, ip), false, visitNo, path));
                            t += random.Next(5, 600) * 1000L;
                        }
                        t += random.Next(40, 120) * 60_000L;
                    }
                }
                long crawl = Day0.AddDays(day).ToUnixTimeMilliseconds() + 7_200_000;
                for (int i = 0; i < 12; i++)
                {
                    string path = Pages[i % Pages.Length];
                    events.Add(new Generated(Event(site, 424242, crawl + i * 1000, "pageview", "https://shop.example" + path, "", Bot, "66.249.66.0/24"), true, -1, path));
                }
            }
        }
        return events.OrderBy(g => g.Event.ReceivedMs).ToList();
    }

    private static StoredEvent Event(ulong site, ulong visitor, long receivedMs, string name, string url, string referrer, string userAgent, string ip) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        MerchantId = Merchant,
        SiteId = site,
        ReceivedMs = receivedMs,
        ClientTimeMs = receivedMs,
        Name = name,
        Url = url,
        Referrer = referrer,
        ScreenWidth = 1280,
        VisitorId = visitor,
        IpPrefix = ip,
        UserAgent = userAgent,
    };
}
