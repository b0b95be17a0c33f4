using System.Globalization;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.QueryService.Goals;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// Goals and revenue from the dimension rollup (rollup_dims_day with the columns of
/// schemas/clickhouse/012), exactly or not at all, beside <see cref="PreAggregatePlanner"/> (which
/// calls <see cref="RevenueColumns"/> for revenue in its own plans and sends queries with a goal
/// dimension or goal filter here). Contract (docs/query-performance.md, "Goals and revenue"):
/// - Revenue per currency (total_revenue, average_revenue) wherever the planner plans the rest of
///   the query: every row holds the revenue of its events and the count of those with non-zero
///   revenue, per currency, summed with sumMap exactly as the scan sums them.
/// - A goal completes on rows of one dimension the rollup holds: an event goal on the `event` row
///   of its name (conversions: that row's events), a page goal on the `page` rows whose path
///   matches its pattern (conversions: their pageviews; converted visitors: their
///   pageview_visitors, not their visitors, who include people with only other events there).
///   Goals with a property match or a currency (the rollup holds neither per event name), and
///   event goals named `pageview` or `engagement` (not custom events: they overlap page goals or
///   are not counted in `events`), fall back to the scan.
/// - Shapes: the goal dimension alone, or one `is` goal filter with no dimension, each optionally
///   with time:day|week|month in UTC over whole UTC days. Another dimension or filter beside a
///   goal is refused: the rollup has one dimension per row, no goal × source cross tab. The rates'
///   denominators (the query without goal filter and goal dimension) are planned on their own.
/// - Rows written before migration 012 hold no revenue and no pageview visitors. A plan that
///   reads either ends with a column, min(written_012) over the rows it sums (1 when it sums
///   none); <see cref="Complete"/> says whether the caller may use the answer or must scan.
/// </summary>
public static class GoalRevenuePlanner
{
    public static bool IsRevenue(string metric) => metric is "total_revenue" or "average_revenue";

    /// <summary>1 when every row summed was written with the columns of migration 012.</summary>
    private const string Written012 = "toUInt8(count() = 0 OR min(written_012) = 1)";

    /// <summary>The last two raw columns of a plan (revenue and revenue events per currency),
    /// followed by the migration-012 marker when revenue is asked for.</summary>
    internal static string RevenueColumns(IReadOnlyList<string> metrics) =>
        metrics.Any(IsRevenue) ? $"sumMap(revenue), sumMap(revenue_events), {Written012}" : "([], []), ([], [])";

    /// <summary>Whether a plan's rows (dimensions, then the raw columns) may answer: false when
    /// they carry the marker column and a row summed rows written before migration 012.</summary>
    public static bool Complete(IReadOnlyList<JsonElement[]> rows, int dimensions, int rawColumns)
    {
        int marker = dimensions + rawColumns;
        return rows.All(r => r.Length <= marker || r[marker].ToString() != "0");
    }

    private static readonly HashSet<string> GoalMetrics =
        ["visitors", "pageviews", "events", "conversions", "conversion_rate", "group_conversion_rate", "percentage", "total_revenue", "average_revenue"];

    /// <summary>The plan of a query with the goal dimension or a goal filter, returning the raw
    /// columns of QuerySql.RawColumns (and the marker); null and why when not exact.</summary>
    public static string? TryPlanRaw(PreAggregateQuery q, string database, double maxExecutionSeconds, out string reason)
    {
        if (!PreAggregatePlanner.DaysAndBuckets(q, out reason)) return null;
        bool goalDimension = q.Dimensions.Contains("goal");
        if (q.Dimensions.Any(d => d != "goal" && !d.StartsWith("time:", StringComparison.Ordinal)))
            return No(out reason, "a goal with another dimension than time (the rollup holds no goal × dimension cross tab)");
        if (q.Filters.Any(f => f.Dimension != "goal")) return No(out reason, "a goal with a filter on another dimension");
        if (q.Filters.Count > 1) return No(out reason, "more than one goal filter");
        if (q.Filters is [{ Operator: not "is" } f]) return No(out reason, $"goal filter {f.Operator}");
        if (goalDimension && q.Filters.Count > 0) return No(out reason, "the goal dimension with a goal filter");

        var goals = goalDimension ? q.Goals : Named(q.Goals, q.Filters[0].Values, q.Filters[0].CaseSensitive);
        foreach (var g in goals)
        {
            if (g.Property is not null) return No(out reason, $"goal {g.Name} has a property match (the rollup holds no properties)");
            if (g.Currency is not null) return No(out reason, $"goal {g.Name} is a revenue goal (the rollup holds no visitors per currency)");
            if (g.Kind == GoalKinds.Event && g.Match is "pageview" or "engagement") return No(out reason, $"goal {g.Name} is an event goal on {g.Match}");
        }
        bool pages = goals.Any(g => g.Kind == GoalKinds.Page);
        foreach (var m in q.Metrics)
        {
            if (!GoalMetrics.Contains(m)) return No(out reason, $"metric {m} with a goal");
            if (IsRevenue(m) && pages) return No(out reason, $"{m} with a page goal (page rows hold the revenue of every event on the page)");
        }

        // A goal's rows: both kinds never share an event (page goals complete on pageviews, event
        // goals on custom events), so a row counts once however many goals in scope it completes.
        string Condition(Goal g) => g.Kind == GoalKinds.Page
            ? $"dimension = 'page' AND match(value, {ClickHouseSql.StringLiteral(GoalConditions.PathRegex(g.Match))})"
            : $"dimension = 'event' AND value = {ClickHouseSql.StringLiteral(g.Match)}";
        string rows = goals.Count == 0 ? "0" : "(" + string.Join(" OR ", goals.Select(g => $"({Condition(g)})")) + ")";

        var select = new List<string>();
        for (int i = 0; i < q.Dimensions.Count; i++)
        {
            string expr = q.Dimensions[i] == "goal"
                ? "arrayJoin(arrayFilter(x -> x != '', [" + string.Join(", ", goals.Select(g => $"if({Condition(g)}, {ClickHouseSql.StringLiteral(g.Name)}, '')")) + "]))"
                : PreAggregatePlanner.TimeLabels[q.Dimensions[i]];
            select.Add($"{expr} AS d{i}");
        }
        const string visitors = "uniqExactMerge(if(dimension = 'page', pageview_visitors, visitors))";
        const string conversions = "sum(if(dimension = 'page', pageviews, events))";
        string revenue = q.Metrics.Any(IsRevenue) ? "sumMap(revenue), sumMap(revenue_events)" : "([], []), ([], [])";
        bool marker = pages || q.Metrics.Any(IsRevenue);
        select.Add($"{visitors}, 0, sum(pageviews), {conversions}, 0, 0, 0, 0, 0, {conversions}, {visitors}, {revenue}" + (marker ? $", {Written012}" : ""));

        // Rows written before migration 012 have empty pageview_visitors: keep their groups, so
        // the marker sends the query to the scan instead of silently dropping a goal.
        string grouping = q.Dimensions.Count == 0 ? ""
            : $" GROUP BY {string.Join(", ", q.Dimensions.Select((_, i) => $"d{i}"))} HAVING {visitors} > 0" + (marker ? $" OR {Written012} = 0" : "");
        string limit = maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture);
        reason = "";
        return $"{PreAggregatePlanner.ActiveGenerations(q, database)}SELECT {string.Join(", ", select)} FROM {database}.{PreAggregatePlanner.Table} " +
            $"WHERE {PreAggregatePlanner.RowsOf(q, rows)}{grouping} SETTINGS max_execution_time = {limit}";
    }

    /// <summary>The goals a goal filter's values name.</summary>
    internal static List<Goal> Named(IReadOnlyList<Goal> goals, IReadOnlyList<string> values, bool caseSensitive) =>
        [.. goals.Where(g => values.Any(v => string.Equals(g.Name, v, caseSensitive ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase)))];

    private static string? No(out string reason, string why)
    {
        reason = why;
        return null;
    }
}
