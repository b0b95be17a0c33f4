using System.Globalization;
using Analytics.ControlPlane;
using Analytics.QueryService.Goals;
using Analytics.QueryService.Query;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// One dashboard question: a POST /v1/query query after normalisation, answered by the query
/// engine with the planner in front (pre-aggregates where exact) and without it (the scan of
/// events_enriched every query falls back to); or, for the funnel, which the query API does not
/// pre-aggregate, one scan statement (built when asked: its form depends on the site's size,
/// which the query engine knows once the site's main graph was answered).
/// </summary>
public sealed record Question(string Name, NormalQuery? Query, Func<string>? Sql = null, bool Planned = true);

public static class Questions
{
    /// <summary>The dashboard's questions over the last 30 whole UTC days of one site;
    /// <paramref name="isLargeSite"/> as QueryEngine.IsLargeSite (the funnel's form).</summary>
    public static IReadOnlyList<Question> For(string db, ulong merchant, DateOnly lastDay, Func<NormalQuery, bool> isLargeSite)
    {
        var to = new DateTimeOffset(lastDay.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var from = to.AddDays(-30);
        // A path goal with a wildcard and an event goal (docs/query-api.md, "Goals").
        Goal[] goals = [new(1, (long)merchant, "Product 1x", GoalKinds.Page, "/p/1*", from), new(2, (long)merchant, "Signup", GoalKinds.Event, "signup", from)];
        NormalQuery Q(string[] metrics, string[] dimensions, FilterLeaf[]? filters = null, int limit = 10_000, bool timeLabels = false) => new(
            (long)merchant, (long)merchant, "bench", from, to, TimeZoneInfo.Utc, metrics,
            dimensions.Select(d => QueryVocabulary.ParseDimension(d)!).ToList(),
            filters is null || filters.Length == 0 ? null : filters.Length == 1 ? filters[0] : new FilterAnd(filters),
            dimensions.Any(d => d.StartsWith("time:", StringComparison.Ordinal)) ? [new(dimensions[0], false)] : [new(metrics[0], true)],
            limit, 0, timeLabels, null, goals, "30d");
        static FilterLeaf Is(string dimension, string value, string op = "is") => new(op, QueryVocabulary.ParseDimension(dimension)!, [value], true, "filters");
        string scope = string.Create(CultureInfo.InvariantCulture,
            $"e.merchant_id = {merchant} AND e.site_id = {merchant} AND e.received_at >= fromUnixTimestamp64Milli({from.ToUnixTimeMilliseconds()}, 'UTC') " +
            $"AND e.received_at < fromUnixTimestamp64Milli({to.ToUnixTimeMilliseconds()}, 'UTC') AND e.generation = a.active_generation AND e.is_bot = 0");
        string source = string.Create(CultureInfo.InvariantCulture,
            $"{db}.events_enriched AS e LEFT JOIN (SELECT day, argMax(generation, activated_at) AS active_generation FROM {db}.generations " +
            $"WHERE merchant_id = {merchant} AND site_id = {merchant} GROUP BY day) AS a ON toDate(e.received_at) = a.day");
        return
        [
            new("main graph: visitors, visits, pageviews, views per visit by day", Q(["visitors", "visits", "pageviews", "views_per_visit"], ["time:day"], timeLabels: true)),
            new("main graph: visitors, visits, bounce rate, visit duration by day", Q(["visitors", "visits", "bounce_rate", "visit_duration"], ["time:day"], timeLabels: true)),
            new("entry pages: visitors, bounce rate, visit duration (top 10)", Q(["visitors", "bounce_rate", "visit_duration"], ["entry_page"], limit: 10)),
            new("top pages: visitors, pageviews (top 10)", Q(["visitors", "pageviews"], ["page"], limit: 10)),
            new("sources: visitors, visits, share (top 10)", Q(["visitors", "visits", "percentage"], ["source"], limit: 10)),
            new("countries: visitors (top 10)", Q(["visitors"], ["country"], limit: 10)),
            new("devices: visitors, visits", Q(["visitors", "visits"], ["device"])),
            new("filtered: source Google, visitors, visits, pageviews by day", Q(["visitors", "visits", "pageviews"], ["time:day"], [Is("source", "Google")])),
            new("goal conversions (path goal + event goal): visitors, conversions, conversion rate", Q(["visitors", "conversions", "conversion_rate"], ["goal"])),
            new("revenue per currency by day: total and average", Q(["total_revenue", "average_revenue"], ["time:day"], timeLabels: true)),
            new("arbitrary filter: top pages, country DE, Mobile, path contains /p/1", Q(["visitors", "pageviews"], ["page"],
                [Is("country", "DE"), Is("device", "Mobile"), Is("page", "/p/1", "contains")], limit: 10), Planned: false),
            // The statement FunnelReader runs for a sequential funnel (one row per step an event
            // completes: a pageview of /p/1 is step 1 or step 2 of a chain, never both).
            new("funnel: pageview → /p/1 → add_to_cart → purchase in 30 min (windowFunnel scan)", null,
                () => "SELECT level, count() FROM (" + FunnelReader.SequentialLevels(
                    "SELECT e.visitor_id AS visitor_id, toUInt64(toUnixTimestamp64Milli(e.received_at)) AS t, e.log_offset AS log_offset, " +
                    "toUInt16(e.name = 'pageview') + toUInt16(e.name = 'pageview' AND e.pathname = '/p/1') * 2 + toUInt16(e.name = 'add_to_cart') * 4 + toUInt16(e.name = 'purchase') * 8 AS mask " +
                    $"FROM {source} WHERE {scope}", steps: 4, windowMs: 1_800_000, largeSite: isLargeSite(Q(["visitors"], []))) +
                ") WHERE level > 0 GROUP BY level ORDER BY level", Planned: false),
        ];
    }
}
