using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// Caching headers and CSV on <c>/v1/query</c> (docs/query-api.md, "Caching" and "CSV"): the GET
/// form gets Cache-Control and surrogate keys, POST only ETag/304; CSV holds the rows the JSON
/// holds, with the documented header and per-currency revenue columns. Events go in through the
/// real ingest; expected values are the events the test sent.
/// </summary>
public class QueryCachingAndCsvTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string GetPath(object query) => "/v1/query?query=" + Uri.EscapeDataString(JsonSerializer.Serialize(query));

    private static async Task<HttpResponseMessage> SendAsync(QueryHost host, HttpMethod method, object query, string? accept = null, string? ifNoneMatch = null)
    {
        using var request = method == HttpMethod.Get
            ? new HttpRequestMessage(HttpMethod.Get, GetPath(query))
            : new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = JsonContent.Create(query) };
        if (accept is not null) request.Headers.TryAddWithoutValidation("Accept", accept);
        if (ifNoneMatch is not null) request.Headers.TryAddWithoutValidation("If-None-Match", ifNoneMatch);
        return await host.Host.Http.SendAsync(request, Ct);
    }

    [Fact]
    public async Task The_get_form_of_a_settled_query_with_a_comparison_is_cacheable_for_an_hour_under_the_days_of_both_ranges()
    {
        // Tokens of two hours: an answer never outlives its token, so a 15-minute one would cut the hour.
        await using var host = await QueryHost.StartAsync(engine, new Analytics.Host.AuthSettings { AccessTokenLifetime = TimeSpan.FromHours(2) });
        host.Clock.Now = QueryHost.Day.AddDays(5);
        string site = host.Site.PublicId;
        var query = new
        {
            site_id = site,
            date_range = new[] { "2026-01-14", "2026-01-15" },
            timezone = "UTC",
            metrics = new[] { "visitors" },
            include = new { comparisons = new { mode = "previous_period" } },
        };
        using var response = await SendAsync(host, HttpMethod.Get, query);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("private, max-age=3600", response.Headers.NonValidated["Cache-Control"].ToString());
        Assert.Contains("Authorization", response.Headers.Vary);
        Assert.Contains("Accept", response.Headers.Vary);
        string[] keys = response.Headers.GetValues("Surrogate-Key").Single().Split(' ');
        Assert.Matches("^m-[a-z2-7]{16}$", keys[0]);
        // Then the site's and the days' keys, and last the API client's (c-…) of the test's token.
        Assert.Equal(["s-" + site, $"sd-{site}-2026-01-14", $"sd-{site}-2026-01-15", $"sd-{site}-2026-01-12", $"sd-{site}-2026-01-13"], keys[1..^1]);
        Assert.StartsWith("c-", keys[^1], StringComparison.Ordinal);

        using var notModified = await SendAsync(host, HttpMethod.Get, query, ifNoneMatch: response.Headers.ETag!.Tag);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync(Ct));
    }

    [Fact]
    public async Task Today_is_live_for_five_seconds_and_post_gets_an_etag_and_304_but_no_cache_control()
    {
        await using var host = await QueryHost.StartAsync(engine);
        host.Clock.Now = QueryHost.Day.AddHours(12);
        var query = new { site_id = host.Site.PublicId, date_range = "day", metrics = new[] { "pageviews" } };
        using var get = await SendAsync(host, HttpMethod.Get, query);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("private, max-age=5", get.Headers.NonValidated["Cache-Control"].ToString());

        using var post = await SendAsync(host, HttpMethod.Post, query);
        Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        Assert.False(post.Headers.Contains("Cache-Control"));
        Assert.False(post.Headers.Contains("Surrogate-Key"));
        Assert.Equal(get.Headers.ETag!.Tag, post.Headers.ETag!.Tag);
        using var again = await SendAsync(host, HttpMethod.Post, query, ifNoneMatch: post.Headers.ETag.Tag);
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);
    }

    [Fact]
    public async Task A_named_range_is_not_cached_past_the_midnight_or_month_start_that_changes_its_meaning()
    {
        // Tokens of two hours: an answer never outlives its token, which must not be what cuts it here.
        await using var host = await QueryHost.StartAsync(engine, new Analytics.Host.AuthSettings { AccessTokenLifetime = TimeSpan.FromHours(2) });
        var berlin = TimeSpan.FromHours(1); // Europe/Berlin in winter
        async Task<string> CacheControlAsync(string range)
        {
            var query = new { site_id = host.Site.PublicId, date_range = range, timezone = "Europe/Berlin", metrics = new[] { "pageviews" } };
            using var response = await SendAsync(host, HttpMethod.Get, query);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(response.Headers.NonValidated["Cache-Control"].ToString(), "private, " + response.Headers.GetValues("Surrogate-Control").Single());
            return response.Headers.NonValidated["Cache-Control"].ToString();
        }

        // 23:30 on 15 January: yesterday (the 14th) ended long ago, but at midnight it means the 15th.
        host.Clock.Now = new DateTimeOffset(2026, 1, 15, 23, 30, 0, berlin);
        int toMidnight = (int)(new DateTimeOffset(2026, 1, 16, 0, 0, 0, berlin) - host.Clock.Now).TotalSeconds;
        Assert.Equal($"private, max-age={toMidnight}", await CacheControlAsync("yesterday"));
        // Last month (December) keeps its meaning until 1 February: the settled hour holds.
        Assert.Equal("private, max-age=3600", await CacheControlAsync("last_month"));
        Assert.Equal("private, max-age=5", await CacheControlAsync("7d"));

        // 23:30 on 31 January: last month becomes January at midnight.
        host.Clock.Now = new DateTimeOffset(2026, 1, 31, 23, 30, 0, berlin);
        Assert.Equal($"private, max-age={toMidnight}", await CacheControlAsync("last_month"));
        // Two seconds before midnight even a live range's five seconds are cut.
        host.Clock.Now = new DateTimeOffset(2026, 1, 31, 23, 59, 58, berlin);
        Assert.Equal("private, max-age=2", await CacheControlAsync("7d"));
        Assert.Equal("private, max-age=2", await CacheControlAsync("year"));
        // Explicit dates never change meaning.
        var explicitRange = new { site_id = host.Site.PublicId, date_range = new[] { "2026-01-14", "2026-01-14" }, timezone = "Europe/Berlin", metrics = new[] { "pageviews" } };
        using var dated = await SendAsync(host, HttpMethod.Get, explicitRange);
        Assert.Equal("private, max-age=3600", dated.Headers.NonValidated["Cache-Control"].ToString());
    }

    [Fact]
    public async Task Csv_holds_the_rows_of_the_json_answer_with_one_revenue_column_per_currency()
    {
        await using var host = await QueryHost.StartAsync(engine);
        var at = QueryHost.Day.AddHours(10);
        await host.SendAsync(QueryHost.Visitor("a"), at, QueryHost.Page("/a,b"));
        await host.SendAsync(QueryHost.Visitor("b"), at, QueryHost.Page("/shop"), QueryHost.Custom("purchase", revenueMicros: 12_500_000, currency: "EUR"));
        await host.SendAsync(QueryHost.Visitor("c"), at, QueryHost.Page("/shop"), QueryHost.Custom("purchase", revenueMicros: 3_000_000, currency: "USD"));
        await host.WaitForStoredAsync();
        host.Clock.Now = QueryHost.Day.AddDays(2);

        var byEvent = new { site_id = host.Site.PublicId, date_range = new[] { "2026-01-15", "2026-01-15" }, timezone = "UTC", metrics = new[] { "visitors", "total_revenue" }, dimensions = new[] { "event" } };
        using var csv = await SendAsync(host, HttpMethod.Post, byEvent, accept: "text/csv");
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType!.MediaType);
        string[] lines = (await csv.Content.ReadAsStringAsync(Ct)).Split("\r\n");
        Assert.Equal("event,visitors,total_revenue EUR,total_revenue USD", lines[0]);
        var rows = lines[1..^1].Select(l => l.Split(',')).ToDictionary(r => r[0]);
        Assert.Equal(2, rows.Count);
        Assert.Equal(["pageview", "3", "", ""], rows["pageview"]);
        Assert.Equal("2", rows["purchase"][1]);
        Assert.Equal(12.5m, decimal.Parse(rows["purchase"][2], CultureInfo.InvariantCulture));
        Assert.Equal(3m, decimal.Parse(rows["purchase"][3], CultureInfo.InvariantCulture));

        // A page path with a comma is one quoted field; the GET form answers CSV too. The purchases
        // were sent from /checkout: a row with no pageviews.
        var byPage = new { site_id = host.Site.PublicId, date_range = new[] { "2026-01-15", "2026-01-15" }, timezone = "UTC", metrics = new[] { "pageviews" }, dimensions = new[] { "page" }, order_by = new[] { new[] { "page", "asc" } } };
        using var pages = await SendAsync(host, HttpMethod.Get, byPage, accept: "text/csv");
        Assert.Equal("page,pageviews\r\n\"/a,b\",1\r\n/checkout,0\r\n/shop,2\r\n", await pages.Content.ReadAsStringAsync(Ct));

        // Errors stay problem+json when CSV was asked for.
        using var refused = await SendAsync(host, HttpMethod.Post, new { site_id = host.Site.PublicId, date_range = "day", metrics = new[] { "nope" } }, accept: "text/csv");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task A_chunked_query_body_over_64_KiB_gets_413_problem_json()
    {
        await using var host = await QueryHost.StartAsync(engine);
        string big = "{\"site_id\": \"" + new string('x', 70_000) + "\"}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(big))) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.TransferEncodingChunked = true;
        using var response = await host.Host.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
    }
}
