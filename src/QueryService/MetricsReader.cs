using System.Globalization;
using System.Text;
using System.Text.Json;
using Analytics.Store;

namespace Analytics.QueryService;

/// <summary>
/// Answers metrics queries from the rollups. Tenant safety: the merchant and site ids come from
/// the registry, never from request parameters, and every statement filters on both; there is
/// no code path that builds SQL without them.
/// Which rollup: day buckets for UTC days, hour buckets for zones with whole-hour offsets,
/// minute buckets otherwise; aggregates use the coarsest rollup aligned with both ends.
/// Unique visitors merge uniq states (uniqMerge), so they are right over any range.
/// Retention: a rollup whose horizon is after the range's start is skipped for the next finer one
/// that gives the same buckets; when none is left, the query is refused (400) naming `from`.
/// </summary>
public sealed class MetricsReader(IColumnStore store, string database)
{
    /// <summary>How long each rollup keeps its rows: a query uses a rollup only from its horizon on.</summary>
    public RetentionPolicy Retention { get; init; } = RetentionPolicy.KeepEverything;

    /// <summary>"Now" for the retention horizons.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    public sealed record Bucket(DateTimeOffset Time, IReadOnlyDictionary<string, long> Values);

    public async Task<IReadOnlyList<Bucket>> TimeseriesAsync(MetricsQuery q, CancellationToken ct)
    {
        q = AlignToBuckets(q);
        var starts = BucketStarts(q).ToList();
        var (table, bucketExpr) = Kept(q, TimeseriesSources(q), $"interval={q.Interval.ToString().ToLowerInvariant()}");
        string sql = $"""
            SELECT toUnixTimestamp({bucketExpr}) AS t, {MetricColumns(q)}
            FROM {database}.{table} {ActiveGeneration(q)}
            WHERE {Scope(q, table)}
            GROUP BY t ORDER BY t
            """;
        var rows = await store.QueryRowsAsync(sql, ct);
        var byTime = new Dictionary<long, Dictionary<string, long>>();
        foreach (var row in rows)
        {
            var values = new Dictionary<string, long>();
            for (int i = 0; i < q.Metrics.Count; i++) values[q.Metrics[i]] = ReadLong(row[i + 1]);
            byTime[ReadLong(row[0])] = values;
        }
        var result = new List<Bucket>(starts.Count);
        foreach (var start in starts)
        {
            var values = byTime.TryGetValue(start.ToUnixTimeSeconds(), out var v) ? v : q.Metrics.ToDictionary(m => m, _ => 0L);
            result.Add(new Bucket(TimeZoneInfo.ConvertTime(start, q.TimeZone), values));
        }
        return result;
    }

    public async Task<IReadOnlyDictionary<string, long>> AggregateAsync(MetricsQuery q, CancellationToken ct)
    {
        // The coarsest rollup aligned with both ends, of those still holding the range's start.
        bool days = q.From.Ticks % TimeSpan.TicksPerDay == 0 && q.To.Ticks % TimeSpan.TicksPerDay == 0;
        bool hours = q.From.Ticks % TimeSpan.TicksPerHour == 0 && q.To.Ticks % TimeSpan.TicksPerHour == 0;
        (RetainedTable, string)[] aligned = days ? [(RetentionPolicy.RollupDay, ""), (RetentionPolicy.RollupHour, ""), (RetentionPolicy.RollupMinute, "")]
            : hours ? [(RetentionPolicy.RollupHour, ""), (RetentionPolicy.RollupMinute, "")]
            : [(RetentionPolicy.RollupMinute, "")];
        var (table, _) = Kept(q, aligned, days ? "a range of whole UTC days" : hours ? "a range of whole hours" : "a range not of whole hours");
        string sql = $"SELECT 0, {MetricColumns(q)} FROM {database}.{table} {ActiveGeneration(q)} WHERE {Scope(q, table)}";
        var rows = await store.QueryRowsAsync(sql, ct);
        var values = new Dictionary<string, long>();
        for (int i = 0; i < q.Metrics.Count; i++) values[q.Metrics[i]] = rows.Count == 0 ? 0 : ReadLong(rows[0][i + 1]);
        return values;
    }

    /// <summary>
    /// Whole buckets only: widens [From, To) to the bucket edges in the query's time zone, so the
    /// first and last buckets are complete rather than partial counts.
    /// </summary>
    public static MetricsQuery AlignToBuckets(MetricsQuery q)
    {
        var first = AlignDown(q.From, q.Interval, q.TimeZone);
        var last = AlignDown(q.To.AddTicks(-1), q.Interval, q.TimeZone);
        return q with { From = first, To = NextBucket(last, q) };
    }

    /// <summary>Bucket starts (UTC) covering [From, To), aligned in the query's time zone.</summary>
    public static IEnumerable<DateTimeOffset> BucketStarts(MetricsQuery q)
    {
        var t = AlignDown(q.From, q.Interval, q.TimeZone);
        while (t < q.To)
        {
            yield return t;
            t = NextBucket(t, q);
        }
    }

    private static DateTimeOffset NextBucket(DateTimeOffset start, MetricsQuery q) => q.Interval switch
    {
        Interval.Minute => start.AddMinutes(1),
        Interval.Hour => start.AddHours(1),
        _ => QueryParameters.StartOfLocalDay(DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(start, q.TimeZone).DateTime).AddDays(1), q.TimeZone),
    };

    public static DateTimeOffset AlignDown(DateTimeOffset instant, Interval interval, TimeZoneInfo tz)
    {
        var utc = instant.ToUniversalTime();
        return interval switch
        {
            Interval.Minute => new DateTimeOffset(utc.Ticks - utc.Ticks % TimeSpan.TicksPerMinute, TimeSpan.Zero),
            Interval.Hour => AlignHourInZone(utc, tz),
            _ => QueryParameters.StartOfLocalDay(DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(utc, tz).DateTime), tz),
        };
    }

    private static DateTimeOffset AlignHourInZone(DateTimeOffset utc, TimeZoneInfo tz)
    {
        var local = TimeZoneInfo.ConvertTime(utc, tz);
        var localHour = new DateTimeOffset(local.Ticks - local.Ticks % TimeSpan.TicksPerHour, local.Offset);
        return localHour.ToUniversalTime();
    }

    /// <summary>The rollups that give the query's buckets exactly, coarsest (cheapest) first.</summary>
    private static (RetainedTable Table, string BucketExpr)[] TimeseriesSources(MetricsQuery q)
    {
        string tz = ClickHouseSql.StringLiteral(q.TimeZone.Id);
        bool utc = q.TimeZone.BaseUtcOffset == TimeSpan.Zero && !q.TimeZone.SupportsDaylightSavingTime;
        bool wholeHours = QueryParameters.HasWholeHourOffsets(q.TimeZone);
        (RetainedTable, string) minute = (RetentionPolicy.RollupMinute, q.Interval switch
        {
            Interval.Minute => "bucket",
            Interval.Hour => $"toStartOfHour(bucket, {tz})",
            _ => $"toStartOfDay(bucket, {tz})",
        });
        (RetainedTable, string) hour = (RetentionPolicy.RollupHour, q.Interval == Interval.Hour ? $"toStartOfHour(bucket, {tz})" : $"toStartOfDay(bucket, {tz})");
        return q.Interval switch
        {
            Interval.Minute => [minute],
            Interval.Hour when wholeHours => [hour, minute],
            Interval.Day when utc => [(RetentionPolicy.RollupDay, "toDateTime(bucket, 'UTC')"), hour, minute],
            Interval.Day when wholeHours => [hour, minute],
            _ => [minute],
        };
    }

    /// <summary>
    /// The first of <paramref name="candidates"/> still holding the query's first day under the
    /// retention (docs/query-api.md, "Old ranges and retention"); none: the query is refused,
    /// naming the rollups that could answer it and how long they are kept.
    /// </summary>
    private (string Table, string BucketExpr) Kept(MetricsQuery q, (RetainedTable Table, string BucketExpr)[] candidates, string shape)
    {
        var now = Clock.GetUtcNow();
        foreach (var (table, expr) in candidates)
        {
            if (Retention.KeptFrom(table, now) is not { } horizon || q.From >= horizon) return (table.Name, expr);
        }
        string kept = string.Join("; ", candidates.Select(c =>
            $"{c.Table.Description} are kept {RetentionPeriod.Describe(Retention.PeriodOf(c.Table))} (from {Retention.KeptFrom(c.Table, now):yyyy-MM-dd} on)"));
        throw new QueryParameters.InvalidQueryException(string.Create(CultureInfo.InvariantCulture,
            $"from: {q.From:yyyy-MM-dd'T'HH:mm'Z'} is older than what answers {shape}: {kept}. Ask for a later from, or a coarser interval or whole days."));
    }

    /// <summary>
    /// The agent's "engagement" events (time on page, sent when a page is hidden) are not
    /// interactions: `events` leaves them out unless the query asks for them by name.
    /// Revenue is summed in micros of the site's currency (one currency per site assumed).
    /// </summary>
    private static string MetricColumns(MetricsQuery q) => string.Join(", ", q.Metrics.Select(m => m switch
    {
        "pageviews" => "sumIf(events, name = 'pageview')",
        "events" => q.EventName is null ? "sumIf(events, name != 'engagement')" : "sum(events)",
        "visitors" => "uniqMerge(visitors)",
        "visits" => "sum(visit_starts)",
        "revenue_micros" => "sum(revenue_micros)",
        "bots" => "sum(bots)",
        _ => throw new InvalidOperationException($"unknown metric {m}"),
    }));

    /// <summary>
    /// Reprocessing writes a new generation of rollup rows beside the old one and then activates
    /// it (schemas/clickhouse/003_generations.sql): count only each day's active generation, so
    /// a query sees the old numbers or the new ones, never both.
    /// </summary>
    private string ActiveGeneration(MetricsQuery q) => string.Create(CultureInfo.InvariantCulture,
        $"LEFT JOIN (SELECT day, argMax(generation, activated_at) AS active_generation FROM {database}.generations " +
        $"WHERE merchant_id = {q.MerchantId} AND site_id = {q.SiteId} GROUP BY day) AS active ON toDate(bucket) = active.day");

    private static string Scope(MetricsQuery q, string table)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"merchant_id = {q.MerchantId} AND site_id = {q.SiteId} AND generation = active.active_generation");
        if (table == "rollup_day")
        {
            sb.Append(CultureInfo.InvariantCulture, $" AND bucket >= toDate('{q.From.UtcDateTime:yyyy-MM-dd}') AND bucket < toDate('{CeilDay(q.To):yyyy-MM-dd}')");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture, $" AND bucket >= toDateTime({q.From.ToUnixTimeSeconds()}, 'UTC') AND bucket < toDateTime({q.To.ToUnixTimeSeconds()}, 'UTC')");
        }
        if (q.EventName is not null) sb.Append(" AND name = ").Append(ClickHouseSql.StringLiteral(q.EventName));
        return sb.ToString();
    }

    private static DateTime CeilDay(DateTimeOffset t)
    {
        var d = t.UtcDateTime.Date;
        return d == t.UtcDateTime ? d : d.AddDays(1);
    }


    private static long ReadLong(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? long.Parse(e.GetString()!, CultureInfo.InvariantCulture)
        : e.GetInt64();
}
