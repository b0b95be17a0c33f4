using System.Text.Json.Nodes;
using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary>Comparisons: the earlier range the contract names, its values and the change in %
/// or in points, exact against the oracle.</summary>
[Collection(OracleCollection.Name)]
public class OracleComparisonTests(OracleFixture data)
{
    private static readonly string[] Metrics = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "total_revenue"];

    private static JsonObject Compare(JsonObject q, string mode, bool matchDayOfWeek = false, string[]? custom = null)
    {
        var c = new JsonObject { ["mode"] = mode, ["match_day_of_week"] = matchDayOfWeek };
        if (custom is not null) c["date_range"] = new JsonArray(custom[0], custom[1]);
        q["include"] = new JsonObject { ["comparisons"] = c };
        return q;
    }

    [Theory]
    [InlineData("2026-11-01", "2026-11-02", "UTC", false)]
    [InlineData("2026-11-01", "2026-11-02", "UTC", true)]
    [InlineData("2026-10-31", "2026-11-02", "Europe/Berlin", false)]
    [InlineData("2026-11-01", "2026-11-02", "America/New_York", true)]
    [InlineData("2026-10-26", "2026-10-26", "Asia/Kolkata", false)]
    // The three days before hold no visits (in Kolkata the data set starts on 24 October, 05:28):
    // no bounce rate to change from (null, not +x points).
    [InlineData("2026-10-24", "2026-10-26", "Asia/Kolkata", false)]
    // December (31 days) against November, not against 31 October to 30 November.
    [InlineData("2026-12-01", "2026-12-31", "UTC", false)]
    public Task The_previous_period_and_the_change_equal_the_oracle(string from, string to, string tz, bool matchDayOfWeek) =>
        data.AssertAgreesAsync(Compare(Query(from, to, tz, Metrics), "previous_period", matchDayOfWeek));

    [Theory]
    [InlineData("2026-10-25", "2026-10-26", "Europe/Berlin")]
    [InlineData("2026-11-01", "2026-11-02", "UTC")]
    // Ends on 1 November: a year earlier also ends on (includes) 1 November.
    [InlineData("2026-10-26", "2026-11-01", "Europe/Berlin")]
    public Task Year_over_year_compares_the_same_dates_a_year_earlier(string from, string to, string tz) =>
        data.AssertAgreesAsync(Compare(Query(from, to, tz, Metrics), "year_over_year"));

    [Fact]
    public Task A_custom_comparison_range_equals_the_oracle() =>
        data.AssertAgreesAsync(Compare(Query("2026-10-30", "2026-11-02", "UTC", Metrics), "custom", custom: ["2026-10-24", "2026-10-27"]));

    [Theory]
    [InlineData("time:day", "previous_period", true)]
    [InlineData("time:hour", "previous_period", false)]
    [InlineData("time:day", "year_over_year", false)]
    public Task Time_rows_are_compared_by_position(string dimension, string mode, bool matchDayOfWeek)
    {
        var q = Compare(Query("2026-11-01", "2026-11-02", "Europe/Berlin", ["visitors", "pageviews", "bounce_rate"], [dimension]), mode, matchDayOfWeek);
        q["include"]!["time_labels"] = true;
        return data.AssertAgreesAsync(q);
    }

    // A bucket filled in (no converting visitor in it) has no conversion rate to change from or
    // to: its change is null, as the oracle's empty rows have it, in both ranges.
    [Theory]
    [InlineData("time:hour", "Signup")]
    [InlineData("time:day", "Never")]
    public Task Filled_time_buckets_have_no_rate_change(string dimension, string goal)
    {
        var q = Compare(Query("2026-11-01", "2026-11-02", "UTC", ["visitors", "conversion_rate", "group_conversion_rate"], [dimension],
            Filters($$"""[["is", "goal", ["{{goal}}"]]]""")), "previous_period");
        q["include"]!["time_labels"] = true;
        return data.AssertAgreesAsync(q);
    }

    [Fact]
    public Task Breakdown_rows_are_compared_by_their_dimension_values() =>
        data.AssertAgreesAsync(Compare(Query("2026-10-30", "2026-11-02", "UTC", ["visitors", "pageviews", "percentage"], ["country"]), "previous_period"));
}
