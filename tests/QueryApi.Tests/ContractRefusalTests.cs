using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Analytics.ControlPlane;
using Analytics.QueryApi.Tests.Oracle;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests;

/// <summary>Every refusal docs/query-api.md names: a 400 problem+json whose <c>field</c> names
/// the JSON path at fault, and 401, 403, 404, 413 with their statuses.</summary>
[Collection(OracleCollection.Name)]
public class ContractRefusalTests(OracleFixture data)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Valid = """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["visitors"]""";

    /// <summary>(the body after the valid start, JSON paths the field may name).</summary>
    public static TheoryData<string, string> Refusals() => new()
    {
        { """, "metricz": ["visitors"]}""", "metricz" },
        { """, "include": {"time_labelz": true}}""", "include" },
        { """, "filters": [["is", "page", ["/"], {"case_sensitive": false, "x": 1}]]}""", "filters[0]" },
        { """, "dimensions": ["colour"]}""", "dimensions[0]" },
        { """, "dimensions": ["time:day", "time:hour"]}""", "dimensions" },
        { """, "dimensions": ["page", "source", "country", "city"]}""", "dimensions" },
        { """, "filters": [["matches", "page", ["("]]]}""", "filters[0]" },
        { """, "filters": [["is", "time:day", ["2026-10-25"]]]}""", "filters[0]" },
        { """, "filters": [["contains", "goal", ["Signup"]]]}""", "filters[0]" },
        { """, "filters": [["like", "page", ["/"]]]}""", "filters[0]" },
        { """, "pagination": {"limit": 0}}""", "pagination" },
        { """, "pagination": {"limit": 10001}}""", "pagination" },
        { """, "pagination": {"offset": -1}}""", "pagination" },
        { """, "timezone": "Mars/Olympus_Mons"}""", "timezone" },
        // A directory of the zone database, not a zone: found by fuzzing (was a 500).
        { """, "timezone": "Europe/"}""", "timezone" },
        { """, "order_by": [["visitors", "sideways"]]}""", "order_by[0]" },
        { """, "include": {"comparisons": {"mode": "custom"}}}""", "include" },
    };

    /// <summary>Bodies whose metrics, dimensions or range are at fault.</summary>
    public static TheoryData<string, string> WholeBodyRefusals() => new()
    {
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": []}""", "metrics" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["visitors", "visitors"]}""", "metrics[1]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["visitorz"]}""", "metrics[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration", "time_on_page", "percentage", "total_revenue", "average_revenue", "bots", "visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration", "time_on_page", "percentage"], "dimensions": ["page"]}""", "metrics" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["bounce_rate"], "dimensions": ["page"]}""", "metrics[0]|dimensions[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["visits"], "dimensions": ["props:plan"]}""", "metrics[0]|dimensions[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["bots"], "dimensions": ["source"]}""", "metrics[0]|dimensions[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["bots"], "filters": [["is", "country", ["GB"]]]}""", "metrics[0]|filters[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["percentage"]}""", "metrics[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["percentage"], "dimensions": ["time:day"]}""", "metrics[0]" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24", "2026-11-02"], "metrics": ["conversions"]}""", "metrics[0]" },
        { """{"site_id": "$SITE", "date_range": ["2000-01-01", "2026-11-02"], "metrics": ["visitors"]}""", "date_range" },
        { """{"site_id": "$SITE", "date_range": ["1969-12-31", "1970-01-02"], "metrics": ["visitors"]}""", "date_range" },
        { """{"site_id": "$SITE", "date_range": ["2026-11-02", "2026-10-24"], "metrics": ["visitors"]}""", "date_range" },
        { """{"site_id": "$SITE", "date_range": "8d", "metrics": ["visitors"]}""", "date_range" },
        { """{"site_id": "$SITE", "date_range": ["2026-10-24T00:00:00", "2026-10-25T00:00:00"], "metrics": ["visitors"]}""", "date_range" },
        { """{"site_id": "$SITE", "metrics": ["visitors"]}""", "date_range" },
        { """{"date_range": ["2026-10-24", "2026-11-02"], "metrics": ["visitors"]}""", "site_id" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public Task A_malformed_part_is_refused_with_400_naming_the_field(string rest, string fields) => AssertRefusedAsync(Valid + rest, fields);

    [Theory]
    [MemberData(nameof(WholeBodyRefusals))]
    public Task An_unanswerable_query_is_refused_with_400_naming_the_field(string body, string fields) => AssertRefusedAsync(body, fields);

    private async Task AssertRefusedAsync(string body, string fields)
    {
        using var response = await data.Host.Http.PostAsync("/v1/query", Json(body.Replace("$SITE", data.Host.Site.PublicId, StringComparison.Ordinal)), Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonNode.Parse(text)!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace((string?)problem["title"]), text);
        Assert.False(string.IsNullOrWhiteSpace((string?)problem["detail"]), text);
        string field = (string?)problem["field"] ?? "";
        Assert.True(fields.Split('|').Any(f => field == f || field.StartsWith(f + "[", StringComparison.Ordinal) || field.StartsWith(f + ".", StringComparison.Ordinal)),
            $"field '{field}' is not one of {fields}: {text}");
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Without_a_token_the_answer_is_401()
    {
        using var http = new HttpClient { BaseAddress = new Uri(data.Host.BaseAddress) };
        using var response = await http.PostAsync("/v1/query", Json((Valid + "}").Replace("$SITE", data.Host.Site.PublicId, StringComparison.Ordinal)), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Without_the_stats_read_scope_the_answer_is_403()
    {
        using var http = new HttpClient { BaseAddress = new Uri(data.Host.BaseAddress) };
        string token = await TestTokens.ClientTokenAsync(data.Host.App.Services, http, data.Host.Site.MerchantId, "sites:write");
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.PostAsync("/v1/query", Json((Valid + "}").Replace("$SITE", data.Host.Site.PublicId, StringComparison.Ordinal)), Ct);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task An_unknown_site_and_a_site_of_another_merchant_are_404()
    {
        using var response = await data.Host.Http.PostAsync("/v1/query", Json((Valid + "}").Replace("$SITE", "zzzzzzzzzzzzzzzz", StringComparison.Ordinal)), Ct);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var registry = data.Host.App.Services.GetRequiredService<SiteRegistry>();
        var other = registry.CreateSite(registry.CreateMerchant("Other Merchant " + Guid.NewGuid().ToString("N")), "other.example", "key-" + Guid.NewGuid().ToString("N"));
        using var foreign = await data.Host.Http.PostAsync("/v1/query", Json((Valid + "}").Replace("$SITE", other.PublicId, StringComparison.Ordinal)), Ct);
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
    }

    /// <summary>Found by the libFuzzer run (fuzz/corpus/query/regression-invalid-utf8.json, sent
    /// as found): a string with a byte that is not UTF-8 passed JsonDocument.Parse and failed when
    /// the parser read it, a 500.</summary>
    [Fact]
    public async Task A_body_that_is_not_utf8_is_refused_with_400_naming_the_body()
    {
        var found = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "fuzz-regressions", "regression-invalid-utf8.json"));
        Assert.False(System.Text.Unicode.Utf8.IsValid(found));
        using var content = new ByteArrayContent(found);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await data.Host.Http.PostAsync("/v1/query", content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} {text}");
        Assert.Equal("$", (string?)JsonNode.Parse(text)!["field"]);
        Assert.Contains("not valid UTF-8", text);
    }

    /// <summary>The other fuzzing find, on the v1 endpoints that share the time-zone parser.</summary>
    [Fact]
    public async Task A_time_zone_naming_a_directory_of_the_zone_database_is_400_on_the_v1_api_too()
    {
        using var response = await data.Host.Http.GetAsync($"/v1/sites/{data.Host.Site.PublicId}/aggregate?metrics=visitors&tz=Europe/", Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode} {text}");
        Assert.Contains("Europe/", text);
    }

    [Fact]
    public async Task A_body_over_64_KB_is_413()
    {
        string values = string.Join(", ", Enumerable.Range(0, 7000).Select(i => $"\"/p{i}\""));
        string body = (Valid + $$""", "filters": [["is", "page", [{{values}}]]]}""").Replace("$SITE", data.Host.Site.PublicId, StringComparison.Ordinal);
        Assert.True(Encoding.UTF8.GetByteCount(body) > 64 * 1024);
        using var response = await data.Host.Http.PostAsync("/v1/query", Json(body), Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }
}
