using System.Net;
using System.Text;
using System.Text.Json;
using Analytics.ControlPlane;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// Every refusal rule of docs/query-api.md, one case each: the status, the <c>field</c> (JSON
/// path) and that the detail names the reason. The cases share one host: a refused query
/// writes nothing.
/// </summary>
public class QueryRefusalTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A request body with SITE standing for the test site's public id.</summary>
    private sealed record Case(string Body, string Field, string Reason);

    private const string Ok = "\"site_id\":\"SITE\",\"date_range\":\"7d\"";

    private static readonly Case[] Cases =
    [
        new("{", "$", "not valid JSON"),
        new("[]", "$", "must be a JSON object"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"metricz\":[]}}", "metricz", "Unknown field 'metricz'"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"include\":{{\"labels\":true}}}}", "include.labels", "Unknown field 'labels'"),
        new("{\"date_range\":\"7d\",\"metrics\":[\"visitors\"]}", "site_id", "site_id is required"),
        new("{\"site_id\":7,\"date_range\":\"7d\",\"metrics\":[\"visitors\"]}", "site_id", "must be a string"),
        new("{\"site_id\":\"SITE\",\"metrics\":[\"visitors\"]}", "date_range", "date_range is required"),
        new("{\"site_id\":\"SITE\",\"date_range\":\"8d\",\"metrics\":[\"visitors\"]}", "date_range", "Unknown date range '8d'"),
        new("{\"site_id\":\"SITE\",\"date_range\":[\"2026-13-01\",\"2026-12-31\"],\"metrics\":[\"visitors\"]}", "date_range[0]", "neither a date"),
        new("{\"site_id\":\"SITE\",\"date_range\":[\"2026-01-01T00:00:00\",\"2026-01-02T00:00:00Z\"],\"metrics\":[\"visitors\"]}", "date_range[0]", "with offset"),
        new("{\"site_id\":\"SITE\",\"date_range\":[\"2026-01-02\",\"2026-01-01\"],\"metrics\":[\"visitors\"]}", "date_range", "The range is empty"),
        new("{\"site_id\":\"SITE\",\"date_range\":[\"2000-01-01\",\"2020-01-01\"],\"metrics\":[\"visitors\"]}", "date_range", "20 years"),
        new("{\"site_id\":\"SITE\",\"date_range\":[\"1969-12-31\",\"1970-01-02\"],\"metrics\":[\"visitors\"]}", "date_range[0]", "outside the years 1970-9000"),
        new($"{{{Ok},\"timezone\":\"Mars/Olympus\",\"metrics\":[\"visitors\"]}}", "timezone", "Unknown time zone"),
        new($"{{{Ok},\"timezone\":\"\",\"metrics\":[\"visitors\"]}}", "timezone", "non-empty string"),
        // The system's zone data has it, ClickHouse's does not.
        new($"{{{Ok},\"timezone\":\"right/UTC\",\"metrics\":[\"visitors\"]}}", "timezone", "the database does not know it"),
        new($"{{{Ok}}}", "metrics", "metrics is required"),
        new($"{{{Ok},\"metrics\":[]}}", "metrics", "1 to 20 metrics"),
        new($"{{{Ok},\"metrics\":[{string.Join(",", Enumerable.Repeat("\"visitors\"", 21))}]}}", "metrics", "1 to 20 metrics"),
        new($"{{{Ok},\"metrics\":[\"visitors\",\"vistors\"]}}", "metrics[1]", "Unknown metric \"vistors\""),
        new($"{{{Ok},\"metrics\":[\"visitors\",\"visitors\"]}}", "metrics[1]", "repeated"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"dimensions\":[\"page\",\"source\",\"country\",\"device\"]}}", "dimensions", "At most 3 dimensions"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"dimensions\":[\"pages\"]}}", "dimensions[0]", "Unknown dimension \"pages\""),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"dimensions\":[\"time:day\",\"time:hour\"]}}", "dimensions[1]", "one time dimension"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"dimensions\":[\"page\",\"page\"]}}", "dimensions[1]", "repeated"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[\"is\"]}}", "filters[0]", "A filter is"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"equals\",\"page\",[\"/\"]]]}}", "filters[0][0]", "Unknown filter operator 'equals'"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"path\",[\"/\"]]]}}", "filters[0][1]", "Unknown dimension \"path\""),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"time:day\",[\"2026-01-01\"]]]}}", "filters[0][1]", "Time dimensions cannot be filtered"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"page\",[]]]}}", "filters[0][2]", "non-empty list of strings"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"page\",[1]]]}}", "filters[0][2][0]", "Filter values are strings"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"page\",[\"/\"],{{\"case\":false}}]]}}", "filters[0][3].case", "Unknown field 'case'"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"contains\",\"goal\",[\"Sign\"]]]}}", "filters[0][0]", "is and is_not only"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"goal\",[\"Signup\",\"Nope\"]]]}}", "filters[0][2][1]", "no goal named 'Nope'"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"matches\",\"page\",[\"^/ok\",\"(unclosed\"]]]}}", "filters[0][2][1]", "Invalid regular expression '(unclosed'"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[[\"and\",[[\"is\",\"page\",[\"/\"]],[\"bogus\",\"page\",[\"/\"]]]]]}}", "filters[0][1][1][0]", "Unknown filter operator 'bogus'"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"filters\":[{string.Concat(Enumerable.Repeat("[\"not\",", 9))}[\"is\",\"page\",[\"/\"]]{new string(']', 9)}]}}",
            "filters[0]" + string.Concat(Enumerable.Repeat("[1]", 8)), "nest at most 8 levels"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"order_by\":[[\"pageviews\",\"desc\"]]}}", "order_by[0][0]", "neither a metric nor a dimension"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"order_by\":[[\"visitors\",\"down\"]]}}", "order_by[0][1]", "\"asc\" or \"desc\""),
        new($"{{{Ok},\"metrics\":[\"total_revenue\"],\"order_by\":[[\"total_revenue\",\"desc\"]]}}", "order_by[0][0]", "per currency"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"pagination\":{{\"limit\":10001}}}}", "pagination.limit", "from 1 to 10000"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"pagination\":{{\"offset\":-1}}}}", "pagination.offset", ">= 0"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"include\":{{\"time_labels\":\"yes\"}}}}", "include.time_labels", "true or false"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"include\":{{\"time_labels\":true}}}}", "include.time_labels", "needs a time dimension"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"include\":{{\"comparisons\":{{\"mode\":\"last_year\"}}}}}}", "include.comparisons.mode", "Unknown comparison mode"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"include\":{{\"comparisons\":{{\"mode\":\"custom\"}}}}}}", "include.comparisons.date_range", "needs date_range"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"include\":{{\"comparisons\":{{\"mode\":\"previous_period\",\"date_range\":\"7d\"}}}}}}", "include.comparisons.date_range", "custom mode only"),
        new($"{{{Ok},\"metrics\":[\"bounce_rate\"],\"dimensions\":[\"page\"]}}", "metrics[0]", "visit metric"),
        new($"{{{Ok},\"metrics\":[\"bots\"],\"dimensions\":[\"country\"]}}", "metrics[0]", "bots have no visits"),
        new($"{{{Ok},\"metrics\":[\"bots\"],\"filters\":[[\"is\",\"source\",[\"Google\"]]]}}", "metrics[0]", "filtered by the visit dimension source"),
        new($"{{{Ok},\"metrics\":[\"conversions\"]}}", "metrics[0]", "needs the goal dimension or a goal filter"),
        // A goal filter under not or or has no goals-in-scope meaning for conversions.
        new($"{{{Ok},\"metrics\":[\"conversion_rate\"],\"filters\":[[\"not\",[\"is\",\"goal\",[\"Signup\"]]]]}}", "filters[0][1]", "under or / not"),
        new($"{{{Ok},\"metrics\":[\"conversions\"],\"filters\":[[\"or\",[[\"is\",\"goal\",[\"Signup\"]],[\"is\",\"page\",[\"/pricing\"]]]]]}}", "filters[0][1][0]", "under or / not"),
        new($"{{{Ok},\"metrics\":[\"percentage\"],\"dimensions\":[\"time:day\"]}}", "metrics[0]", "needs a dimension other than time"),
        new($"{{{Ok},\"metrics\":[\"visitors\"],\"dimensions\":[\"time:minute\"]}}", "dimensions[0]", "more than 10000 time buckets"),
    ];

    [Fact]
    public async Task Every_refusal_rule_answers_400_naming_the_field_and_the_reason()
    {
        await using var host = await QueryHost.StartAsync(engine);
        host.Store.CreateGoal(host.Site.SiteId, "Signup", "event", "signup");
        var failures = new List<string>();
        foreach (var c in Cases)
        {
            var (status, body) = await host.QueryRawAsync(c.Body.Replace("SITE", host.Site.PublicId, StringComparison.Ordinal));
            string field = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("field", out var f) ? f.GetString() ?? "" : "";
            string detail = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("detail", out var d) ? d.GetString() ?? "" : "";
            if (status != HttpStatusCode.BadRequest || field != c.Field || !detail.Contains(c.Reason, StringComparison.Ordinal))
                failures.Add($"{c.Body}\n  expected 400 {c.Field} '{c.Reason}', got {(int)status} {field} '{detail}'");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public async Task The_GET_form_refuses_unknown_parameters_and_a_missing_query()
    {
        await using var host = await QueryHost.StartAsync(engine);
        using var unknown = new HttpRequestMessage(HttpMethod.Get, "/v1/query?q=%7B%7D");
        var (status, body) = await host.SendAsync(unknown, null);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("q", body.GetProperty("field").GetString());
        using var missing = new HttpRequestMessage(HttpMethod.Get, "/v1/query");
        (status, body) = await host.SendAsync(missing, null);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("query", body.GetProperty("field").GetString());
        using var bad = new HttpRequestMessage(HttpMethod.Get, "/v1/query?query=" + Uri.EscapeDataString($"{{\"site_id\":\"{host.Site.PublicId}\",\"date_range\":\"7d\",\"metrics\":[\"visits\"],\"dimensions\":[\"event\"]}}"));
        (status, body) = await host.SendAsync(bad, null);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("metrics[0]", body.GetProperty("field").GetString());
    }

    [Fact]
    public async Task A_body_over_64_KB_is_refused_with_413_and_one_just_under_is_parsed()
    {
        await using var host = await QueryHost.StartAsync(engine);
        string Body(int length)
        {
            string head = $"{{\"site_id\":\"{host.Site.PublicId}\",\"date_range\":\"7d\",\"metrics\":[\"visitors\"],\"filters\":[[\"is\",\"page\",[\"";
            const string Tail = "\"]]]}";
            return head + new string('a', length - head.Length - Tail.Length) + Tail;
        }
        var (status, _) = await host.QueryRawAsync(Body(64 * 1024 + 1));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        (status, var body) = await host.QueryRawAsync(Body(64 * 1024));
        Assert.True(status == HttpStatusCode.OK, body.ToString());
        // Without a Content-Length (chunked), the limit holds while reading.
        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/query")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(Body(100 * 1024))))
            {
                Headers = { ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json") },
            },
        };
        chunked.Headers.TransferEncodingChunked = true;
        (status, _) = await host.SendAsync(chunked, null);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
    }

    [Fact]
    public async Task Another_merchants_site_answers_404_exactly_like_an_unknown_one_and_a_token_needs_stats_read()
    {
        await using var host = await QueryHost.StartAsync(engine);
        var registry = host.Host.App.Services.GetRequiredService<SiteRegistry>();
        var other = registry.CreateSite(registry.CreateMerchant("Other merchant"), "other.example");
        string Query(string site) => $"{{\"site_id\":\"{site}\",\"date_range\":\"7d\",\"metrics\":[\"visitors\"]}}";

        var (status, foreign) = await host.QueryRawAsync(Query(other.PublicId));
        Assert.Equal(HttpStatusCode.NotFound, status);
        (status, var unknown) = await host.QueryRawAsync(Query("zzzzzzzzzzzzzzzz"));
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal(unknown.GetProperty("title").GetString(), foreign.GetProperty("title").GetString());
        Assert.DoesNotContain(other.Domain, foreign.ToString(), StringComparison.Ordinal);

        // The other merchant's own token sees its site.
        using var tokenHttp = new HttpClient { BaseAddress = new Uri(host.Host.BaseAddress) };
        string otherToken = await TestTokens.ClientTokenAsync(host.Host.App.Services, tokenHttp, other.MerchantId, "stats:read");
        using var own = new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = new StringContent(Query(other.PublicId), Encoding.UTF8, "application/json") };
        (status, _) = await host.SendAsync(own, otherToken);
        Assert.Equal(HttpStatusCode.OK, status);

        // Without stats:read: 403; without a token: 401.
        string writeOnly = await TestTokens.ClientTokenAsync(host.Host.App.Services, tokenHttp, host.Site.MerchantId, "sites:write");
        using var forbidden = new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = new StringContent(Query(host.Site.PublicId), Encoding.UTF8, "application/json") };
        (status, _) = await host.SendAsync(forbidden, writeOnly);
        Assert.Equal(HttpStatusCode.Forbidden, status);
        using var anonymous = new HttpClient { BaseAddress = new Uri(host.Host.BaseAddress) };
        using var response = await anonymous.PostAsync("/v1/query", new StringContent(Query(host.Site.PublicId), Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }
}
