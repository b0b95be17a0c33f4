using System.Globalization;
using System.Text;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// Decides whether a query can be answered exactly from the dimension rollup
/// (rollup_dims_day, schemas/clickhouse/010) and writes that SQL; otherwise says why not, and
/// the caller scans enriched events. Exact means the same numbers as the scan, under the
/// contract's definitions, not an approximation:
/// - The range is whole UTC days, and a time dimension is time:day, time:week or time:month in a
///   zone that is UTC all year: the table's buckets are UTC days. (Visits end at UTC midnight, so over whole UTC
///   days every visit is whole, its first event is its entry, and visit_starts counts it once.)
/// - At most one non-time dimension, one the table holds; filters are `is` (case-sensitive) on
///   that same dimension, or, without one, all on one dimension the table holds.
/// - Metrics: visitors (exact uniqExact states), pageviews, events, percentage; visits and
///   views_per_visit only where visits are whole in a row (no event dimension or event-dimension
///   filter); bots with event dimensions only. Anything else (bounce_rate, visit_duration,
///   time_on_page, revenue, goals, entry/exit page, other operators, two dimensions…) falls back.
/// - entry_page is not held: the contract takes it from the visit's first pageview, which a
///   stamp written as events arrive cannot know when a visit starts with another event.
/// Every statement filters on the merchant and site of the query (never from the request) and
/// counts only each day's active generation, like every other reader.
/// </summary>
public static class PreAggregatePlanner
{
    public const string Table = "rollup_dims_day";

    public static readonly IReadOnlySet<string> EventDimensions = new HashSet<string> { "page", "hostname", "event" };

    public static readonly IReadOnlySet<string> VisitDimensions = new HashSet<string>
    {
        "source", "channel", "utm_source", "utm_medium", "utm_campaign", "country", "region", "city", "device", "browser", "os",
    };

    private static readonly HashSet<string> PeopleMetrics = ["visitors", "pageviews", "events", "visits", "views_per_visit", "percentage"];

    /// <summary>The plan: SQL returning the answer's rows (dimensions, metrics, total rows), or null and the reason.</summary>
    public static string? TryPlan(PreAggregateQuery q, string database, out string reason) => Plan(q, database, raw: false, 0, out reason);

    /// <summary>The plan for QueryEngine: SQL returning the dimensions and QuerySql.RawColumns
    /// (the scan's raw counts) for every row, unordered; null and the reason when not exact.</summary>
    public static string? TryPlanRaw(PreAggregateQuery q, string database, double maxExecutionSeconds, out string reason) =>
        Plan(q, database, raw: true, maxExecutionSeconds, out reason);

    internal static readonly Dictionary<string, string> TimeLabels = new()
    {
        ["time:day"] = "toString(bucket)",
        ["time:week"] = "toString(toMonday(bucket))",
        ["time:month"] = "toString(toStartOfMonth(bucket))",
    };

    private static string? Plan(PreAggregateQuery q, string database, bool raw, double maxExecutionSeconds, out string reason)
    {
        if (!DaysAndBuckets(q, out reason)) return null;
        var time = q.Dimensions.Where(d => d.StartsWith("time:", StringComparison.Ordinal)).ToList();
        var plain = q.Dimensions.Where(d => !d.StartsWith("time:", StringComparison.Ordinal)).ToList();
        if (plain.Count > 1) return No(out reason, "more than one non-time dimension");
        string? dimension = plain.Count == 1 ? plain[0] : null;
        if (dimension is not null && !Holds(dimension)) return No(out reason, $"dimension {dimension} is not pre-aggregated");

        string? filtered = null;
        HashSet<string>? values = null;
        foreach (var f in q.Filters)
        {
            if (f.Operator != "is" || !f.CaseSensitive) return No(out reason, $"filter operator {f.Operator}");
            if (!Holds(f.Dimension)) return No(out reason, $"filter on {f.Dimension}");
            if (filtered is not null && filtered != f.Dimension) return No(out reason, "filters on two dimensions");
            filtered = f.Dimension;
            values = values is null ? [.. f.Values] : [.. values.Intersect(f.Values)];
        }
        if (dimension is not null && filtered is not null && filtered != dimension) return No(out reason, "a filter on another dimension than the one grouped by");

        bool eventScope = (dimension ?? filtered) is { } scoped && EventDimensions.Contains(scoped);
        bool bots = q.Metrics.Contains("bots");
        if (bots && (dimension ?? filtered) is { } bd && VisitDimensions.Contains(bd)) return No(out reason, "bots with a visit dimension");
        foreach (var m in q.Metrics)
        {
            if (m != "bots" && !PeopleMetrics.Contains(m) && !(raw && GoalRevenuePlanner.IsRevenue(m))) return No(out reason, $"metric {m} is not pre-aggregated");
            if (eventScope && m is "visits" or "views_per_visit") return No(out reason, $"{m} with an event dimension or filter");
            if (m == "percentage" && dimension is null) return No(out reason, "percentage without a non-time dimension");
        }

        string source = dimension ?? filtered ?? "";
        var where = new StringBuilder(RowsOf(q, $"dimension = {ClickHouseSql.StringLiteral(source)}"));
        if (values is not null)
        {
            string list = values.Count == 0 ? "NULL" : string.Join(", ", values.Order(StringComparer.Ordinal).Select(ClickHouseSql.StringLiteral));
            where.Append(" AND value IN (").Append(list).Append(')');
        }

        var select = new List<string>();
        var group = new List<string>();
        for (int i = 0; i < q.Dimensions.Count; i++)
        {
            string expr = q.Dimensions[i].StartsWith("time:", StringComparison.Ordinal) ? TimeLabels[q.Dimensions[i]] : "value";
            select.Add($"{expr} AS d{i}");
            group.Add($"d{i}");
        }
        string active = ActiveGenerations(q, database);
        if (!raw)
        {
            for (int i = 0; i < q.Metrics.Count; i++) select.Add($"{MetricExpression(q.Metrics[i], database, where.ToString())} AS m{i}");
        }
        // A row exists where the selected events do: people's, and bots' too when bots are
        // asked for (rows of one kind hold zeros for the other), as in the scan of
        // events_enriched. Without dimensions there is always one row.
        string having = bots ? "(uniqExactMerge(visitors) > 0 OR sum(bots) > 0)" : "uniqExactMerge(visitors) > 0";
        if (raw)
        {
            // The raw columns of QuerySql.RawColumns, so QueryEngine turns them into metrics as it
            // does the scan's. visit_pageviews is the row's pageviews: where visits are planned
            // they are whole in the row. What the table does not hold is never planned (0 here).
            string rawColumns = "uniqExactMerge(visitors), sum(visit_starts), sum(pageviews), sum(events), 0, sum(bots), sum(pageviews), 0, 0, 0, 0, " +
                GoalRevenuePlanner.RevenueColumns(q.Metrics);
            string grouping = group.Count > 0 ? $" GROUP BY {string.Join(", ", group)} HAVING {having}" : "";
            string limit = maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture);
            if (q.DailyVisitorSums && !q.Metrics.Any(GoalRevenuePlanner.IsRevenue))
            {
                // A visitor id lives one UTC day (its salt changes at midnight): the range's
                // distinct visitors of a row are the sum of each day's, exactly. Each day's sets
                // are merged on their own (small sets), not one set per row over every day; a
                // filter naming several values merges them per day, so a visitor of two counts
                // once. Measured: docs/query-performance.md, "Visitors per day".
                string inner = string.Concat(select.Select(x => x + ", "));
                string outerGroup = group.Count > 0 ? $" GROUP BY {string.Join(", ", group)} HAVING {(bots ? "(sum(v) > 0 OR sum(b) > 0)" : "sum(v) > 0")}" : "";
                return $"{active}SELECT {string.Concat(group.Select(g => g + ", "))}sum(v), sum(s), sum(p), sum(e), 0, sum(b), sum(p), 0, 0, 0, 0, ([], []), ([], []) FROM (" +
                    $"SELECT {inner}uniqExactMerge(visitors) AS v, sum(visit_starts) AS s, sum(pageviews) AS p, sum(events) AS e, sum(bots) AS b " +
                    $"FROM {database}.{Table} WHERE {where} GROUP BY bucket{string.Concat(group.Select(g => ", " + g))}){outerGroup} SETTINGS max_execution_time = {limit}";
            }
            return $"{active}SELECT {string.Concat(select.Select(x => x + ", "))}{rawColumns} FROM {database}.{Table} WHERE {where}{grouping} SETTINGS max_execution_time = {limit}";
        }

        var order = new List<string>();
        foreach (var (key, descending) in q.OrderBy)
        {
            int m = IndexOf(q.Metrics, key), d = IndexOf(q.Dimensions, key);
            if (m < 0 && d < 0) return No(out reason, $"order by {key}");
            order.Add((m >= 0 ? $"m{m}" : $"d{d}") + (descending ? " DESC" : " ASC"));
        }
        if (q.OrderBy.Count == 0)
            order.Add(time.Count == 1 ? $"d{IndexOf(q.Dimensions, time[0])} ASC" : "m0 DESC");
        order.AddRange(group.Select(g => g + " ASC"));

        reason = "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{active}SELECT {string.Join(", ", select)}, count() OVER () AS total_rows FROM {database}.{Table} " +
            $"WHERE {where} {(group.Count > 0 ? $"GROUP BY {string.Join(", ", group)} HAVING {having}" : "")} " +
            $"ORDER BY {string.Join(", ", order)} LIMIT {q.Limit} OFFSET {q.Offset}");
    }

    private static string MetricExpression(string metric, string database, string where) => metric switch
    {
        "visitors" => "uniqExactMerge(visitors)",
        "pageviews" => "sum(pageviews)",
        "events" => "sum(events)",
        "visits" => "sum(visit_starts)",
        "views_per_visit" => "round(if(sum(visit_starts) = 0, 0, sum(pageviews) / sum(visit_starts)), 2)",
        "bots" => "sum(bots)",
        // The visitors of the same query without dimensions: the same rows merged into one set.
        // (Its rows' test on `active` reads the statement's WITH, which subqueries see.)
        "percentage" => $"round(uniqExactMerge(visitors) * 100 / (SELECT uniqExactMerge(visitors) FROM {database}.{Table} WHERE {where}), 1)",
        _ => throw new InvalidOperationException($"unplanned metric {metric}"),
    };

    /// <summary>The range is whole UTC days and a time dimension (at most one) is UTC days, weeks or months.</summary>
    internal static bool DaysAndBuckets(PreAggregateQuery q, out string reason)
    {
        var time = q.Dimensions.Where(d => d.StartsWith("time:", StringComparison.Ordinal)).ToList();
        reason = !WholeUtcDays(q.From) || !WholeUtcDays(q.To) || q.To <= q.From ? "the range is not whole UTC days"
            : time.Count > 1 ? "two time dimensions"
            : time.Count == 1 && (!TimeLabels.ContainsKey(time[0]) || !AlwaysUtc(q.TimeZone)) ? "time buckets other than UTC days, weeks or months"
            : "";
        return reason.Length == 0;
    }

    /// <summary>The rows of the query's site and range in each day's active generation (with
    /// <see cref="ActiveGenerations(PreAggregateQuery, string)"/> in front of the statement) that satisfy <paramref name="rows"/>.</summary>
    internal static string RowsOf(PreAggregateQuery q, string rows) => string.Create(CultureInfo.InvariantCulture,
        $"merchant_id = {q.MerchantId} AND site_id = {q.SiteId} AND {rows} " +
        $"AND bucket >= toDate('{q.From.UtcDateTime:yyyy-MM-dd}') AND bucket < toDate('{q.To.UtcDateTime:yyyy-MM-dd}') " +
        $"AND {IsActive("bucket", "generation")}");

    internal static string ActiveGenerations(PreAggregateQuery q, string database) =>
        ActiveGenerations((long)q.MerchantId, (long)q.SiteId, q.From, q.To, database, q.KnownGenerations);

    /// <summary>
    /// <c>WITH … AS active</c>: the active generation of every day of [from, to) that has one
    /// (argMax(generation, activated_at) per day in generations), as a scalar pair of arrays
    /// (days, generations), read once before the statement runs; <see cref="IsActive"/> tests a
    /// row against it, a day without a row in generations being generation 0.
    /// Why not a LEFT JOIN to the same subquery (what every reader did before): the join copied
    /// every row it passed, the uniqExact states included (a deep copy of each hash set), and
    /// kept the generation test out of PREWHERE. On the largest merchant's top pages (22,856
    /// page-day rows) the statement took 29-34 ms of CPU with the join and 20-25 with the scalar
    /// (docs/query-performance.md, "Where a question's time goes").
    /// With <paramref name="known"/>, the site's active generations as the caller read them
    /// (ActiveGenerationCache: every day with a row in generations, and its active generation),
    /// the same pair is written out as constants: no read of generations in the statement, which
    /// cost a small merchant's statement about a quarter of its time.
    /// </summary>
    internal static string ActiveGenerations(long merchantId, long siteId, DateTimeOffset from, DateTimeOffset to, string database,
        IReadOnlyDictionary<DateOnly, ulong>? known = null)
    {
        var inv = CultureInfo.InvariantCulture;
        if (known is null)
        {
            return string.Create(inv,
                $"WITH (SELECT (groupArray(day), groupArray(active_generation)) FROM (SELECT day, argMax(generation, activated_at) AS active_generation " +
                $"FROM {database}.generations WHERE merchant_id = {merchantId} AND site_id = {siteId} " +
                $"AND day >= toDate('{from.UtcDateTime:yyyy-MM-dd}') AND day <= toDate('{to.UtcDateTime.AddTicks(-1):yyyy-MM-dd}') GROUP BY day)) AS active ");
        }
        DateOnly first = DateOnly.FromDateTime(from.UtcDateTime), last = DateOnly.FromDateTime(to.UtcDateTime.AddTicks(-1));
        var days = known.Where(d => d.Key >= first && d.Key <= last).OrderBy(d => d.Key).ToList();
        return string.Create(inv,
            $"WITH (CAST([{string.Join(", ", days.Select(d => "'" + d.Key.ToString("yyyy-MM-dd", inv) + "'"))}] AS Array(Date)), " +
            $"CAST([{string.Join(", ", days.Select(d => d.Value.ToString(inv)))}] AS Array(UInt64))) AS active ");
    }

    /// <summary>The same, over the days from the first of <paramref name="days"/> to the last, <paramref name="known"/> given.</summary>
    internal static string ActiveGenerations(long merchantId, long siteId, IReadOnlyList<DateOnly> days, string database, IReadOnlyDictionary<DateOnly, ulong> known)
    {
        var (from, to) = DailyRowsCache.Span(days);
        return ActiveGenerations(merchantId, siteId, from, to, database, known);
    }

    /// <summary>
    /// Per day of <paramref name="days"/> and value of <paramref name="dimension"/> ("" for the
    /// site's totals, one value), in the days' active generations: visitors, visits, pageviews,
    /// events and bots as UInt64, what the per-day form reads before it adds the days up
    /// (<see cref="ReadDaily"/> reads them).
    /// </summary>
    /// <param name="writtenSince">Only the values with a row written by a round of a higher
    /// version (write_version, schemas/clickhouse/014), each value's numbers over all its rows:
    /// what changed in a day kept at that version (DailyRowsCache). Null: every value.</param>
    internal static string DailyStatement(long merchantId, long siteId, string dimension, IReadOnlyList<DateOnly> days,
        IReadOnlyDictionary<DateOnly, ulong> generations, string database, double maxExecutionSeconds, long? writtenSince = null)
    {
        var inv = CultureInfo.InvariantCulture;
        string rows = string.Create(inv, $"merchant_id = {merchantId} AND site_id = {siteId} AND dimension = {ClickHouseSql.StringLiteral(dimension)} AND bucket IN ({DayList(days)})");
        // The written values first, by a read of two light columns of the day's rows; then only
        // their rows (value is in the sorting key) have their visitor sets merged. Not much
        // cheaper in the engine where a round writes popular values, whose sets are most of a
        // day's (18-31 against 16-28 ms on the largest test merchant's pages): what it saves is
        // the other rows' parsing and adding up (docs/query-performance.md, "Today brought up to
        // date by the values a round wrote").
        string written = writtenSince is { } since
            ? string.Create(inv, $" AND value IN (SELECT value FROM {database}.{Table} WHERE {rows} AND write_version > {since})") : "";
        return string.Create(inv,
            $"{ActiveGenerations(merchantId, siteId, days, database, generations)}SELECT bucket, value, toUInt64(uniqExactMerge(visitors)), " +
            $"toUInt64(sum(visit_starts)), toUInt64(sum(pageviews)), toUInt64(sum(events)), toUInt64(sum(bots)) FROM {database}.{Table} " +
            $"WHERE {rows} AND {IsActive("bucket", "generation")}{written} GROUP BY bucket, value " +
            $"SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", inv)}");
    }

    /// <summary><see cref="DailyStatement"/>'s rows as the raw columns of the planner's statement
    /// (visit_pageviews is the row's pageviews: visits are whole in a row where they are planned).</summary>
    internal static List<DayRow> ReadDaily(ReadOnlySpan<byte> data) => DayRows(data, 5, c => [c[0], c[1], c[2], c[3], 0, c[4], c[2], 0, 0, 0, 0]);

    /// <summary>RowBinary rows of (Date, String, <paramref name="width"/> UInt64) as DayRows, their
    /// counts placed as raw columns by <paramref name="raw"/> (given one array for every row: it
    /// returns a new one).</summary>
    public static List<DayRow> DayRows(ReadOnlySpan<byte> data, int width, Func<long[], long[]> raw)
    {
        var rows = new List<DayRow>();
        var reader = new RowBinaryReader(data);
        var epoch = new DateOnly(1970, 1, 1);
        var counts = new long[width];
        while (!reader.End)
        {
            var day = epoch.AddDays(reader.ReadUInt16());
            string value = reader.ReadString();
            for (int i = 0; i < width; i++) counts[i] = (long)reader.ReadUInt64();
            rows.Add(new DayRow(day, value, raw(counts)));
        }
        return rows;
    }

    /// <summary>Days as a list of Date literals, for `bucket IN (…)`.</summary>
    internal static string DayList(IEnumerable<DateOnly> days) =>
        string.Join(", ", days.Select(d => "'" + d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + "'"));

    /// <summary>Whether a row of UTC day <paramref name="day"/> and <paramref name="generation"/> is
    /// in its day's active generation (<see cref="ActiveGenerations(long, long, DateTimeOffset, DateTimeOffset, string, IReadOnlyDictionary{DateOnly, ulong})"/>).</summary>
    internal static string IsActive(string day, string generation) =>
        $"{generation} = transform({day}, active.1, active.2, toUInt64(0))";

    private static bool Holds(string dimension) => EventDimensions.Contains(dimension) || VisitDimensions.Contains(dimension);

    private static bool WholeUtcDays(DateTimeOffset t) => t.UtcTicks % TimeSpan.TicksPerDay == 0;

    private static bool AlwaysUtc(TimeZoneInfo tz) => tz.BaseUtcOffset == TimeSpan.Zero && !tz.SupportsDaylightSavingTime;

    private static int IndexOf(IReadOnlyList<string> list, string key)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == key) return i;
        return -1;
    }

    private static string? No(out string reason, string why)
    {
        reason = why;
        return null;
    }
}

/// <summary>The planner in front of the query API's builder (QuerySql): a NormalQuery in its terms.</summary>
public static class NormalQueryPlanner
{
    /// <summary>SQL answering <paramref name="q"/>'s raw rows from the smallest pre-aggregate that
    /// answers it exactly: the dimension rollup (a row per day and value), else the visit rollup
    /// (a row per visit, VisitRollupPlanner); null (and why, for both) when only a scan of
    /// events_enriched does. A table in <paramref name="uncovered"/> lacks days of the range
    /// (PreAggregateCoverage) and is not read.</summary>
    /// <param name="largeSite">The site has many visits in the range (QueryEngine's estimate,
    /// VisitRollupPlanner.MergedReadFromVisits): read the forms that win at that size, the visit
    /// rollup merged by the engine and a top list's visitors summed per day.</param>
    public static string? TryPlanRaw(Query.NormalQuery q, string database, double maxExecutionSeconds, out string reason,
        IReadOnlySet<string>? uncovered = null, IReadOnlyDictionary<DateOnly, ulong>? knownGenerations = null, bool largeSite = false)
    {
        string dimensions = "", visits;
        string? sql = uncovered?.Contains(PreAggregatePlanner.Table) == true ? Uncovered(PreAggregatePlanner.Table, out dimensions)
            : TryPlanDimensions(q, database, maxExecutionSeconds, out dimensions, knownGenerations, largeSite);
        if (sql is not null)
        {
            reason = "";
            return sql;
        }
        sql = uncovered?.Contains(VisitRollupPlanner.Table) == true ? Uncovered(VisitRollupPlanner.Table, out visits)
            : VisitRollupPlanner.TryPlanRaw(q, database, maxExecutionSeconds, out visits, knownGenerations, largeSite);
        reason = sql is null ? $"dimension rollup: {dimensions}; visit rollup: {visits}" : "";
        return sql;
    }

    /// <summary>
    /// What DailyRowsCache reads for <paramref name="q"/> when it answers it, or null. The
    /// dimension rollup's questions (a plan exists for them there, so whole UTC days, UTC days,
    /// weeks or months as time buckets, at most one other dimension, `is` filters on it or on one
    /// dimension), without goals or revenue; else the visit rollup's (bounce rate, visit duration,
    /// entry and exit pages…), with at most one dimension besides time and no filter but `is`
    /// (case-sensitive, and-combined) on it or, without it, on one dimension. Either way not a
    /// filter naming several values without grouping by their dimension: its visitors are the
    /// union of the values' sets (a visitor of two values counts once), which kept per-value
    /// counts cannot give. A rollup lacking a day of the range (PreAggregateCoverage) is not read.
    /// </summary>
    public static DailyQuestion? DailyQuestion(Query.NormalQuery q, IReadOnlySet<string>? uncovered)
    {
        // Goals (a dimension, or a filter the goal planner reads) and revenue are not kept.
        if (q.HasGoalDimension || Query.QueryParser.Leaves(q.Filter).Any(l => l.Dimension.Kind == Query.DimensionKind.Goal)
            || q.Metrics.Any(GoalRevenuePlanner.IsRevenue))
            return null;
        DailyRollup rollup;
        // Whether a plan exists (its text is not used): the rollup's rules hold then.
        if (uncovered?.Contains(PreAggregatePlanner.Table) != true
            && TryPlanDimensions(q, "db", maxExecutionSeconds: 1, out _, knownGenerations: null, largeSite: true) is not null)
            rollup = DailyRollup.Dimensions;
        else if (uncovered?.Contains(VisitRollupPlanner.Table) != true && VisitRollupPlanner.Answers(q))
            rollup = DailyRollup.Visits;
        else
            return null;
        var grouped = q.Dimensions.Where(d => d.Kind != Query.DimensionKind.Time).ToList();
        if (grouped.Count > 1) return null;
        HashSet<string>? values = null;
        string? filtered = null;
        foreach (var filter in q.Filter switch { null => [], Query.FilterAnd and => and.Children, var f => [f] })
        {
            if (filter is not Query.FilterLeaf { Operator: "is", CaseSensitive: true } leaf || (filtered ?? leaf.Dimension.Name) != leaf.Dimension.Name)
                return null;
            filtered = leaf.Dimension.Name;
            values = values is null ? [.. leaf.Values] : [.. values.Intersect(leaf.Values)];
        }
        if (grouped.Count == 1 && filtered is not null && filtered != grouped[0].Name) return null;
        if (grouped.Count == 0 && values is { Count: > 1 }) return null;
        return new DailyQuestion(rollup, grouped.Count == 1 ? grouped[0].Name : filtered ?? "", values);
    }

    /// <summary>
    /// The goals of a question the goal plan answers (GoalRevenuePlanner: the goal dimension, or
    /// one `is` goal filter, optionally by time), for KeptGoalVisitors: every goal of the site, a
    /// row each, for the goal dimension; those the filter names, as one row, for the filter. Null
    /// for any other question, one asking revenue (kept per goal are visitors, pageviews and
    /// conversions), or more goals than KeptGoalVisitors.MaxGoals.
    /// </summary>
    public static (IReadOnlyList<ControlPlane.Goal> Goals, bool OneRow)? KeptGoals(Query.NormalQuery q)
    {
        var goalFilter = q.Filter as Query.FilterLeaf;
        if (!(q.HasGoalDimension || goalFilter?.Dimension.Kind == Query.DimensionKind.Goal) || q.Metrics.Any(GoalRevenuePlanner.IsRevenue)
            || TryPlanDimensions(q, "db", maxExecutionSeconds: 1, out _, knownGenerations: null, largeSite: true) is null)
            return null;
        // Planned, so the filter is that one goal filter or none.
        IReadOnlyList<ControlPlane.Goal> goals = q.HasGoalDimension ? q.Goals : GoalRevenuePlanner.Named(q.Goals, goalFilter!.Values, goalFilter.CaseSensitive);
        return goals.Count is 0 or > KeptGoalVisitors.MaxGoals ? null : (goals, !q.HasGoalDimension);
    }

    private static string? Uncovered(string table, out string reason)
    {
        reason = PreAggregateCoverage.Reason(table);
        return null;
    }

    private static string? TryPlanDimensions(Query.NormalQuery q, string database, double maxExecutionSeconds, out string reason,
        IReadOnlyDictionary<DateOnly, ulong>? knownGenerations, bool largeSite)
    {
        var filters = new List<QueryFilter>();
        foreach (var filter in q.Filter switch { null => [], Query.FilterAnd and => and.Children, var f => [f] })
        {
            if (filter is not Query.FilterLeaf leaf)
            {
                reason = "or/not filters";
                return null;
            }
            filters.Add(new QueryFilter(leaf.Operator, leaf.Dimension.Name, leaf.Values, leaf.CaseSensitive));
        }
        var query = new PreAggregateQuery((ulong)q.MerchantId, (ulong)q.SiteId, q.From, q.To, q.TimeZone, q.Metrics,
            q.Dimensions.Select(d => d.Name).ToList(), filters)
        {
            Goals = q.Goals,
            KnownGenerations = knownGenerations,
            // Only a top list (a dimension other than time): by day the days are apart already,
            // and the second aggregation costs a small site more than its small sets save.
            DailyVisitorSums = largeSite && q.Dimensions.Any(d => d.Kind != Query.DimensionKind.Time),
        };
        return q.HasGoalDimension || filters.Any(f => f.Dimension == "goal")
            ? GoalRevenuePlanner.TryPlanRaw(query, database, maxExecutionSeconds, out reason)
            : PreAggregatePlanner.TryPlanRaw(query, database, maxExecutionSeconds, out reason);
    }
}

/// <summary>The rollup a question's days are read from (NormalQueryPlanner.DailyQuestion).</summary>
public enum DailyRollup { Dimensions, Visits }

/// <summary>A question whose days one statement per rollup reads for DailyRowsCache: the rollup,
/// its dimension read ("" for the site's totals) and the values an `is` filter keeps (null: all).
/// Each value is summed on its own: a question never adds several values into one row.</summary>
public sealed record DailyQuestion(DailyRollup Rollup, string Dimension, IReadOnlySet<string>? Values);
