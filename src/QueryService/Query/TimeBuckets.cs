using System.Globalization;
using Analytics.Store;

namespace Analytics.QueryService.Query;

/// <summary>
/// Time buckets of the time dimensions, labelled in the query's zone exactly as the SQL labels
/// them: minute "2026-11-30 14:05:00", hour "2026-11-30 14:00:00", day "2026-11-30", week the
/// Monday "2026-11-23", month "2026-11-01". A label is the bucket: the local hour repeated when
/// clocks go back is one bucket, as both the SQL (grouping by label) and this list see it.
/// </summary>
public static class TimeBuckets
{
    /// <summary>The label expression over <c>received_at</c> (DateTime64, UTC).</summary>
    public static string SqlLabel(string unit, TimeZoneInfo tz)
    {
        string zone = ClickHouseSql.StringLiteral(tz.Id);
        return unit switch
        {
            "minute" => $"formatDateTime(received_at, '%Y-%m-%d %H:%i:00', {zone})",
            "hour" => $"formatDateTime(received_at, '%Y-%m-%d %H:00:00', {zone})",
            "day" => $"toString(toDate(received_at, {zone}))",
            "week" => $"toString(toMonday(toDate(received_at, {zone})))",
            "month" => $"toString(toStartOfMonth(toDate(received_at, {zone})))",
            _ => throw new ArgumentOutOfRangeException(nameof(unit), unit, null),
        };
    }

    /// <summary>An upper bound of the buckets over [from, to), cheap for any range.</summary>
    public static long Count(DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz, string unit)
    {
        double minutes = (to - from).TotalMinutes;
        long estimate = unit switch
        {
            "minute" => (long)Math.Ceiling(minutes) + 1,
            "hour" => (long)Math.Ceiling(minutes / 60) + 1,
            "day" => (long)Math.Ceiling(minutes / 1440) + 1,
            "week" => (long)Math.Ceiling(minutes / 10080) + 2,
            _ => (long)Math.Ceiling(minutes / (1440 * 28)) + 2,
        };
        // Exact for anything near the limit, so the limit is the documented one.
        return estimate > QueryParser.MaxTimeBuckets * 2 ? estimate : Labels(from, to, tz, unit).Count;
    }

    /// <summary>Every bucket label of [from, to), in order.</summary>
    public static List<string> Labels(DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz, string unit)
    {
        var labels = new List<string>();
        var last = to.AddTicks(-1);
        switch (unit)
        {
            case "day" or "week" or "month":
                var day = LocalDate(from, tz);
                var end = LocalDate(last, tz);
                if (unit == "week") day = day.AddDays(-(((int)day.DayOfWeek + 6) % 7));
                if (unit == "month") day = new DateOnly(day.Year, day.Month, 1);
                for (; day <= end; day = unit switch { "day" => day.AddDays(1), "week" => day.AddDays(7), _ => day.AddMonths(1) })
                    labels.Add(day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
                break;
            default:
                // Minutes and hours step in UTC from the first bucket's start; the label is the
                // local wall time, and a repeated label (clocks going back) is the same bucket.
                var step = unit == "minute" ? TimeSpan.FromMinutes(1) : TimeSpan.FromHours(1);
                var local = TimeZoneInfo.ConvertTime(from, tz);
                var t = new DateTimeOffset(local.Ticks - local.Ticks % step.Ticks, local.Offset).ToUniversalTime();
                string format = unit == "minute" ? "yyyy-MM-dd HH:mm:00" : "yyyy-MM-dd HH:00:00";
                var seen = new HashSet<string>();
                for (; t < to; t += step)
                {
                    string label = TimeZoneInfo.ConvertTime(t, tz).ToString(format, CultureInfo.InvariantCulture);
                    if (seen.Add(label)) labels.Add(label);
                }
                break;
        }
        return labels;
    }

    private static DateOnly LocalDate(DateTimeOffset t, TimeZoneInfo tz) => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(t, tz).DateTime);
}
