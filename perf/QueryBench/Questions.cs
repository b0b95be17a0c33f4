using System.Globalization;
using Analytics.ControlPlane;
using Analytics.QueryService.Goals;
using Analytics.QueryService.Query;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// One dashboard question: a POST /v1/query query after normalisation, answered by the query
/// engine with the planner in front (pre-aggregates and kept days where exact) and without it
/// (the scan of events_enriched every query falls back to); or, for the funnel, which POST
/// /v1/query does not answer, <see cref="Answer"/>: POST /v1/funnel's FunnelReader with the one
/// engine or the other (kept days, or its one statement every time).
/// </summary>
public sealed record Question(string Name, NormalQuery? Query, Func<QueryEngine, CancellationToken, Task<string>>? Answer = null, bool Planned = true);

public static class Questions
{
    /// <summary>The dashboard's questions over the last 30 whole UTC days of one site.</summary>
    public static IReadOnlyList<Question> For(IColumnStore store, string db, ulong merchant, DateOnly lastDay)
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
        // The funnel's steps: any pageview, a pageview of /p/1, then two custom events.
        Goal[] funnel = [new(3, (long)merchant, "Any page", GoalKinds.Page, "**", from), new(4, (long)merchant, "Product 1", GoalKinds.Page, "/p/1", from),
            new(5, (long)merchant, "Add to cart", GoalKinds.Event, "add_to_cart", from), new(6, (long)merchant, "Purchase", GoalKinds.Event, "purchase", from)];
        var reader = new FunnelReader(store, db);
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
            // POST /v1/funnel's answer, sequential (a pageview of /p/1 is step 1 or step 2 of a
            // chain, never both).
            new("funnel: pageview → /p/1 → add_to_cart → purchase in 30 min", Q(["visitors"], []), async (engine, ct) =>
                string.Join(" ", await reader.VisitorsPerStepAsync(Q(["visitors"], []), funnel, 1800, FunnelOrders.Sequential, engine, ct))),
        ];
    }
}
