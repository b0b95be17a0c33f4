using System.Globalization;
using Analytics.QueryService.PreAggregates;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// One dashboard question: the query the planner gets (null: a question the pre-aggregates do
/// not answer, measured by its scan alone), and the scan of events_enriched that answers the same
/// question the way a fallback does (active generation, people only, visit dimensions from the
/// stamped entry columns).
/// </summary>
public sealed record Question(string Name, PreAggregateQuery? Query, string Scan, int Dimensions, int Metrics);

public static class Questions
{
    /// <summary>The dashboard's questions over the last 30 whole UTC days of one site.</summary>
    public static IReadOnlyList<Question> For(string db, ulong merchant, DateOnly lastDay)
    {
        var to = new DateTimeOffset(lastDay.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var from = to.AddDays(-30);
        PreAggregateQuery Q(string[] metrics, string[] dimensions, QueryFilter[]? filters = null, int limit = 10_000) =>
            new(merchant, merchant, from, to, TimeZoneInfo.Utc, metrics, dimensions, filters ?? []) { Limit = limit };
        string scope = string.Create(CultureInfo.InvariantCulture,
            $"e.merchant_id = {merchant} AND e.site_id = {merchant} AND e.received_at >= fromUnixTimestamp64Milli({from.ToUnixTimeMilliseconds()}, 'UTC') " +
            $"AND e.received_at < fromUnixTimestamp64Milli({to.ToUnixTimeMilliseconds()}, 'UTC') AND e.generation = a.active_generation AND e.is_bot = 0");
        string source = string.Create(CultureInfo.InvariantCulture,
            $"{db}.events_enriched AS e LEFT JOIN (SELECT day, argMax(generation, activated_at) AS active_generation FROM {db}.generations " +
            $"WHERE merchant_id = {merchant} AND site_id = {merchant} GROUP BY day) AS a ON toDate(e.received_at) = a.day");
        string Scan(string select, string group, string order, string where = "", int limit = 10_000) =>
            $"SELECT {select}, count() OVER () FROM {source} WHERE {scope}{where} {(group.Length > 0 ? "GROUP BY " + group : "")} ORDER BY {order} LIMIT {limit}";

        const string Visitors = "uniqExact(e.visitor_id)", Visits = "uniqExact(e.visit_id)", Pageviews = "countIf(e.name = 'pageview')";
        return
        [
            new("main graph: visitors, visits, pageviews by day", Q(["visitors", "visits", "pageviews"], ["time:day"]),
                Scan($"toString(toDate(e.received_at)) AS d0, {Visitors}, {Visits}, {Pageviews}", "d0", "d0"), 1, 3),
            new("top pages: visitors, pageviews (top 10)", Q(["visitors", "pageviews"], ["page"], limit: 10),
                Scan($"e.pathname AS d0, {Visitors} AS m0, {Pageviews}", "d0", "m0 DESC, d0", limit: 10), 1, 2),
            new("sources: visitors, visits (top 10)", Q(["visitors", "visits"], ["source"], limit: 10),
                Scan($"e.visit_source AS d0, {Visitors} AS m0, {Visits}", "d0", "m0 DESC, d0", limit: 10), 1, 2),
            new("countries: visitors (top 10)", Q(["visitors"], ["country"], limit: 10),
                Scan($"e.visit_country AS d0, {Visitors} AS m0", "d0", "m0 DESC, d0", limit: 10), 1, 1),
            new("devices: visitors, visits", Q(["visitors", "visits"], ["device"]),
                Scan($"e.visit_device AS d0, {Visitors} AS m0, {Visits}", "d0", "m0 DESC, d0"), 1, 2),
            new("filtered: source Google, visitors, visits, pageviews by day", Q(["visitors", "visits", "pageviews"], ["time:day"], [new("is", "source", ["Google"])]),
                Scan($"toString(toDate(e.received_at)) AS d0, {Visitors}, {Visits}, {Pageviews}", "d0", "d0", " AND e.visit_source = 'Google'"), 1, 3),
            // Not pre-aggregated: filters on two dimensions and a substring; the fallback's target is p95 ≤ 1 s.
            new("arbitrary filter: top pages, country DE, Mobile, path contains /p/1 (fallback)", null,
                Scan($"e.pathname AS d0, {Visitors} AS m0, {Pageviews}", "d0", "m0 DESC, d0",
                    " AND e.visit_country = 'DE' AND e.visit_device = 'Mobile' AND position(e.pathname, '/p/1') > 0", 10), 1, 2),
            new("funnel: entry → /p/1 → add_to_cart → purchase in 30 min (fallback)", null,
                $"SELECT level, count() FROM (SELECT e.visitor_id, windowFunnel(1800)(toDateTime(e.received_at), e.name = 'pageview', " +
                $"e.pathname = '/p/1', e.name = 'add_to_cart', e.name = 'purchase') AS level FROM {source} WHERE {scope} GROUP BY e.visitor_id) " +
                "GROUP BY level ORDER BY level", 1, 1),
        ];
    }
}
