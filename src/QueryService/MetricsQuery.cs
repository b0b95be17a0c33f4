using System.Globalization;

namespace Analytics.QueryService;

public enum Interval { Minute, Hour, Day }

/// <summary>A validated metrics request: everything in it is safe to put into SQL.</summary>
public sealed record MetricsQuery(
    long MerchantId, long SiteId, IReadOnlyList<string> Metrics, DateTimeOffset From, DateTimeOffset To,
    Interval Interval, TimeZoneInfo TimeZone, string? EventName);

/// <summary>
/// Parses and checks query parameters. Every problem becomes one message naming the parameter
/// and what is accepted, answered as 400 problem+json.
/// </summary>
public static class QueryParameters
{
    public static readonly string[] KnownMetrics = ["pageviews", "events", "visitors", "visits", "revenue_micros", "bots"];
    public const int MaxBuckets = 10_000;

    public sealed class InvalidQueryException(string message) : Exception(message);

    public static IReadOnlyList<string> ParseMetrics(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) throw new InvalidQueryException($"metrics is required: a comma-separated list of {string.Join(", ", KnownMetrics)}.");
        var metrics = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct().ToList();
        foreach (var m in metrics)
        {
            if (!KnownMetrics.Contains(m)) throw new InvalidQueryException($"metrics: unknown metric '{m}'; known metrics are {string.Join(", ", KnownMetrics)}.");
        }
        return metrics;
    }

    public static Interval ParseInterval(string? value) => value switch
    {
        null or "" or "hour" => Interval.Hour,
        "minute" => Interval.Minute,
        "day" => Interval.Day,
        _ => throw new InvalidQueryException($"interval: '{value}' is not one of minute, hour, day."),
    };

    public static TimeZoneInfo ParseTimeZone(string? value)
    {
        if (string.IsNullOrEmpty(value)) return TimeZoneInfo.Utc;
        if (value.Length > 64 || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '_' or '-' or '+'))
            throw new InvalidQueryException($"tz: '{value}' is not an IANA time zone name such as Europe/Berlin.");
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(value);
        }
        // SecurityException: a name that is a directory of the zone database ("Europe/") cannot be
        // read as a zone; it was a 500 (found by fuzzing, fuzz/corpus/query/regression-zone-directory.json).
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException or System.Security.SecurityException)
        {
            throw new InvalidQueryException($"tz: unknown time zone '{value}'; use an IANA name such as Europe/Berlin.");
        }
    }

    /// <summary>
    /// A date (YYYY-MM-DD, a whole day in the query's time zone; `to` includes that day) or an
    /// ISO 8601 instant with offset (`to` excluded).
    /// </summary>
    public static DateTimeOffset ParseBound(string name, string? value, TimeZoneInfo tz, bool isEnd, DateTimeOffset fallback)
    {
        if (string.IsNullOrEmpty(value)) return fallback;
        if (DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            CheckYear(name, value, date.Year);
            var day = isEnd ? date.AddDays(1) : date;
            return StartOfLocalDay(day, tz);
        }
        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var instant) && value.Contains('T'))
        {
            CheckYear(name, value, instant.UtcDateTime.Year);
            return instant.ToUniversalTime();
        }
        throw new InvalidQueryException($"{name}: '{value}' is neither a date (2026-11-26) nor an ISO 8601 time (2026-11-26T10:00:00Z).");
    }

    /// <summary>Far dates would overflow the day and time arithmetic that follows (a day after
    /// 9999-12-31, 24 hours before 0001-01-01): refused with the other mistakes, not a 500.</summary>
    private static void CheckYear(string name, string value, int year)
    {
        if (year is < MinYear or > MaxYear)
            throw new InvalidQueryException($"{name}: '{value}' is outside the years {MinYear}-{MaxYear}.");
    }

    public const int MinYear = 1970, MaxYear = 9000;

    public static DateTimeOffset StartOfLocalDay(DateOnly day, TimeZoneInfo tz)
    {
        var local = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);
        // Midnight can fall in a DST gap in a few zones: move forward to the first valid time.
        while (tz.IsInvalidTime(local)) local = local.AddMinutes(30);
        return new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, tz), TimeSpan.Zero);
    }

    /// <summary>Whether every offset the zone uses is a whole number of hours (hour rollups then align).</summary>
    public static bool HasWholeHourOffsets(TimeZoneInfo tz)
    {
        if (tz.BaseUtcOffset.Ticks % TimeSpan.TicksPerHour != 0) return false;
        foreach (var rule in tz.GetAdjustmentRules())
        {
            if ((tz.BaseUtcOffset + rule.DaylightDelta + rule.BaseUtcOffsetDelta).Ticks % TimeSpan.TicksPerHour != 0) return false;
        }
        return true;
    }
}
