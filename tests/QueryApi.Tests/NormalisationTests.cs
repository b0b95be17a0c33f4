using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.QueryService.Query;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// Normalisation without a server: named ranges, comparisons and time labels for a fixed "now"
/// (Monday 2026-11-30 14:00 UTC) in Europe/Berlin, expected instants worked out by hand from the
/// calendar (DST ended 2026-10-25 and starts 2026-03-29 there).
/// </summary>
public class NormalisationTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 14, 0, 0, TimeSpan.Zero);
    private static readonly Site Site = new(1, "k7q2xw4mbd5rj3ta", 1, "key", "shop.example", "Europe/Berlin", "Shop");
    private static readonly TimeZoneInfo Berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");

    private static Task<NormalQuery> ParseAsync(string rangeAndMore) => QueryParser.ParseAsync(
        JsonDocument.Parse($"{{\"site_id\":\"k7q2xw4mbd5rj3ta\",\"metrics\":[\"visitors\"],{rangeAndMore}}}").RootElement,
        new QueryParser.Context(id => id == Site.PublicId ? Site : null, _ => [],
            _ => Task.FromResult<DateTimeOffset?>(new DateTimeOffset(2026, 3, 10, 5, 0, 0, TimeSpan.Zero)), _ => Task.FromResult<string?>(null), Now));

    private static string Range(DateTimeOffset from, DateTimeOffset to) =>
        $"{TimeZoneInfo.ConvertTime(from, Berlin):yyyy-MM-dd'T'HH:mmzzz} {TimeZoneInfo.ConvertTime(to, Berlin):yyyy-MM-dd'T'HH:mmzzz}";

    [Theory]
    [InlineData("\"day\"", "2026-11-30T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"7d\"", "2026-11-24T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"28d\"", "2026-11-03T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"30d\"", "2026-11-01T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"month\"", "2026-11-01T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"6mo\"", "2026-06-01T00:00+02:00 2026-12-01T00:00+01:00")]
    [InlineData("\"12mo\"", "2025-12-01T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"year\"", "2026-01-01T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"all\"", "2026-03-10T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("\"realtime\"", "2026-11-30T14:55+01:00 2026-11-30T15:00+01:00")]
    [InlineData("[\"2026-11-01\",\"2026-11-30\"]", "2026-11-01T00:00+01:00 2026-12-01T00:00+01:00")]
    [InlineData("[\"2026-11-01T06:00:00Z\",\"2026-11-01T18:00:00+01:00\"]", "2026-11-01T07:00+01:00 2026-11-01T18:00+01:00")]
    public async Task Named_and_explicit_ranges_are_whole_local_days_ending_with_today(string range, string expected)
    {
        var q = await ParseAsync($"\"date_range\":{range}");
        Assert.Equal(expected, Range(q.From, q.To));
        Assert.Equal("Europe/Berlin", q.TimeZone.Id);
    }

    [Theory]
    [InlineData("\"7d\"", "{\"mode\":\"previous_period\"}", "2026-11-17T00:00+01:00 2026-11-24T00:00+01:00")]
    // November (a whole month) before: October, across the end of DST; six whole months before six.
    [InlineData("\"month\"", "{\"mode\":\"previous_period\"}", "2026-10-01T00:00+02:00 2026-11-01T00:00+01:00")]
    [InlineData("[\"2026-03-01\",\"2026-08-31\"]", "{\"mode\":\"previous_period\"}", "2025-09-01T00:00+02:00 2026-03-01T00:00+01:00")]
    // Whole days that are not whole months: the same number of days.
    [InlineData("[\"2026-03-01\",\"2026-03-30\"]", "{\"mode\":\"previous_period\"}", "2026-01-30T00:00+01:00 2026-03-01T00:00+01:00")]
    // 1 November 2026 is a Sunday, 2 October a Friday: back 5 more days to Sunday 27 September.
    [InlineData("\"month\"", "{\"mode\":\"previous_period\",\"match_day_of_week\":true}", "2026-09-27T00:00+02:00 2026-10-27T00:00+01:00")]
    // Sunday 1 November back to Sunday 25 October, a 25-hour day in Berlin: local midnights (qcore-bugs #1).
    [InlineData("[\"2026-11-01\",\"2026-11-02\"]", "{\"mode\":\"previous_period\",\"match_day_of_week\":true}", "2026-10-25T00:00+02:00 2026-10-27T00:00+01:00")]
    [InlineData("\"7d\"", "{\"mode\":\"year_over_year\"}", "2025-11-24T00:00+01:00 2025-12-01T00:00+01:00")]
    [InlineData("[\"2024-02-29\",\"2024-02-29\"]", "{\"mode\":\"year_over_year\"}", "2023-02-28T00:00+01:00 2023-03-01T00:00+01:00")]
    // A range ending on 28 February of a leap year keeps its last day a year earlier; one ending
    // on 28 February the year after a leap year does not gain 29 February.
    [InlineData("[\"2024-02-28\",\"2024-02-28\"]", "{\"mode\":\"year_over_year\"}", "2023-02-28T00:00+01:00 2023-03-01T00:00+01:00")]
    [InlineData("[\"2024-02-01\",\"2024-02-28\"]", "{\"mode\":\"year_over_year\"}", "2023-02-01T00:00+01:00 2023-03-01T00:00+01:00")]
    [InlineData("[\"2025-02-01\",\"2025-02-28\"]", "{\"mode\":\"year_over_year\"}", "2024-02-01T00:00+01:00 2024-02-29T00:00+01:00")]
    [InlineData("\"day\"", "{\"mode\":\"custom\",\"date_range\":[\"2026-01-01\",\"2026-01-02\"]}", "2026-01-01T00:00+01:00 2026-01-03T00:00+01:00")]
    public async Task Comparison_ranges_follow_the_documented_modes(string range, string comparison, string expected)
    {
        var q = await ParseAsync($"\"date_range\":{range},\"include\":{{\"comparisons\":{comparison}}}");
        Assert.Equal(expected, Range(q.Comparison!.From, q.Comparison.To));
    }

    [Fact]
    public void Hour_labels_follow_the_wall_clock_through_DST_changes()
    {
        var autumn = TimeBuckets.Labels(QueryParser.Day(new DateOnly(2026, 10, 25), Berlin), QueryParser.Day(new DateOnly(2026, 10, 26), Berlin), Berlin, "hour");
        Assert.Equal(24, autumn.Count); // 25 hours, 02:00 twice: one bucket
        Assert.Equal("2026-10-25 02:00:00", autumn[2]);
        Assert.Equal("2026-10-25 03:00:00", autumn[3]);
        var spring = TimeBuckets.Labels(QueryParser.Day(new DateOnly(2026, 3, 29), Berlin), QueryParser.Day(new DateOnly(2026, 3, 30), Berlin), Berlin, "hour");
        Assert.Equal(23, spring.Count);
        Assert.DoesNotContain("2026-03-29 02:00:00", spring);
        var kolkata = TimeZoneInfo.FindSystemTimeZoneById("Asia/Kolkata");
        var utcDay = TimeBuckets.Labels(new DateTimeOffset(2026, 1, 15, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 1, 16, 0, 0, 0, TimeSpan.Zero), kolkata, "hour");
        Assert.Equal(25, utcDay.Count); // 05:30 to 05:30: the partial hours at both ends are buckets
        Assert.Equal("2026-01-15 05:00:00", utcDay[0]);
        Assert.Equal("2026-01-16 05:00:00", utcDay[^1]);
    }

    [Fact]
    public void Week_labels_are_Mondays_and_month_labels_first_days()
    {
        var from = QueryParser.Day(new DateOnly(2026, 11, 24), Berlin);
        var to = QueryParser.Day(new DateOnly(2026, 12, 1), Berlin);
        Assert.Equal(["2026-11-23", "2026-11-30"], TimeBuckets.Labels(from, to, Berlin, "week"));
        Assert.Equal(["2026-06-01", "2026-07-01", "2026-08-01", "2026-09-01", "2026-10-01", "2026-11-01"],
            TimeBuckets.Labels(QueryParser.Day(new DateOnly(2026, 6, 1), Berlin), to, Berlin, "month"));
        Assert.Equal(["2026-11-30 14:55:00", "2026-11-30 14:56:00", "2026-11-30 14:57:00", "2026-11-30 14:58:00", "2026-11-30 14:59:00"],
            TimeBuckets.Labels(Now.AddMinutes(-5), Now, Berlin, "minute"));
    }
}
