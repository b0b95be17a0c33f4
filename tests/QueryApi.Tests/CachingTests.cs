using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Analytics.Contracts.V1;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// HTTP caching of the v1 query endpoints (docs/query-api.md, "Caching"), asked over real HTTP
/// of the real host. Expected keys are spelled out from the documented scheme here, day by day.
/// </summary>
public class CachingTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<HttpResponseMessage> GetAsync(TestHost host, string path, string? ifNoneMatch = null, string? accept = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (ifNoneMatch is not null) request.Headers.TryAddWithoutValidation("If-None-Match", ifNoneMatch);
        if (accept is not null) request.Headers.TryAddWithoutValidation("Accept", accept);
        return await host.Http.SendAsync(request, Ct);
    }

    /// <summary>As sent, "private, max-age=N" (HttpClient's parsed value reorders the directives).</summary>
    private static void AssertCacheControl(HttpResponseMessage response, int maxAge) =>
        Assert.Equal($"private, max-age={maxAge}", response.Headers.NonValidated["Cache-Control"].ToString());

    /// <summary>The answer's keys but the credential's (c-…, last: the test host's client token
    /// adds one, which the first test checks).</summary>
    private static string[] SurrogateKeys(HttpResponseMessage response) =>
        [.. response.Headers.GetValues("Surrogate-Key").Single().Split(' ').Where(k => !k.StartsWith("c-", StringComparison.Ordinal))];

    private static IEnumerable<string> DayKeys(string site, string first, string last)
    {
        for (var day = DateOnly.Parse(first, CultureInfo.InvariantCulture); day <= DateOnly.Parse(last, CultureInfo.InvariantCulture); day = day.AddDays(1))
            yield return $"sd-{site}-{day:yyyy-MM-dd}";
    }

    [Fact]
    public async Task A_settled_range_is_cacheable_for_an_hour_with_a_strong_etag_and_keys_for_merchant_site_and_each_utc_day()
    {
        // Tokens of two hours: an answer never outlives its token, so a 15-minute one would cut the hour.
        await using var host = await TestHost.StartAsync(engine, auth: new Analytics.Host.AuthSettings { AccessTokenLifetime = TimeSpan.FromHours(2) });
        string site = host.Site.PublicId;
        using var response = await GetAsync(host, $"/v1/sites/{site}/aggregate?metrics=pageviews&from=2026-01-01&to=2026-01-03&tz=UTC");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertCacheControl(response, 3600);
        Assert.Equal("max-age=3600", response.Headers.GetValues("Surrogate-Control").Single());
        Assert.Contains("Authorization", response.Headers.Vary);
        Assert.False(response.Headers.ETag!.IsWeak);
        Assert.Matches("^\"[A-Za-z0-9_-]{22}\"$", response.Headers.ETag.Tag);

        var keys = SurrogateKeys(response);
        Assert.Matches("^m-[a-z2-7]{16}$", keys[0]);
        // The internal ids never appear: not the merchant's, not the site's.
        Assert.DoesNotContain(keys, k => k.EndsWith("-" + host.Site.MerchantId, StringComparison.Ordinal) || k == "s-" + host.Site.SiteId);
        Assert.Equal(["s-" + site, .. DayKeys(site, "2026-01-01", "2026-01-03")], keys[1..]);
        // Fetched with an API client's token: the client's key comes last (revoking the client
        // with --edge-purge-url purges it), an HMAC like the merchant's, never the client id.
        string credential = response.Headers.GetValues("Surrogate-Key").Single().Split(' ')[^1];
        Assert.Matches("^c-[a-z2-7]{16}$", credential);
    }

    [Fact]
    public async Task A_live_range_is_cacheable_for_five_seconds()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var response = await GetAsync(host, $"/v1/sites/{host.Site.PublicId}/timeseries?metrics=pageviews");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertCacheControl(response, 5);
        // The default range, the last 24 hours, touches today and yesterday (UTC) or only today at midnight.
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        Assert.Contains($"sd-{host.Site.PublicId}-{today:yyyy-MM-dd}", SurrogateKeys(response));
    }

    [Fact]
    public async Task Day_keys_name_the_utc_days_a_range_in_another_time_zone_touches()
    {
        await using var host = await TestHost.StartAsync(engine);
        string site = host.Site.PublicId;
        // 2026-01-01 in Kolkata (UTC+05:30) is 2025-12-31T18:30Z .. 2026-01-01T18:30Z.
        using var response = await GetAsync(host, $"/v1/sites/{site}/aggregate?metrics=pageviews&from=2026-01-01&to=2026-01-01&tz=Asia/Kolkata");
        Assert.Equal([$"sd-{site}-2025-12-31", $"sd-{site}-2026-01-01"], SurrogateKeys(response)[2..]);
        // An instant range ending at UTC midnight does not touch the next day.
        using var exact = await GetAsync(host, $"/v1/sites/{site}/aggregate?metrics=pageviews&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z");
        Assert.Equal([$"sd-{site}-2026-01-01"], SurrogateKeys(exact)[2..]);
    }

    [Fact]
    public async Task Long_ranges_name_months_and_very_long_ones_years_so_the_header_stays_small()
    {
        await using var host = await TestHost.StartAsync(engine);
        string site = host.Site.PublicId;
        using var ninetyTwo = await GetAsync(host, $"/v1/sites/{site}/aggregate?metrics=pageviews&from=2026-01-01&to=2026-04-02&tz=UTC");
        Assert.Equal(DayKeys(site, "2026-01-01", "2026-04-02"), SurrogateKeys(ninetyTwo)[2..]);
        using var half = await GetAsync(host, $"/v1/sites/{site}/aggregate?metrics=pageviews&from=2026-01-01&to=2026-06-30&tz=UTC");
        Assert.Equal(Enumerable.Range(1, 6).Select(m => $"sm-{site}-2026-{m:D2}"), SurrogateKeys(half)[2..]);
        using var years = await GetAsync(host, $"/v1/sites/{site}/aggregate?metrics=pageviews&from=2006-01-01&to=2026-06-30&tz=UTC");
        Assert.Equal(Enumerable.Range(2006, 21).Select(y => $"sy-{site}-{y}"), SurrogateKeys(years)[2..]);
        Assert.True(years.Headers.GetValues("Surrogate-Key").Single().Length < 3_000);
    }

    [Fact]
    public async Task If_none_match_with_the_current_etag_answers_304_without_a_body_and_a_changed_answer_gets_a_new_etag()
    {
        await using var host = await TestHost.StartAsync(engine);
        string from = DateTime.UtcNow.AddDays(-1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        string to = DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        string path = $"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews&from={from}&to={to}";
        using var first = await GetAsync(host, path);
        string etag = first.Headers.ETag!.Tag;
        using var again = await GetAsync(host, path);
        Assert.Equal(etag, again.Headers.ETag!.Tag);

        foreach (string condition in new[] { etag, "W/" + etag, "\"other\", " + etag, "*" })
        {
            using var notModified = await GetAsync(host, path, condition);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
            Assert.Empty(await notModified.Content.ReadAsByteArrayAsync(Ct));
            Assert.Equal(etag, notModified.Headers.ETag!.Tag);
            AssertCacheControl(notModified, 5);
            Assert.Contains("Authorization", notModified.Headers.Vary);
            Assert.NotEmpty(notModified.Headers.GetValues("Surrogate-Key"));
        }
        using var otherTag = await GetAsync(host, path, "\"not-this-one\"");
        Assert.Equal(HttpStatusCode.OK, otherTag.StatusCode);

        // A pageview changes the answer, so the old tag no longer matches.
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { Seq = 1, SiteKey = host.Site.SiteKey };
        batch.Events.Add(Wire.Pageview());
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, batch)).Status);
        Assert.Equal(1, (await host.WaitForAggregateAsync(a => a["pageviews"] == 1, "pageviews"))["pageviews"]);
        using var changed = await GetAsync(host, path, etag);
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.NotEqual(etag, changed.Headers.ETag!.Tag);
    }

    [Fact]
    public async Task Errors_carry_no_cache_headers_and_stay_problem_json()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var response = await GetAsync(host, $"/v1/sites/{host.Site.PublicId}/aggregate?metrics=nope", accept: "text/csv");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        Assert.Null(response.Headers.ETag);
        Assert.False(response.Headers.Contains("Surrogate-Key"));
    }

    [Fact]
    public async Task Timeseries_answers_csv_when_asked_with_its_own_etag_and_vary_accept()
    {
        await using var host = await TestHost.StartAsync(engine);
        string path = $"/v1/sites/{host.Site.PublicId}/timeseries?metrics=pageviews,visitors&interval=hour&from=2026-01-01&to=2026-01-01&tz=UTC";
        using var json = await GetAsync(host, path);
        using var csv = await GetAsync(host, path, accept: "text/csv");
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType!.MediaType);
        Assert.Contains("Accept", csv.Headers.Vary);
        Assert.Contains("Accept", json.Headers.Vary);
        Assert.NotEqual(json.Headers.ETag!.Tag, csv.Headers.ETag!.Tag);
        string text = await csv.Content.ReadAsStringAsync(Ct);
        string[] lines = text.Split("\r\n");
        Assert.Equal("time,pageviews,visitors", lines[0]);
        // 24 zero-filled hours, then the empty string after the last CRLF.
        Assert.Equal(26, lines.Length);
        Assert.Equal("", lines[^1]);
        Assert.Equal("2026-01-01T00:00:00+00:00,0,0", lines[1]);
        Assert.Equal("2026-01-01T23:00:00+00:00,0,0", lines[24]);
        // The CSV's own tag revalidates the CSV.
        using var notModified = await GetAsync(host, path, csv.Headers.ETag.Tag, accept: "text/csv");
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        // A browser's Accept (wildcards only) keeps JSON.
        using var browser = await GetAsync(host, path, accept: "text/html,application/xhtml+xml,*/*;q=0.8");
        Assert.Equal("application/json", browser.Content.Headers.ContentType!.MediaType);
    }
}
