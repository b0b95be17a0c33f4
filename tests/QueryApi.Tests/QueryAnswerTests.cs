using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// Small answers of <c>/v1/query</c> whose expected values are worked out by hand from
/// docs/query-api.md's definitions over the traffic below (all on 2026-01-15, UTC):
///
///   A  10:00 pageview /  (from https://www.google.com/)   10:05 pageview /blog
///      10:06 signup (/checkout)                            10:07 engagement 30 s (/blog)
///   B  11:00 pageview /                                    (a bounce)
///   C  10:30 pageview /blog                                10:40 purchase 12.50 EUR (/checkout)
///   bot 10:00 pageview /
///   D  2026-01-14 23:30 pageview /late  (the day before in UTC; 2026-01-15 00:30 in Berlin)
///
/// visitors 3, visits 3, pageviews 4, events 6 (engagement is not an event), bots 1;
/// bounce rate 1/3 = 33.3 %; views per visit 4/3 = 1.33; durations A 420 s, B 0, C 600 s: mean
/// 340 s; time on page 30 s / 4 pageviews = 7.5 s.
/// </summary>
public class QueryAnswerTests(EngineFixture engine)
{
    private static readonly DateTimeOffset Day = QueryHost.Day;

    private static async Task<QueryHost> StartWithTrafficAsync(EngineFixture engine)
    {
        var host = await QueryHost.StartAsync(engine);
        try
        {
            string a = QueryHost.Visitor("A"), b = QueryHost.Visitor("B"), c = QueryHost.Visitor("C");
            await host.SendAsync(QueryHost.Visitor("D"), Day.AddMinutes(-30), QueryHost.Page("/late"));
            await host.SendAsync(a, Day.AddHours(10), QueryHost.Page("/", "https://www.google.com/"));
            await host.SendAsync(QueryHost.Bot, Day.AddHours(10), QueryHost.Page("/"));
            await host.SendAsync(a, Day.AddHours(10).AddMinutes(5), QueryHost.Page("/blog"));
            await host.SendAsync(a, Day.AddHours(10).AddMinutes(6), QueryHost.Custom("signup"));
            await host.SendAsync(a, Day.AddHours(10).AddMinutes(7), QueryHost.Custom("engagement", "/blog", engagementMs: 30_000));
            await host.SendAsync(c, Day.AddHours(10).AddMinutes(30), QueryHost.Page("/blog"));
            await host.SendAsync(c, Day.AddHours(10).AddMinutes(40), QueryHost.Custom("purchase", revenueMicros: 12_500_000, currency: "EUR"));
            await host.SendAsync(b, Day.AddHours(11), QueryHost.Page("/"));
            await host.WaitForStoredAsync();
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    private static object Query(QueryHost host, string[] metrics, string[]? dimensions = null, object[]? filters = null, object? include = null, object? dateRange = null) => new
    {
        site_id = host.Site.PublicId,
        date_range = dateRange ?? new[] { "2026-01-15", "2026-01-15" },
        metrics,
        dimensions = dimensions ?? [],
        filters = filters ?? [],
        include,
    };

    private static string Rows(JsonElement body) => string.Join(" | ", body.GetProperty("results").EnumerateArray().Select(r =>
        string.Join(",", r.GetProperty("dimensions").EnumerateArray().Select(d => d.ToString())) + ":" +
        string.Join(",", r.GetProperty("metrics").EnumerateArray().Select(m => m.GetRawText()))));

    [Fact]
    public async Task Totals_visit_metrics_revenue_and_bots_match_the_hand_computed_values()
    {
        await using var host = await StartWithTrafficAsync(engine);
        var body = await host.AnswerAsync(Query(host, ["visitors", "visits", "pageviews", "events", "bounce_rate", "views_per_visit", "visit_duration", "time_on_page", "total_revenue", "average_revenue", "bots"]));
        Assert.Equal(":3,3,4,6,33.3,1.33,340,7.5,{\"EUR\":12.5},{\"EUR\":12.5},1", Rows(body));
        Assert.Equal(1, body.GetProperty("meta").GetProperty("total_rows").GetInt32());
        Assert.Equal("2026-01-15T00:00:00+00:00", body.GetProperty("query").GetProperty("date_range")[0].GetString());
        Assert.Equal("2026-01-16T00:00:00+00:00", body.GetProperty("query").GetProperty("date_range")[1].GetString());
    }

    [Fact]
    public async Task Reprocessing_the_day_into_a_new_generation_leaves_the_answers_unchanged()
    {
        await using var host = await StartWithTrafficAsync(engine);
        // Reprocessing rewrites the day's enriched events as a new generation and activates it.
        await host.Host.ReprocessAsync(new { merchantId = host.Site.MerchantId, from = "2026-01-15", to = "2026-01-15" });
        var body = await host.AnswerAsync(Query(host, ["visitors", "visits", "pageviews", "events", "bounce_rate", "bots"]));
        Assert.Equal(":3,3,4,6,33.3,1", Rows(body));
        Assert.Equal("Direct / None:2,2 | Google:1,2", Rows(await host.AnswerAsync(Query(host, ["visitors", "pageviews"], ["source"]))));
    }

    [Fact]
    public async Task Hours_with_time_labels_fill_every_bucket_and_pages_and_sources_group_as_defined()
    {
        await using var host = await StartWithTrafficAsync(engine);
        var hours = await host.AnswerAsync(Query(host, ["visitors", "pageviews"], ["time:hour"], include: new { time_labels = true }));
        Assert.Equal(24, hours.GetProperty("meta").GetProperty("total_rows").GetInt32());
        Assert.Equal(24, hours.GetProperty("meta").GetProperty("time_labels").GetArrayLength());
        var rows = hours.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal("2026-01-15 00:00:00:0,0", Rows(JsonDocument.Parse($"{{\"results\":[{rows[0].GetRawText()}]}}").RootElement));
        Assert.Equal("2026-01-15 10:00:00:2,3 | 2026-01-15 11:00:00:1,1",
            Rows(JsonDocument.Parse($"{{\"results\":[{rows[10].GetRawText()},{rows[11].GetRawText()}]}}").RootElement));

        // Pages: visitors desc, ties by the page ascending. /checkout has the two custom events.
        var pages = await host.AnswerAsync(Query(host, ["visitors", "pageviews", "events"], ["page"]));
        Assert.Equal("/:2,2,2 | /blog:2,2,2 | /checkout:2,0,2", Rows(pages));

        // Sources are the visit's first event's: A came from Google, B and C directly.
        var sources = await host.AnswerAsync(Query(host, ["visitors", "visits", "pageviews", "bounce_rate"], ["source"]));
        Assert.Equal("Direct / None:2,2,2,50 | Google:1,1,2,0", Rows(sources));
    }

    [Fact]
    public async Task Event_filters_select_events_and_visit_filters_select_whole_visits()
    {
        await using var host = await StartWithTrafficAsync(engine);
        var blog = await host.AnswerAsync(Query(host, ["visitors", "pageviews", "events"], filters: [new object[] { "is", "page", new[] { "/blog" } }]));
        Assert.Equal(":2,2,2", Rows(blog));
        var google = await host.AnswerAsync(Query(host, ["visitors", "pageviews", "events"], filters: [new object[] { "is", "source", new[] { "Google" } }]));
        Assert.Equal(":1,2,3", Rows(google));
        var insensitive = await host.AnswerAsync(Query(host, ["pageviews"], filters: [new object[] { "contains", "page", new[] { "BLO" }, new { case_sensitive = false } }]));
        Assert.Equal(":2", Rows(insensitive));
        var sensitive = await host.AnswerAsync(Query(host, ["pageviews"], filters: [new object[] { "contains", "page", new[] { "BLO" } }]));
        Assert.Equal(":0", Rows(sensitive));
        var regex = await host.AnswerAsync(Query(host, ["pageviews"], filters: [new object[] { "matches", "page", new[] { "^/b" } }]));
        Assert.Equal(":2", Rows(regex));
        // Not (Google visits or /checkout events): B's and C's pageviews, C's purchase excluded.
        var combined = await host.AnswerAsync(Query(host, ["visitors", "events"],
            filters: [new object[] { "not", new object[] { "or", new object[] { new object[] { "is", "source", new[] { "Google" } }, new object[] { "is", "page", new[] { "/checkout" } } } } }]));
        Assert.Equal(":2,2", Rows(combined));
    }

    [Fact]
    public async Task Goals_count_conversions_and_rates_against_all_visitors()
    {
        await using var host = await StartWithTrafficAsync(engine);
        host.Store.CreateGoal(host.Site.SiteId, "Signup", "event", "signup");
        host.Store.CreateGoal(host.Site.SiteId, "Blog", "page", "/blog**");
        var goals = await host.AnswerAsync(Query(host, ["visitors", "conversions", "conversion_rate"], ["goal"]));
        // Blog: A and C viewed /blog (2 of 3 visitors); Signup: A (1 of 3).
        Assert.Equal("Blog:2,2,66.7 | Signup:1,1,33.3", Rows(goals));
        var filtered = await host.AnswerAsync(Query(host, ["visitors", "conversions", "conversion_rate"], filters: [new object[] { "is", "goal", new[] { "Signup" } }]));
        Assert.Equal(":1,1,33.3", Rows(filtered));
    }

    [Fact]
    public async Task Realtime_counts_the_last_five_minutes_and_the_GET_form_answers_the_same()
    {
        await using var host = await StartWithTrafficAsync(engine);
        host.Clock.Now = Day.AddHours(11).AddMinutes(2);
        var query = Query(host, ["visitors", "pageviews"], dateRange: "realtime");
        var post = await host.AnswerAsync(query);
        Assert.Equal(":1,1", Rows(post));
        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/query?query=" + Uri.EscapeDataString(JsonSerializer.Serialize(query)));
        var (status, body) = await host.SendAsync(get, null);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(post.GetRawText(), body.GetRawText());
    }

    [Fact]
    public async Task The_previous_period_is_the_day_before_with_changes_in_percent_and_points()
    {
        await using var host = await StartWithTrafficAsync(engine);
        var body = await host.AnswerAsync(Query(host, ["visitors", "bounce_rate", "pageviews"], include: new { comparisons = new { mode = "previous_period" } }));
        var row = body.GetProperty("results")[0];
        // 14 January: D alone, one pageview, a bounce. Visitors 3 vs 1: +200 %; bounce rate 33.3 vs 100: -66.7 points.
        Assert.Equal("[1,100,1]", row.GetProperty("comparison").GetProperty("metrics").GetRawText());
        Assert.Equal("[200,-66.7,300]", row.GetProperty("comparison").GetProperty("change").GetRawText());
        Assert.Equal("[\"2026-01-14T00:00:00+00:00\",\"2026-01-15T00:00:00+00:00\"]", body.GetProperty("meta").GetProperty("comparison_date_range").GetRawText());
        // Against 13 January (nothing): changes are null, a rate's points too (no visits then: no bounce rate to change from).
        var custom = await host.AnswerAsync(Query(host, ["visitors", "bounce_rate"], include: new { comparisons = new { mode = "custom", date_range = new[] { "2026-01-13", "2026-01-13" } } }));
        Assert.Equal("[null,null]", custom.GetProperty("results")[0].GetProperty("comparison").GetProperty("change").GetRawText());
    }

    [Fact]
    public async Task Entry_and_exit_pages_shares_pages_of_rows_group_conversion_rates_and_a_local_time_zone()
    {
        await using var host = await StartWithTrafficAsync(engine);
        // Entry: A and B on /, C on /blog. Exit (last pageview): A and C on /blog, B on /.
        Assert.Equal("/:2 | /blog:1", Rows(await host.AnswerAsync(Query(host, ["visits"], ["entry_page"]))));
        Assert.Equal("/blog:2 | /:1", Rows(await host.AnswerAsync(Query(host, ["visits"], ["exit_page"]))));
        // Each page was seen by 2 of the 3 visitors.
        var pages = await host.AnswerAsync(new
        {
            site_id = host.Site.PublicId, date_range = new[] { "2026-01-15", "2026-01-15" }, metrics = new[] { "visitors", "percentage" },
            dimensions = new[] { "page" }, order_by = new[] { new[] { "page", "desc" } }, pagination = new { limit = 1, offset = 1 },
        });
        Assert.Equal("/blog:2,66.7", Rows(pages));
        Assert.Equal(3, pages.GetProperty("meta").GetProperty("total_rows").GetInt32());

        host.Store.CreateGoal(host.Site.SiteId, "Signup", "event", "signup");
        host.Store.CreateGoal(host.Site.SiteId, "Blog", "page", "/blog");
        // Blog by Direct: C of the direct visitors B and C (50 %); A is Google's only visitor (100 %).
        Assert.Equal("Blog,Direct / None:1,50 | Blog,Google:1,100 | Signup,Google:1,100",
            Rows(await host.AnswerAsync(Query(host, ["visitors", "group_conversion_rate"], ["goal", "source"]))));

        // In Berlin, 15 January runs from 14 January 23:00 UTC: D's 23:30 pageview is its first hour.
        var berlin = await host.AnswerAsync(new
        {
            site_id = host.Site.PublicId, date_range = new[] { "2026-01-15", "2026-01-15" }, timezone = "Europe/Berlin",
            metrics = new[] { "visitors", "pageviews" }, dimensions = new[] { "time:hour" },
        });
        Assert.Equal("2026-01-15 00:00:00:1,1 | 2026-01-15 11:00:00:2,3 | 2026-01-15 12:00:00:1,1", Rows(berlin));
        Assert.Equal("2026-01-15T00:00:00+01:00", berlin.GetProperty("query").GetProperty("date_range")[0].GetString());
    }
}

public class QueryTimeLimitTests(EngineFixture engine)
{
    [Fact]
    public async Task A_statement_past_the_engine_time_limit_answers_503_with_Retry_After()
    {
        await using var host = await QueryHost.StartAsync(engine);
        for (int i = 0; i < 20; i++)
            await host.SendAsync(QueryHost.Visitor("V" + i), QueryHost.Day.AddMinutes(i), QueryHost.Page("/p" + i), QueryHost.Custom("signup"));
        await host.WaitForStoredAsync();
        // The limit is ClickHouse's max_execution_time; a microsecond makes any statement exceed it.
        host.Host.App.Services.GetRequiredService<Analytics.QueryService.Query.QueryEngine>().MaxExecutionSeconds = 0.000001;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/query")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new
            {
                site_id = host.Site.PublicId, date_range = new[] { "2026-01-15", "2026-01-15" }, metrics = new[] { "visitors", "bounce_rate" },
                dimensions = new[] { "time:minute", "source" },
            }),
        };
        using var response = await host.Host.Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(30), response.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task A_funnel_past_the_engine_time_limit_answers_503_with_Retry_After_too()
    {
        await using var host = await QueryHost.StartAsync(engine);
        var store = host.Host.App.Services.GetRequiredService<Analytics.ControlPlane.SiteRegistry>().Store;
        store.CreateGoal(host.Site.SiteId, "Page", "page", "/p*");
        store.CreateGoal(host.Site.SiteId, "Signup", "event", "signup");
        for (int i = 0; i < 20; i++)
            await host.SendAsync(QueryHost.Visitor("V" + i), QueryHost.Day.AddMinutes(i), QueryHost.Page("/p" + i), QueryHost.Custom("signup"));
        await host.WaitForStoredAsync();
        string json = $$"""{"site_id": "{{host.Site.PublicId}}", "date_range": ["2026-01-15", "2026-01-15"], "steps": ["Page", "Signup"]}""";
        Assert.Equal(HttpStatusCode.OK, (await GoalApiTests.SendAsync(host.Host.Http, HttpMethod.Post, "/v1/funnel", json)).Status);

        host.Host.App.Services.GetRequiredService<Analytics.QueryService.Query.QueryEngine>().MaxExecutionSeconds = 0.000001;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/funnel") { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
        using var response = await host.Host.Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(30), response.Headers.RetryAfter?.Delta);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}

/// <summary>
/// Properties, hostnames, revenue in two currencies and negated or case-insensitive filters, over
/// (2026-01-15 UTC): E 09:00 pageview /pricing {plan: pro}, 09:01 purchase 10 EUR {plan: pro};
/// F 09:02 purchase 5.50 USD, 09:03 purchase 4.50 USD (both at /checkout).
/// </summary>
public class QueryPropertyAndRevenueTests(EngineFixture engine)
{
    private static Analytics.Contracts.V1.Event WithPlan(Analytics.Contracts.V1.Event e)
    {
        e.Props.Add(new Analytics.Contracts.V1.Property { Key = "plan", Value = "pro" });
        return e;
    }

    [Fact]
    public async Task Properties_hostnames_currencies_and_negated_filters_answer_as_defined()
    {
        await using var host = await QueryHost.StartAsync(engine);
        var day = QueryHost.Day;
        string e = QueryHost.Visitor("E"), f = QueryHost.Visitor("F");
        await host.SendAsync(e, day.AddHours(9), WithPlan(QueryHost.Page("/pricing")));
        await host.SendAsync(e, day.AddHours(9).AddMinutes(1), WithPlan(QueryHost.Custom("purchase", revenueMicros: 10_000_000, currency: "EUR")));
        await host.SendAsync(f, day.AddHours(9).AddMinutes(2), QueryHost.Custom("purchase", revenueMicros: 5_500_000, currency: "USD"));
        await host.SendAsync(f, day.AddHours(9).AddMinutes(3), QueryHost.Custom("purchase", revenueMicros: 4_500_000, currency: "USD"));
        await host.WaitForStoredAsync();

        async Task<JsonElement> Ask(string[] metrics, string[]? dimensions = null, object[]? filters = null) => (await host.AnswerAsync(new
        {
            site_id = host.Site.PublicId, date_range = new[] { "2026-01-15", "2026-01-15" }, metrics, dimensions = dimensions ?? [], filters = filters ?? [],
        })).GetProperty("results");
        string Flat(JsonElement results) => string.Join(" | ", results.EnumerateArray().Select(r =>
            string.Join(",", r.GetProperty("dimensions").EnumerateArray().Select(d => d.GetString())) + ":" +
            string.Join(",", r.GetProperty("metrics").EnumerateArray().Select(m => m.ValueKind == JsonValueKind.Object
                ? "{" + string.Join(",", m.EnumerateObject().Select(p => $"{p.Name}={p.Value.GetDecimal():0.##}")) + "}"
                : m.GetDecimal().ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)))));

        Assert.Equal(":2 | pro:2", Flat(await Ask(["events"], ["props:plan"])));
        Assert.Equal("shop.example:4", Flat(await Ask(["events"], ["hostname"])));
        Assert.Equal(":{EUR=10,USD=10},{EUR=10,USD=5}", Flat(await Ask(["total_revenue", "average_revenue"])));
        Assert.Equal("purchase:{EUR=10,USD=10},3", Flat(await Ask(["total_revenue", "events"], ["event"], [new object[] { "is_not", "page", new[] { "/pricing" } }])));
        Assert.Equal(":1", Flat(await Ask(["pageviews"], filters: [new object[] { "is", "page", new[] { "/PRICING" }, new { case_sensitive = false } }])));
        Assert.Equal(":1", Flat(await Ask(["events"], filters: [new object[] { "matches_not", "page", new[] { "^/check" } }])));
        Assert.Equal(":1,2", Flat(await Ask(["visitors", "events"], filters: [new object[] { "is", "props:plan", new[] { "pro" } }])));
    }
}
