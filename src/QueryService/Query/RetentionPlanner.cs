using System.Globalization;
using Analytics.QueryService.PreAggregates;
using Analytics.Store;

namespace Analytics.QueryService.Query;

/// <summary>
/// Queries over days whose enriched events have expired (docs/query-api.md, "Old ranges and
/// retention"). Contract: a range starting at or after the enriched events' horizon is planned as
/// always (the day rollups where exact, else a scan). A range reaching further back can only
/// be answered by the day rollups (rollup_dims_day: whole UTC days, the metrics and single
/// dimensions it holds; rollup_visits_day, kept as long: visit metrics by visit dimensions), and
/// only when they still hold the range's first day and lack none of its days (days stored before
/// they existed, PreAggregateCoverage: refused with field date_range); otherwise
/// the query is refused with the field at fault and why, never answered from what the scan
/// happens to find (days past the horizon may be partly deleted). The field is found by asking
/// the planner itself about each part of the query (the range, each dimension, each filter, each
/// metric), so what "the rollup holds" is defined in one place, PreAggregatePlanner.
/// </summary>
public static class RetentionPlanner
{
    /// <summary>Whether the scan of events_enriched sees every day of <paramref name="q"/>.</summary>
    public static bool EnrichedCovers(NormalQuery q, RetentionPolicy retention, DateTimeOffset now) =>
        retention.KeptFrom(RetentionPolicy.EventsEnriched, now) is not { } horizon || q.From >= horizon;

    /// <summary>The dimension rollup's SQL for a query reaching past the enriched horizon.</summary>
    /// <param name="uncovered">The pre-aggregate tables lacking days of the range (PreAggregateCoverage).</param>
    /// <param name="knownGenerations">The site's active generations when the caller knows them (ActiveGenerationCache).</param>
    /// <param name="largeSite">The site has many visits in the range (NormalQueryPlanner.TryPlanRaw).</param>
    /// <exception cref="QueryException">The rollup cannot answer it exactly, or no longer holds its first day, or lacks some of its days.</exception>
    public static string PlanOrRefuse(NormalQuery q, string database, double maxExecutionSeconds, RetentionPolicy retention, DateTimeOffset now,
        IReadOnlySet<string>? uncovered = null, IReadOnlyDictionary<DateOnly, ulong>? knownGenerations = null, bool largeSite = false)
    {
        var enriched = retention.KeptFrom(RetentionPolicy.EventsEnriched, now)!.Value;
        string kept = $"enriched events are kept {RetentionPeriod.Describe(retention.Enriched)} (from {Day(enriched)} on)";
        if (retention.KeptFrom(RetentionPolicy.RollupDimensions, now) is { } dims && q.From < dims)
        {
            throw new QueryException("date_range",
                $"The range starts {Day(q.From)}, before anything is kept: {kept}, and the day rollups {RetentionPeriod.Describe(retention.Dimensions)} " +
                $"(from {Day(dims)} on). Ask for a range from {Day(dims)} on.");
        }
        if (NormalQueryPlanner.TryPlanRaw(q, database, maxExecutionSeconds, out _, uncovered, knownGenerations, largeSite) is { } sql) return sql;
        if (uncovered is { Count: > 0 } && NormalQueryPlanner.TryPlanRaw(q, database, maxExecutionSeconds, out _) is not null)
        {
            throw new QueryException("date_range",
                $"The range starts {Day(q.From)}, before the enriched events' horizon ({kept}), and the day rollups lack some of its days: their events " +
                $"were stored before the day rollups existed (a database upgraded from an older schema) and were not reprocessed since. Ask for a range " +
                $"from {Day(enriched)} on, or reprocess those days (POST /admin/reprocess) while their raw events are kept.");
        }

        var (field, reason) = Culprit(q, database);
        throw new QueryException(field,
            $"The range starts {Day(q.From)}, before the enriched events' horizon ({kept}); older days are answered only from the day " +
            $"rollups, which cannot answer this exactly: {reason}. Ask for a range from {Day(enriched)} on, or for what the day rollups hold " +
            "(whole UTC days; visitors, visits, pageviews, events, views_per_visit, bots, percentage, revenue; at most one of the dimensions " +
            $"{string.Join(", ", PreAggregatePlanner.EventDimensions.Concat(PreAggregatePlanner.VisitDimensions).Order(StringComparer.Ordinal))} and time:day|week|month in UTC, " +
            "filtered with is on that dimension; or, from the visit rollup, visitors, visits, pageviews, events, views_per_visit, bounce_rate, " +
            "visit_duration, time_on_page and percentage by and filtered on visit dimensions only, entry_page and exit_page included).");
    }

    /// <summary>The refusal when the dimension rollup's rows of an old range were written before
    /// migration 012, so hold no revenue or pageview visitors, and the enriched events are gone.</summary>
    public static QueryException NotHeld(NormalQuery q, RetentionPolicy retention, DateTimeOffset now)
    {
        var enriched = retention.KeptFrom(RetentionPolicy.EventsEnriched, now)!.Value;
        return new QueryException("metrics",
            $"The range starts {Day(q.From)}, before the enriched events' horizon (enriched events are kept {RetentionPeriod.Describe(retention.Enriched)}, " +
            $"from {Day(enriched)} on), and its day rollups were written before they held revenue and page-goal visitors. Ask for a range from {Day(enriched)} on.");
    }

    /// <summary>The refusal of a question only enriched events can answer (<paramref name="what"/>,
    /// e.g. funnels) over a range reaching past their horizon.</summary>
    public static QueryException EventsOnly(NormalQuery q, RetentionPolicy retention, DateTimeOffset now, string what)
    {
        var enriched = retention.KeptFrom(RetentionPolicy.EventsEnriched, now)!.Value;
        return new QueryException("date_range",
            $"The range starts {Day(q.From)}, before the enriched events' horizon (enriched events are kept {RetentionPeriod.Describe(retention.Enriched)}, " +
            $"from {Day(enriched)} on), and {what} are computed from enriched events only. Ask for a range from {Day(enriched)} on.");
    }

    /// <summary>The first part of <paramref name="q"/> the dimension rollup cannot answer, and why.</summary>
    private static (string Field, string Reason) Culprit(NormalQuery q, string database)
    {
        var basis = q with { Metrics = ["visitors"], Dimensions = [], Filter = null };
        if (!Plans(basis, database, out var reason)) return ("date_range", reason);
        for (int i = 0; i < q.Dimensions.Count; i++)
        {
            if (!Plans(basis with { Dimensions = [q.Dimensions[i]] }, database, out reason)) return ($"dimensions[{i}]", reason);
        }
        var leaves = QueryParser.Leaves(q.Filter).ToList();
        if (q.Filter is not null && (q.Filter is not (FilterLeaf or FilterAnd) || q.Filter is FilterAnd { Children: var c } && c.Any(x => x is not FilterLeaf)))
            return ("filters", "or/not filters");
        foreach (var leaf in leaves)
        {
            if (!Plans(basis with { Filter = leaf }, database, out reason)) return (leaf.Path, reason);
        }
        if (!Plans(basis with { Dimensions = q.Dimensions, Filter = q.Filter }, database, out reason)) return ("dimensions", reason);
        for (int i = 0; i < q.Metrics.Count; i++)
        {
            if (!Plans(q with { Metrics = [q.Metrics[i]] }, database, out reason)) return ($"metrics[{i}]", reason);
        }
        return ("metrics", "this combination of metrics");
    }

    private static bool Plans(NormalQuery q, string database, out string reason) =>
        NormalQueryPlanner.TryPlanRaw(q, database, 1, out reason) is not null;

    private static string Day(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
