using System.Globalization;
using System.Text;
using Analytics.QueryService.Query;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// Answers a query from the visit rollup (rollup_visits_day, schemas/clickhouse/011: one merged
/// row per visit) when that gives exactly the scan's raw columns (QuerySql.RawColumns), and
/// otherwise says why not. It is asked after the dimension rollup (PreAggregatePlanner), which
/// holds one row per day and value rather than per visit, so the smaller table answers what
/// both can. Exact because:
/// - the range is whole UTC days and a time dimension is time:day, time:week or time:month in a
///   zone that is UTC all year: visits end at UTC midnight, so every visit of the range is whole
///   in it, falls in one bucket, and its rollup row measures it over exactly its events in range;
/// - every dimension and every filter leaf is a visit dimension: a visit's events then all carry
///   the same values, so the selected events are whole visits, and per-visit sums (pageviews,
///   events, engagement) equal the scan's per-event sums. Filters may be any operator, case and
///   and/or/not combination: they are the scan's own SQL (QuerySql.FilterSql) over the same
///   per-visit values (v_source, v_entry_page…);
/// - metrics are those of people's visits: visitors, visits, pageviews, events, views_per_visit,
///   bounce_rate, visit_duration, time_on_page, percentage. Bots (no visit), goals and revenue
///   (not held) fall back.
/// The visit dimensions are the entry stamped on each event (010) except entry and exit page,
/// which are the argMin/argMax states of the visit's pageviews; the same tie order as the scan.
/// Every statement filters on the query's merchant and site (the control plane's) and reads each
/// day's active generation only.
/// </summary>
public static class VisitRollupPlanner
{
    public const string Table = "rollup_visits_day";

    /// <summary>
    /// Visits in the range from which reading the rows merged by the engine (`FINAL`, which merges
    /// a visit's rows while it reads the sorted parts) beats grouping them per visit (a hash table
    /// of every visit in the range). Measured on the embedded engine (docs/query-performance.md,
    /// "Reading the visit rollup with FINAL"): FINAL saves about 0.4 µs per visit and costs 6-12
    /// ms per statement however few visits it reads; the two meet near 20,000-30,000 visits.
    /// </summary>
    public const long MergedReadFromVisits = 25_000;

    private static readonly HashSet<string> Metrics =
        ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration", "time_on_page", "percentage"];

    /// <summary>SQL returning the dimensions and QuerySql.RawColumns per row, unordered; null and
    /// the reason when the visit rollup cannot answer exactly.</summary>
    /// <param name="merged">Read each visit's rows merged by the engine (`FINAL`) rather than
    /// grouped per visit (see <see cref="MergedReadFromVisits"/>); the same rows either way.</param>
    public static string? TryPlanRaw(NormalQuery q, string database, double maxExecutionSeconds, out string reason,
        IReadOnlyDictionary<DateOnly, ulong>? knownGenerations = null, bool merged = false)
    {
        if (!Planned(q, out reason)) return null;
        var inv = CultureInfo.InvariantCulture;
        var used = q.Dimensions.Where(d => d.Kind == DimensionKind.Visit).Select(d => d.Name)
            .Concat(QueryParser.Leaves(q.Filter).Select(l => l.Dimension.Name)).Distinct().ToList();
        var labels = q.Dimensions.Select((d, i) => (d.Kind == DimensionKind.Time ? TimeLabel(d.Argument!) : "v_" + d.Name) + $" AS d{i}").ToList();
        string select = string.Concat(labels.Select(l => l + ", "));
        string group = q.Dimensions.Count == 0 ? "" : " GROUP BY " + string.Join(", ", q.Dimensions.Select((_, i) => $"d{i}"));
        string where = q.Filter is null ? "" : " WHERE " + QuerySql.FilterSql(q.Filter, q);
        string perVisitRows = PerVisitRows(database, RangeCondition(q), used, merged);
        return string.Create(inv, $"""
            SELECT {select}uniqExact(visitor_id), count(), sum(pv), sum(ev), sum(eng), 0, sum(pv), countIf(pv <= 1 AND ia = 0), sum(dur), 0, 0, ([], []), ([], [])
            FROM (
                {PreAggregatePlanner.ActiveGenerations(q.MerchantId, q.SiteId, q.From, q.To, database, knownGenerations)}
                {perVisitRows})
            {where}{group}
            SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", inv)}
            """);
    }

    /// <summary>
    /// One row per visit of the rows <paramref name="range"/> selects: its day, id, visitor, pageviews
    /// (pv), interactions (ia), events (ev), engagement (eng), duration (dur) and each of
    /// <paramref name="used"/> visit dimensions as v_NAME. Parts not merged yet hold several rows
    /// of one visit (one per round): one row per visit either by grouping (a hash table of the
    /// range's visits) or by FINAL (the engine merges the sorted parts' rows of a key as it reads
    /// them; the range names key columns only, so it filters the merged rows, never a part of a visit).
    /// </summary>
    private static string PerVisitRows(string database, string range, IEnumerable<string> used, bool merged)
    {
        var inv = CultureInfo.InvariantCulture;
        var perVisit = new StringBuilder();
        foreach (var name in used)
        {
            string value = (name, merged) switch
            {
                ("entry_page", false) => "argMinMerge(entry_page)",
                ("exit_page", false) => "argMaxMerge(exit_page)",
                ("entry_page" or "exit_page", true) => $"finalizeAggregation({name})",
                (_, false) => $"any({name})",
                _ => name,
            };
            perVisit.Append(inv, $", toString({value}) AS v_{name}");
        }
        return merged
            ? $"""
                SELECT bucket, visit_id, visitor_id, pageviews AS pv, interactions AS ia, events AS ev, engagement_ms AS eng,
                    dateDiff('millisecond', first_at, last_at) AS dur{perVisit}
                FROM {database}.{Table} AS v FINAL
                WHERE {range}
                """
            : $"""
                SELECT bucket, visit_id, any(visitor_id) AS visitor_id, sum(pageviews) AS pv, sum(interactions) AS ia, sum(events) AS ev, sum(engagement_ms) AS eng,
                    dateDiff('millisecond', min(first_at), max(last_at)) AS dur{perVisit}
                FROM {database}.{Table} AS v
                WHERE {range}
                GROUP BY bucket, visit_id
                """;
    }

    /// <summary>
    /// Per day of <paramref name="days"/> and value of <paramref name="dimension"/> (a visit
    /// dimension, or "" for the site's visits as one value), in the days' active generations:
    /// visitors, visits, pageviews, events, engagement_ms, bounces and duration_ms, as UInt64
    /// (<see cref="ReadDaily"/> reads them). The same per-visit rows
    /// and aggregates as <see cref="TryPlanRaw"/>, grouped by day as well.
    /// </summary>
    internal static string DailyStatement(long merchantId, long siteId, string dimension, IReadOnlyList<DateOnly> days,
        IReadOnlyDictionary<DateOnly, ulong> generations, string database, double maxExecutionSeconds, bool merged)
    {
        var inv = CultureInfo.InvariantCulture;
        string range = $"v.merchant_id = {merchantId} AND v.site_id = {siteId} AND v.bucket IN ({PreAggregatePlanner.DayList(days)}) " +
            $"AND {PreAggregatePlanner.IsActive("v.bucket", "v.generation")}";
        string value = dimension == "" ? "''" : "v_" + dimension;
        return string.Create(inv, $"""
            SELECT bucket, {value} AS value, toUInt64(uniqExact(visitor_id)), toUInt64(count()), toUInt64(sum(pv)), toUInt64(sum(ev)), toUInt64(sum(eng)),
                toUInt64(countIf(pv <= 1 AND ia = 0)), toUInt64(sum(dur))
            FROM (
                {PreAggregatePlanner.ActiveGenerations(merchantId, siteId, days, database, generations)}
                {PerVisitRows(database, range, dimension == "" ? [] : [dimension], merged)})
            GROUP BY bucket, value
            SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", inv)}
            """);
    }

    /// <summary><see cref="DailyStatement"/>'s rows as the raw columns of <see cref="TryPlanRaw"/>.</summary>
    internal static List<DayRow> ReadDaily(ReadOnlySpan<byte> data) =>
        PreAggregatePlanner.DayRows(data, 7, c => [c[0], c[1], c[2], c[3], c[4], 0, c[2], c[5], c[6], 0, 0]);

    /// <summary>Whether the visit rollup answers <paramref name="q"/> exactly; see the class summary.</summary>
    internal static bool Answers(NormalQuery q) => Planned(q, out _);

    private static string RangeCondition(NormalQuery q) => string.Create(CultureInfo.InvariantCulture,
        $"v.merchant_id = {q.MerchantId} AND v.site_id = {q.SiteId} AND v.bucket >= toDate('{q.From.UtcDateTime:yyyy-MM-dd}') " +
        $"AND v.bucket < toDate('{q.To.UtcDateTime:yyyy-MM-dd}') AND {PreAggregatePlanner.IsActive("v.bucket", "v.generation")}");

    /// <summary>Whether the visit rollup answers <paramref name="q"/> exactly; see the class summary.</summary>
    private static bool Planned(NormalQuery q, out string reason)
    {
        reason = "";
        if (q.From.UtcTicks % TimeSpan.TicksPerDay != 0 || q.To.UtcTicks % TimeSpan.TicksPerDay != 0 || q.To <= q.From)
            return No(out reason, "the range is not whole UTC days");
        foreach (var d in q.Dimensions)
        {
            if (d.Kind == DimensionKind.Time && (d.Argument is not ("day" or "week" or "month")
                || q.TimeZone.BaseUtcOffset != TimeSpan.Zero || q.TimeZone.SupportsDaylightSavingTime))
                return No(out reason, "time buckets other than UTC days, weeks or months");
            if (d.Kind is DimensionKind.Event or DimensionKind.Goal) return No(out reason, $"dimension {d.Name} is not a visit dimension");
        }
        if (QueryParser.Leaves(q.Filter).FirstOrDefault(l => l.Dimension.Kind != DimensionKind.Visit) is { } leaf)
            return No(out reason, $"filter on {leaf.Dimension.Name}, not a visit dimension");
        if (q.Metrics.FirstOrDefault(m => !Metrics.Contains(m)) is { } metric)
            return No(out reason, $"metric {metric} is not in the visit rollup");
        return true;
    }

    private static string TimeLabel(string unit) => unit switch
    {
        "day" => "toString(bucket)",
        "week" => "toString(toMonday(bucket))",
        _ => "toString(toStartOfMonth(bucket))",
    };

    private static bool No(out string reason, string why)
    {
        reason = why;
        return false;
    }
}
