using System.Text.Json.Nodes;
using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary>Totals over ranges, exact against the oracle (docs/query-api.md, Metrics).</summary>
[Collection(OracleCollection.Name)]
public class OracleAggregateTests(OracleFixture data)
{
    private static readonly string[] AllMetrics =
        ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration", "time_on_page", "total_revenue", "average_revenue"];

    [Theory]
    [InlineData("2026-10-24", "2026-11-02", "UTC")]
    [InlineData("2025-10-25", "2026-11-02", "UTC")]
    [InlineData("2026-10-25", "2026-10-25", "UTC")]
    [InlineData("2026-10-25", "2026-10-25", "Europe/Berlin")]
    [InlineData("2026-11-01", "2026-11-01", "America/New_York")]
    [InlineData("2026-10-31", "2026-11-01", "Asia/Kolkata")]
    [InlineData("2026-10-26", "2026-10-31", "Europe/Berlin")]
    [InlineData("2026-10-27", "2026-10-29", "UTC")]
    public Task Every_metric_over_a_date_range_equals_the_oracle(string from, string to, string tz) =>
        data.AssertAgreesAsync(Query(from, to, tz, AllMetrics));

    [Theory]
    [InlineData("2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z")]
    [InlineData("2026-10-24T22:00:00Z", "2026-10-25T22:00:00+01:00")]
    [InlineData("2026-11-01T04:00:00Z", "2026-11-01T07:00:00-05:00")]
    [InlineData("2026-10-30T18:30:00Z", "2026-11-01T18:30:00+05:30")]
    public Task Every_metric_over_an_instant_range_counts_from_included_and_to_excluded(string from, string to) =>
        data.AssertAgreesAsync(Query(from, to, "UTC", AllMetrics));

    [Fact]
    public async Task Visitors_of_a_range_are_distinct_not_the_sum_of_bucket_uniques()
    {
        // The oracle's own numbers show the difference is real in this data set.
        var hourly = data.Oracle.Run(Query("2026-10-24", "2026-11-02", "UTC", ["visitors"], ["time:hour"]));
        var total = data.Oracle.Run(Query("2026-10-24", "2026-11-02", "UTC", ["visitors"]));
        long sum = hourly.Rows.Sum(r => ((QueryOracle.Exact)r.Metrics[0]).Value);
        Assert.True(sum > ((QueryOracle.Exact)total.Rows[0].Metrics[0]).Value);

        await data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", ["visitors", "visits"]));
        await data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", ["visitors", "visits"], ["time:hour"]));
        await data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "Europe/Berlin", ["visitors"], ["time:week"]));
        await data.AssertAgreesAsync(Query("2025-10-01", "2026-11-30", "America/New_York", ["visitors"], ["time:month"]));
    }

    [Fact]
    public Task A_range_without_data_answers_one_row_of_zeros() =>
        data.AssertAgreesAsync(Query("2026-10-28", "2026-10-29", "UTC", AllMetrics));

    [Theory]
    [InlineData("day", "UTC")]
    [InlineData("yesterday", "UTC")]
    [InlineData("yesterday", "Asia/Kolkata")]
    [InlineData("7d", "UTC")]
    [InlineData("7d", "America/New_York")]
    [InlineData("28d", "Europe/Berlin")]
    [InlineData("month", "UTC")]
    [InlineData("last_month", "UTC")]
    [InlineData("last_month", "Europe/Berlin")]
    [InlineData("6mo", "America/New_York")]
    [InlineData("12mo", "Asia/Kolkata")]
    [InlineData("year", "UTC")]
    [InlineData("all", "Europe/Berlin")]
    public Task A_named_range_ends_with_today_of_the_hosts_clock(string range, string tz)
    {
        var q = Query("x", "x", tz, ["visitors", "visits", "pageviews", "bounce_rate"]);
        q["date_range"] = range;
        return data.AssertAgreesAsync(q);
    }

    [Theory]
    [InlineData("UTC")]
    [InlineData("Europe/Berlin")]
    public Task Bots_are_counted_only_by_the_bots_metric(string tz) =>
        data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", tz, ["bots", "pageviews", "events", "visitors"]));

    [Fact]
    public async Task Bots_by_page_and_with_an_event_filter_equal_the_oracle()
    {
        await data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", ["bots", "pageviews"], ["page"]));
        await data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", ["bots", "visitors"], ["time:day"]));
        await data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", ["bots", "pageviews"], null, Filters("""[["is", "page", ["/pricing"]]]""")));
    }
}
