using System.Text.Json;
using System.Text.Json.Nodes;
using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary>Top lists by every dimension family, percentages, revenue per currency, order and
/// pagination, exact against the oracle.</summary>
[Collection(OracleCollection.Name)]
public class OracleBreakdownTests(OracleFixture data)
{
    private const string From = "2026-10-24", To = "2026-11-02";

    [Theory]
    [InlineData("page")]
    [InlineData("hostname")]
    [InlineData("event")]
    [InlineData("props:plan")]
    [InlineData("props:ref")]
    public Task A_breakdown_by_an_event_dimension_equals_the_oracle(string dimension) =>
        data.AssertAgreesAsync(Query(From, To, "UTC", ["visitors", "pageviews", "events", "percentage"], [dimension]));

    [Theory]
    [InlineData("entry_page")]
    [InlineData("exit_page")]
    [InlineData("source")]
    [InlineData("referrer")]
    [InlineData("channel")]
    [InlineData("utm_source")]
    [InlineData("utm_medium")]
    [InlineData("utm_campaign")]
    [InlineData("utm_content")]
    [InlineData("utm_term")]
    [InlineData("country")]
    [InlineData("region")]
    [InlineData("city")]
    [InlineData("device")]
    [InlineData("browser")]
    [InlineData("browser_version")]
    [InlineData("os")]
    [InlineData("os_version")]
    public Task A_breakdown_by_a_visit_dimension_equals_the_oracle(string dimension) =>
        data.AssertAgreesAsync(Query(From, To, "UTC",
            ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit", "percentage"], [dimension]));

    [Theory]
    [InlineData("entry_page", "Europe/Berlin", "2026-10-25")]
    [InlineData("exit_page", "Europe/Berlin", "2026-10-26")]
    [InlineData("source", "America/New_York", "2026-11-01")]
    [InlineData("referrer", "America/New_York", "2026-10-31")]
    [InlineData("channel", "Asia/Kolkata", "2026-10-26")]
    [InlineData("utm_campaign", "Asia/Kolkata", "2026-10-31")]
    public Task A_visit_cut_by_the_range_start_keeps_the_attributes_of_its_first_event(string dimension, string tz, string day) =>
        data.AssertAgreesAsync(Query(day, day, tz, ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], [dimension]));

    [Theory]
    [InlineData("page")]
    [InlineData("source")]
    [InlineData("country")]
    [InlineData("browser")]
    public Task A_top_5_is_the_head_of_the_full_list(string dimension)
    {
        var q = Query(From, To, "UTC", ["visitors", "pageviews"], [dimension]);
        q["pagination"] = new JsonObject { ["limit"] = 5 };
        return data.AssertAgreesAsync(q);
    }

    [Theory]
    [InlineData("source", "device")]
    [InlineData("channel", "os")]
    [InlineData("page", "hostname")]
    [InlineData("country", "city")]
    public Task A_breakdown_by_two_dimensions_equals_the_oracle(string first, string second) =>
        data.AssertAgreesAsync(Query(From, To, "UTC", ["visitors", "pageviews", "percentage"], [first, second]));

    [Fact]
    public async Task Time_on_page_by_page_equals_the_oracle()
    {
        await data.AssertAgreesAsync(Query(From, To, "UTC", ["time_on_page", "pageviews"], ["page"]));
        await data.AssertAgreesAsync(Query(From, To, "Europe/Berlin", ["time_on_page", "pageviews"], ["hostname"]));
    }

    [Theory]
    [InlineData("event")]
    [InlineData("props:plan")]
    [InlineData("source")]
    [InlineData("country")]
    [InlineData("time:day")]
    public Task Revenue_is_summed_and_averaged_per_currency(string dimension) =>
        data.AssertAgreesAsync(Query("2025-10-25", To, "UTC", ["events", "total_revenue", "average_revenue"], [dimension]));

    [Theory]
    [InlineData("pageviews", "asc")]
    [InlineData("visitors", "desc")]
    [InlineData("page", "desc")]
    [InlineData("hostname", "asc")]
    public async Task Pages_of_an_ordered_list_are_stable_and_concatenate_to_the_whole(string orderBy, string direction)
    {
        JsonObject Page(int? limit, int offset)
        {
            var q = Query(From, To, "UTC", ["visitors", "pageviews"], ["page", "hostname"]);
            q["order_by"] = new JsonArray(new JsonArray(orderBy, direction));
            if (limit is not null) q["pagination"] = new JsonObject { ["limit"] = limit, ["offset"] = offset };
            return q;
        }
        var whole = await data.AssertAgreesAsync(Page(null, 0));
        var rows = new List<string>();
        for (int offset = 0; ; offset += 4)
        {
            var page = await data.AssertAgreesAsync(Page(4, offset));
            Assert.Equal(whole.GetProperty("meta").GetProperty("total_rows").GetInt32(), page.GetProperty("meta").GetProperty("total_rows").GetInt32());
            var results = page.GetProperty("results").EnumerateArray().Select(r => r.ToString()).ToList();
            rows.AddRange(results);
            if (results.Count < 4) break;
        }
        Assert.Equal(whole.GetProperty("results").EnumerateArray().Select(r => r.ToString()), rows);
    }

    /// <summary>A page that is a small part of a long list (240 hours, most of them empty, so the
    /// order's ties are broken by the label) is picked without sorting the whole list: the same
    /// rows as the whole list cut, and the oracle's.</summary>
    [Theory]
    [InlineData("visitors", "desc")]
    [InlineData("pageviews", "asc")]
    [InlineData("time:hour", "desc")]
    public async Task A_short_page_of_a_long_list_is_the_whole_list_cut(string orderBy, string direction)
    {
        JsonObject Hours(int? limit, int offset)
        {
            var q = Query(From, To, "UTC", ["visitors", "pageviews"], ["time:hour"]);
            q["include"] = new JsonObject { ["time_labels"] = true };
            q["order_by"] = new JsonArray(new JsonArray(orderBy, direction));
            if (limit is not null) q["pagination"] = new JsonObject { ["limit"] = limit, ["offset"] = offset };
            return q;
        }
        var whole = (await data.AssertAgreesAsync(Hours(null, 0))).GetProperty("results").EnumerateArray().Select(r => r.ToString()).ToList();
        Assert.Equal(240, whole.Count); // ten days
        foreach (var (limit, offset) in new[] { (1, 0), (3, 0), (3, 5), (10, 20), (5, 235) })
        {
            var page = await data.AssertAgreesAsync(Hours(limit, offset));
            Assert.Equal(whole.Skip(offset).Take(limit), page.GetProperty("results").EnumerateArray().Select(r => r.ToString()));
        }
    }

    [Fact]
    public async Task An_offset_past_the_end_answers_no_rows_and_the_total()
    {
        var q = Query(From, To, "UTC", ["visitors"], ["country"]);
        q["pagination"] = new JsonObject { ["limit"] = 10, ["offset"] = 1000 };
        var body = await data.AssertAgreesAsync(q);
        Assert.Equal(0, body.GetProperty("results").GetArrayLength());
    }
}
