using System.Globalization;
using System.Text;
using Analytics.QueryService.Goals;
using Analytics.Store;

namespace Analytics.QueryService.Query;

/// <summary>
/// The SQL of one normalised query over <c>events_enriched</c> (docs/query-api.md, "Metrics").
///
/// Entry point for planners: <see cref="Build"/> turns a <see cref="NormalQuery"/> into one
/// statement whose rows are <see cref="RawRow"/>s (the dimension labels, then the raw counts of
/// <see cref="RawColumns"/>); <see cref="QueryEngine"/> turns raw rows into metrics. A planner
/// that answers some queries from pre-aggregated tables only has to produce the same raw
/// columns for the same query.
///
/// Shape: <c>scan</c> is the site's non-bot events (bots too when <c>bots</c> is asked) of the
/// active generation of each site-day, from the UTC day start of From to the UTC day end of To,
/// so whole visits are seen (visitor ids, and so visits, never cross UTC midnight);
/// <c>visits</c> takes each visit's attributes from its first event (entry/exit page from its
/// first/last pageview) and measures it over its events in [From, To); <c>sel</c> is the events
/// in range passing the filters, each carrying its visit's attributes, so event filters select
/// events and visit filters whole visits, in any and/or/not combination. Rows are grouped per
/// (dimensions, visit) first, then per dimensions: a row's visits are those with a selected
/// event in the row. Tenant safety: the merchant and site ids (the control plane's, never the
/// request's) are in the WHERE of every table read; user strings go through
/// <see cref="ClickHouseSql.StringLiteral"/> and nowhere else.
/// </summary>
public static class QuerySql
{
    /// <summary>The raw aggregate columns after the dimensions, in order.</summary>
    public static readonly string[] RawColumns =
    [
        "visitors", "visits", "pageviews", "events", "engagement_ms", "bots",
        "visit_pageviews", "bounces", "duration_ms", "conversions", "converted_visitors", "revenue", "revenue_events",
    ];

    /// <summary>ClickHouse stops a query after this many seconds (answered 503 + Retry-After).</summary>
    public const int MaxExecutionSeconds = 10;

    public static string Build(NormalQuery q, string database, double maxExecutionSeconds = MaxExecutionSeconds)
    {
        bool bots = q.Metrics.Contains("bots");
        bool needVisits = q.Dimensions.Any(d => d.Kind == DimensionKind.Visit)
            || QueryParser.Leaves(q.Filter).Any(l => l.Dimension.Kind == DimensionKind.Visit)
            || q.Metrics.Any(QueryVocabulary.VisitMetrics.Contains);
        bool revenue = q.Metrics.Any(QueryVocabulary.RevenueMetrics.Contains);
        string? conversion = ConversionCondition(q);

        var sql = new StringBuilder(SelectedEvents(q, database, bots, needVisits));
        var inv = CultureInfo.InvariantCulture;
        var dims = q.Dimensions.Select((d, i) => $"d{i}").ToList();
        string dimList = string.Concat(dims.Select(d => d + ", "));
        sql.Append("SELECT ").Append(dimList).Append("""
            uniqExactIf(visitor_id, is_bot = 0), countIf(is_bot = 0), sumIf(n_pageviews, is_bot = 0), sumIf(n_events, is_bot = 0),
                sumIf(n_engagement, is_bot = 0), sumIf(n_all, is_bot = 1),
            """);
        sql.Append(needVisits ? " sumIf(vp, is_bot = 0), countIf(is_bot = 0 AND vp <= 1 AND vi = 0), sumIf(vd, is_bot = 0)," : " 0, 0, 0,");
        sql.Append(conversion is not null ? " sumIf(conv, is_bot = 0), uniqExactIf(visitor_id, is_bot = 0 AND conv > 0)," : " 0, 0,");
        sql.Append(revenue ? " sumMapIf(rev, is_bot = 0), sumMapIf(rev_n, is_bot = 0)\n" : " ([], []), ([], [])\n");
        sql.Append("FROM (\n    SELECT ");
        for (int i = 0; i < q.Dimensions.Count; i++) sql.Append(DimensionSql(q.Dimensions[i], q)).Append(" AS d").Append(i).Append(", ");
        sql.Append("""
            is_bot, visit_id, any(visitor_id) AS visitor_id, count() AS n_all, countIf(name = 'pageview') AS n_pageviews,
                    countIf(name != 'engagement') AS n_events, sumIf(engagement_ms, name = 'engagement') AS n_engagement
            """);
        if (needVisits) sql.Append(", any(v_pageviews) AS vp, any(v_interactions) AS vi, any(v_duration_ms) AS vd");
        if (conversion is not null) sql.Append(", countIf(").Append(conversion).Append(") AS conv");
        if (revenue) sql.Append(", sumMapIf([toString(currency)], [revenue_micros], revenue_micros != 0) AS rev, sumMapIf([toString(currency)], [toUInt64(1)], revenue_micros != 0) AS rev_n");
        sql.Append("\n    FROM sel GROUP BY ").Append(dimList).Append("is_bot, visit_id)\n");
        if (dims.Count > 0) sql.Append("GROUP BY ").Append(string.Join(", ", dims)).Append('\n');
        sql.Append("SETTINGS max_execution_time = ").Append(maxExecutionSeconds.ToString("0.######", inv));
        return sql.ToString();
    }

    /// <summary>The <c>WITH active, scan[, visits], sel</c> part of <see cref="Build"/>: <c>sel</c>
    /// is the selected events (in range, passing the filters, each with its visit's attributes).
    /// POST /v1/funnel reads <c>sel</c> too, so its filters mean what they mean here.</summary>
    /// <param name="generations">The site's active generations as the caller read them (every day
    /// with a row in generations; ActiveGenerationCache), written out as constants rather than
    /// joined from generations: one day of the largest test merchant's funnel, 58 → 51 ms. The
    /// caller must not use the answer if an activation started meanwhile.</param>
    internal static string SelectedEvents(NormalQuery q, string database, bool bots, bool needVisits,
        IReadOnlyDictionary<DateOnly, ulong>? generations = null)
    {
        var scanFrom = q.From.UtcDateTime.Date;
        var scanTo = q.To.UtcDateTime.Date == q.To.UtcDateTime ? q.To.UtcDateTime : q.To.UtcDateTime.Date.AddDays(1);
        var sql = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        string activeGenerations = generations is null ? string.Create(inv, $"""
            WITH
            active AS (
                SELECT day, argMax(generation, activated_at) AS active_generation FROM {database}.generations
                WHERE merchant_id = {q.MerchantId} AND site_id = {q.SiteId} AND day >= toDate('{scanFrom:yyyy-MM-dd}') AND day <= toDate('{scanTo:yyyy-MM-dd}')
                GROUP BY day),
            """) + "\n" : PreAggregates.PreAggregatePlanner.ActiveGenerations(q.MerchantId, q.SiteId,
                new DateTimeOffset(scanFrom, TimeSpan.Zero), new DateTimeOffset(scanTo, TimeSpan.Zero), database, generations) + ",\n";
        string join = generations is null ? " LEFT JOIN active ON toDate(e.received_at) = active.day" : "";
        string isActive = generations is null ? "e.generation = active.active_generation" : PreAggregates.PreAggregatePlanner.IsActive("toDate(e.received_at)", "e.generation");
        sql.Append(activeGenerations);
        sql.Append(inv, $"""
            scan AS (
                SELECT e.received_at AS received_at, e.log_offset AS log_offset, e.event_id AS event_id, e.name AS name, e.hostname AS hostname,
                    e.pathname AS pathname, e.referrer AS referrer, e.referrer_source AS referrer_source, e.channel AS channel,
                    e.utm_source AS utm_source, e.utm_medium AS utm_medium, e.utm_campaign AS utm_campaign, e.utm_content AS utm_content, e.utm_term AS utm_term,
                    e.country AS country, e.region AS region, e.city AS city, e.device AS device, e.browser AS browser, e.browser_version AS browser_version,
                    e.os AS os, e.os_version AS os_version, e.is_bot AS is_bot, e.props AS props, e.revenue_micros AS revenue_micros, e.currency AS currency,
                    e.engagement_ms AS engagement_ms, e.visitor_id AS visitor_id, e.visit_id AS visit_id,
                    e.received_at >= {Instant(q.From)} AND e.received_at < {Instant(q.To)} AS in_range
                FROM {database}.events_enriched AS e{join}
                WHERE e.merchant_id = {q.MerchantId} AND e.site_id = {q.SiteId}
                    AND e.received_at >= {Instant(scanFrom)} AND e.received_at < {Instant(scanTo)}
                    AND {isActive}{(bots ? "" : " AND e.is_bot = 0")}),

            """);
        if (needVisits)
        {
            sql.Append("visits AS (\n    SELECT visit_id");
            foreach (var (name, column) in QueryVocabulary.VisitDimensions)
            {
                string first = name switch
                {
                    "entry_page" => $"argMinIf({column}, (received_at, log_offset), name = 'pageview')",
                    "exit_page" => $"argMaxIf({column}, (received_at, log_offset), name = 'pageview')",
                    _ => $"argMin({column}, (received_at, log_offset))",
                };
                sql.Append(inv, $", {first} AS v_{name}");
            }
            sql.Append("""
                , countIf(in_range AND name = 'pageview') AS v_pageviews,
                    countIf(in_range AND name NOT IN ('pageview', 'engagement')) AS v_interactions,
                    dateDiff('millisecond', minIf(received_at, in_range), maxIf(received_at, in_range)) AS v_duration_ms
                    FROM scan WHERE is_bot = 0 GROUP BY visit_id),

                """);
        }
        sql.Append("sel AS (SELECT * FROM scan").Append(needVisits ? " LEFT JOIN visits USING (visit_id)" : "").Append(" WHERE in_range");
        if (q.Filter is not null) sql.Append(" AND ").Append(FilterSql(q.Filter, q));
        sql.Append(")\n");

        return sql.ToString();
    }

    /// <summary>The first event time of a site (for the range <c>all</c>); bots included, any generation.</summary>
    public static string FirstEvent(long merchantId, long siteId, string database) => string.Create(CultureInfo.InvariantCulture,
        $"SELECT toUnixTimestamp64Milli(min(received_at)), count() FROM {database}.events_enriched WHERE merchant_id = {merchantId} AND site_id = {siteId}");

    /// <summary>
    /// People's events of <paramref name="q"/>'s range passing its filters, each site-day's active
    /// generation only (what <see cref="SelectedEvents"/>' <c>sel</c> holds without bots), as one
    /// plain statement (<see cref="SiteEvents"/>) where <paramref name="condition"/> holds too.
    /// For the kept forms of a large site's today, which read a round's events after every round
    /// (KeptFunnelVisitors through FunnelReader, KeptGoalVisitors): the same read through
    /// <c>sel</c>'s common table expressions took the largest test merchant's funnel 14.5-15.8 ms
    /// p50 against 8.8-10.7 (docs/query-performance.md).
    /// Not for filters on visit dimensions: a visit's attributes come from all of its events.
    /// </summary>
    internal static string PeoplesEvents(NormalQuery q, string database, IReadOnlyDictionary<DateOnly, ulong> generations, long? writtenSince,
        string columns, string condition)
    {
        if (QueryParser.Leaves(q.Filter).Any(l => l.Dimension.Kind == DimensionKind.Visit))
            throw new ArgumentException("A visit filter needs all of a visit's events.", nameof(q));
        return SiteEvents(q.MerchantId, q.SiteId, q.From, q.To, database, generations, bots: false, writtenSince, columns,
            q.Filter is null ? condition : $"{FilterSql(q.Filter, q)} AND ({condition})");
    }

    /// <summary>
    /// A site's events of [<paramref name="from"/>, <paramref name="to"/>) in each day's active
    /// generation (<paramref name="generations"/>, written out as constants), bots' only with
    /// <paramref name="bots"/>, as one plain statement over events_enriched:
    /// <c>SELECT <paramref name="columns"/></c> where <paramref name="condition"/> holds too (it may
    /// name the columns' aliases), without SETTINGS. With <paramref name="writtenSince"/> only the
    /// events Rollup rounds after that version wrote (write_version, migration 016): what a day
    /// kept at that version lacks. What every kept form of a large site's today reads a round with.
    /// </summary>
    internal static string SiteEvents(long merchantId, long siteId, DateTimeOffset from, DateTimeOffset to, string database,
        IReadOnlyDictionary<DateOnly, ulong> generations, bool bots, long? writtenSince, string columns, string? condition = null)
    {
        var sql = new StringBuilder(PreAggregates.PreAggregatePlanner.ActiveGenerations(merchantId, siteId, from, to, database, generations));
        var inv = CultureInfo.InvariantCulture;
        sql.Append(inv, $"SELECT {columns} FROM {database}.events_enriched WHERE merchant_id = {merchantId} AND site_id = {siteId} ")
            .Append(inv, $"AND received_at >= {Instant(from)} AND received_at < {Instant(to)} AND {PreAggregates.PreAggregatePlanner.IsActive("toDate(received_at)", "generation")}");
        if (!bots) sql.Append(" AND is_bot = 0");
        if (writtenSince is { } since) sql.Append(inv, $" AND write_version > {since}");
        if (condition is not null) sql.Append(" AND (").Append(condition).Append(')');
        return sql.ToString();
    }

    /// <summary>An instant as the engine's UTC DateTime64 literal (milliseconds).</summary>
    internal static string Instant(DateTimeOffset t) => string.Create(CultureInfo.InvariantCulture, $"fromUnixTimestamp64Milli({t.ToUnixTimeMilliseconds()}, 'UTC')");

    private static string Instant(DateTime utc) => Instant(new DateTimeOffset(DateTime.SpecifyKind(utc, DateTimeKind.Utc)));

    /// <summary>Which events count as conversions: with the goal dimension, every event of the
    /// row (it completes the row's goal); with goal filters, events completing a goal named by an
    /// <c>is</c> filter, or, with only <c>is_not</c> filters, any goal not named by them.</summary>
    private static string? ConversionCondition(NormalQuery q)
    {
        if (!q.Metrics.Any(m => m is "conversions" or "conversion_rate" or "group_conversion_rate")) return null;
        if (q.HasGoalDimension) return "1";
        var goalLeaves = QueryParser.Leaves(q.Filter).Where(l => l.Dimension.Kind == DimensionKind.Goal).ToList();
        var named = goalLeaves.Where(l => l.Operator == "is").SelectMany(l => MatchingGoals(l, q)).Distinct().ToList();
        if (named.Count == 0)
        {
            var excluded = goalLeaves.SelectMany(l => MatchingGoals(l, q)).ToHashSet();
            named = q.Goals.Where(g => !excluded.Contains(g)).ToList();
        }
        return named.Count == 0 ? "0" : "(" + string.Join(" OR ", named.Select(GoalConditions.Sql)) + ")";
    }

    private static IEnumerable<ControlPlane.Goal> MatchingGoals(FilterLeaf leaf, NormalQuery q) =>
        q.Goals.Where(g => leaf.Values.Any(v => string.Equals(g.Name, v, leaf.CaseSensitive ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase)));

    private static string DimensionSql(Dimension d, NormalQuery q) => d.Kind switch
    {
        DimensionKind.Time => TimeBuckets.SqlLabel(d.Argument!, q.TimeZone),
        DimensionKind.Visit => "v_" + d.Name,
        // One event can complete several goals: one row per goal it completes, none for none.
        DimensionKind.Goal => q.Goals.Count == 0 ? "arrayJoin(CAST([], 'Array(String)'))"
            : "arrayJoin(arrayFilter(x -> x != '', [" + string.Join(", ", q.Goals.Select(g => $"if({GoalConditions.Sql(g)}, {ClickHouseSql.StringLiteral(g.Name)}, '')")) + "]))",
        _ => EventColumn(d),
    };

    private static string EventColumn(Dimension d) => d.Name.StartsWith("props:", StringComparison.Ordinal)
        ? $"props[{ClickHouseSql.StringLiteral(d.Argument!)}]"
        : QueryVocabulary.EventDimensions[d.Name];

    /// <summary>A filter tree as a condition over <c>sel</c>'s columns: a visit dimension reads
    /// <c>v_{name}</c> (the visit rollup's planner names its per-visit values the same).</summary>
    internal static string FilterSql(Filter filter, NormalQuery q) => filter switch
    {
        FilterAnd and => "(" + string.Join(" AND ", and.Children.Select(c => FilterSql(c, q))) + ")",
        FilterOr or => "(" + string.Join(" OR ", or.Children.Select(c => FilterSql(c, q))) + ")",
        FilterNot not => "NOT " + FilterSql(not.Child, q),
        FilterLeaf leaf => LeafSql(leaf, q),
        _ => throw new ArgumentOutOfRangeException(nameof(filter)),
    };

    private static string LeafSql(FilterLeaf leaf, NormalQuery q)
    {
        bool negate = leaf.Operator.EndsWith("_not", StringComparison.Ordinal);
        string positive;
        if (leaf.Dimension.Kind == DimensionKind.Goal)
        {
            var goals = MatchingGoals(leaf, q).ToList();
            positive = goals.Count == 0 ? "0" : "(" + string.Join(" OR ", goals.Select(GoalConditions.Sql)) + ")";
        }
        else
        {
            string column = leaf.Dimension.Kind == DimensionKind.Visit ? "v_" + leaf.Dimension.Name : EventColumn(leaf.Dimension);
            bool cs = leaf.CaseSensitive;
            var literals = leaf.Values.Select(ClickHouseSql.StringLiteral).ToList();
            positive = leaf.Operator switch
            {
                "is" or "is_not" => cs
                    ? $"has([{string.Join(", ", literals)}], {column})"
                    : $"has([{string.Join(", ", literals.Select(l => $"lowerUTF8({l})"))}], lowerUTF8({column}))",
                "contains" or "contains_not" => "(" + string.Join(" OR ", literals.Select(l => cs ? $"position({column}, {l}) > 0" : $"positionCaseInsensitiveUTF8({column}, {l}) > 0")) + ")",
                _ => "(" + string.Join(" OR ", leaf.Values.Select(v => $"match({column}, {ClickHouseSql.StringLiteral(cs ? v : "(?i)" + v)})")) + ")",
            };
        }
        return negate ? $"NOT {positive}" : positive;
    }

    /// <summary>Checks a regular expression with the engine that will run it.</summary>
    public static string RegexCheck(string pattern) => $"SELECT match('', {ClickHouseSql.StringLiteral(pattern)})";
}
