using System.Text.Json.Nodes;
using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary>Time buckets in the query's time zone, including the 25-hour days when DST ends
/// (Europe/Berlin 2026-10-25, America/New_York 2026-11-01), Kolkata's half-hour offset, and
/// events exactly on bucket edges.</summary>
[Collection(OracleCollection.Name)]
public class OracleTimeTests(OracleFixture data)
{
    public static TheoryData<string, string, string, string> Series()
    {
        var rows = new TheoryData<string, string, string, string>();
        foreach (var tz in new[] { "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata" })
        {
            rows.Add(tz, "time:hour", "2026-10-25", "2026-10-25");
            rows.Add(tz, "time:hour", "2026-11-01", "2026-11-01");
            rows.Add(tz, "time:day", "2026-10-24", "2026-11-02");
            rows.Add(tz, "time:week", "2026-10-24", "2026-11-02");
            rows.Add(tz, "time:month", "2025-10-01", "2026-11-30");
        }
        rows.Add("Europe/Berlin", "time:hour", "2026-10-24", "2026-10-26");
        rows.Add("America/New_York", "time:hour", "2026-10-31", "2026-11-02");
        rows.Add("UTC", "time:minute", "2026-10-25T21:50:00Z", "2026-10-25T22:10:00Z");
        rows.Add("Europe/Berlin", "time:minute", "2026-10-24T23:55:00+02:00", "2026-10-25T00:05:00+02:00");
        rows.Add("America/New_York", "time:minute", "2026-11-01T03:55:00Z", "2026-11-01T04:05:00Z");
        rows.Add("Asia/Kolkata", "time:minute", "2026-10-31T18:25:00Z", "2026-10-31T18:35:00Z");
        return rows;
    }

    [Theory]
    [MemberData(nameof(Series))]
    public Task Counts_per_time_bucket_equal_the_oracle(string tz, string dimension, string from, string to) =>
        data.AssertAgreesAsync(Query(from, to, tz, ["visitors", "pageviews", "events"], [dimension]));

    [Theory]
    [MemberData(nameof(Series))]
    public Task Time_labels_list_every_bucket_and_fill_empty_ones_with_zeros(string tz, string dimension, string from, string to)
    {
        var q = Query(from, to, tz, ["visitors", "pageviews", "bounce_rate", "total_revenue"], [dimension]);
        q["include"] = new JsonObject { ["time_labels"] = true };
        return data.AssertAgreesAsync(q);
    }

    [Theory]
    [InlineData("UTC", "time:hour", "2026-10-25")]
    [InlineData("Europe/Berlin", "time:hour", "2026-10-25")]
    [InlineData("America/New_York", "time:hour", "2026-11-01")]
    [InlineData("Asia/Kolkata", "time:day", "2026-10-24")]
    public Task Visit_metrics_per_time_bucket_measure_each_visit_over_the_whole_range(string tz, string dimension, string day)
    {
        return data.AssertAgreesAsync(Query(day, Date(DateOnly.Parse(day, System.Globalization.CultureInfo.InvariantCulture).AddDays(1)), tz,
            ["visits", "views_per_visit", "bounce_rate", "visit_duration"], [dimension]));
    }

    [Theory]
    [InlineData("Europe/Berlin", "2026-10-25", "2026-10-25 02:00:00")]
    [InlineData("America/New_York", "2026-11-01", "2026-11-01 01:00:00")]
    public async Task The_hour_repeated_when_DST_ends_is_one_bucket_of_two_hours(string tz, string day, string repeated)
    {
        var q = Query(day, day, tz, ["visitors", "pageviews", "events"], ["time:hour"]);
        q["include"] = new JsonObject { ["time_labels"] = true };
        var body = await data.AssertAgreesAsync(q);
        var labels = body.GetProperty("meta").GetProperty("time_labels").EnumerateArray().Select(l => l.GetString()).ToList();
        Assert.Equal(24, labels.Count);
        Assert.Single(labels, repeated);
        // The data set has events in both real hours of that label.
        var zone = TimeZoneInfo.FindSystemTimeZoneById(tz);
        var hours = data.Data.Events.Where(e => QueryOracle.BucketOf(e.At, zone, "time:hour").Label == repeated)
            .Select(e => TimeZoneInfo.ConvertTime(e.At, zone).Offset).Distinct().Count();
        Assert.Equal(2, hours);
    }

    [Fact]
    public Task A_time_dimension_with_a_breakdown_equals_the_oracle() =>
        data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "Europe/Berlin", ["visitors", "pageviews"], ["time:day", "country"]));
}
