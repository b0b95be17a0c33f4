using System.Globalization;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Store;

namespace Analytics.QueryService.Goals;

/// <summary>
/// Counts a funnel in the engine, per visitor, over the site's enriched events in [from, to):
/// people only (is_bot = 0), the agent's engagement pings left out, and only each site-day's
/// active generation (reprocessing writes a new one beside the old; see MetricsReader).
/// A visitor reaches step k when, starting from one of their step-1 events in the range, steps
/// 2..k follow in order, each at most the window after that step-1 event.
/// Sequential: other events may come between steps; ClickHouse's windowFunnel computes exactly
/// that. Strict: the pageview or custom event right after a step must be the next step.
/// windowFunnel's 'strict_order' is not that (it stops at the first other event after ANY
/// step-1 event, so A X A B reaches 1, and it can continue a chain across a new step-1 event,
/// so A B A C reaches 3), hence strict is counted with array functions: for every step-1 event,
/// how many of the events right after it are the following steps within the window.
/// Tenant safety: merchant and site ids come from the control plane, never the request.
/// </summary>
public sealed class FunnelReader(IColumnStore store, string database)
{
    /// <summary>Visitors who reached each step (index 0 = step 1).</summary>
    public async Task<long[]> VisitorsPerStepAsync(long merchantId, long siteId, IReadOnlyList<Goal> steps, int windowSeconds, string order,
        DateTimeOffset from, DateTimeOffset to, string? filterSql, CancellationToken ct)
    {
        int n = steps.Count;
        long windowMs = windowSeconds * 1000L;
        var conditions = steps.Select(GoalConditions.Sql).ToList();
        string events = $"""
            SELECT visitor_id, toUInt64(toUnixTimestamp64Milli(received_at)) AS t, name, pathname, props, currency
            FROM {database}.events_enriched AS e
            LEFT JOIN (SELECT day, argMax(generation, activated_at) AS active_generation FROM {database}.generations
                       WHERE merchant_id = {merchantId} AND site_id = {siteId} GROUP BY day) AS active ON toDate(e.received_at) = active.day
            WHERE e.merchant_id = {merchantId} AND e.site_id = {siteId} AND e.generation = active.active_generation
              AND e.is_bot = 0 AND e.name != 'engagement'
              AND e.received_at >= fromUnixTimestamp64Milli(toInt64({from.ToUnixTimeMilliseconds()}), 'UTC')
              AND e.received_at < fromUnixTimestamp64Milli(toInt64({to.ToUnixTimeMilliseconds()}), 'UTC')
              {(filterSql is null ? "" : "AND " + filterSql)}
            """;
        string perVisitor;
        if (order == FunnelOrders.Strict)
        {
            // Every non-engagement event takes part: any of them between two steps breaks the chain.
            string mask = string.Join(" + ", conditions.Select((c, i) => $"toUInt16({c}) * {1 << i}"));
            perVisitor = $"""
                SELECT arraySort(groupArray((t, mask))) AS ev,
                  arrayMax(arrayMap(i -> if(bitTest(ev[i].2, 0),
                      arrayFirstIndex(j -> NOT (j < {n} AND bitTest(ev[i + j].2, j) AND ev[i + j].1 <= ev[i].1 + {windowMs}), range(1, {n + 1})),
                      0), arrayEnumerate(ev))) AS level
                FROM (SELECT visitor_id, t, {mask} AS mask FROM ({events}))
                GROUP BY visitor_id
                """;
        }
        else
        {
            perVisitor = $"""
                SELECT windowFunnel({windowMs})(t, {string.Join(", ", conditions)}) AS level
                FROM ({events})
                WHERE {string.Join(" OR ", conditions)}
                GROUP BY visitor_id
                """;
        }
        string sql = $"SELECT level, count() FROM ({perVisitor}) WHERE level > 0 GROUP BY level";
        var rows = await store.QueryRowsAsync(sql, ct);
        var reachedExactly = new long[n + 1];
        foreach (var row in rows) reachedExactly[(int)ReadLong(row[0])] += ReadLong(row[1]);
        var reached = new long[n];
        for (int k = n; k >= 1; k--) reached[k - 1] = reachedExactly[k] + (k < n ? reached[k] : 0);
        return reached;
    }

    /// <summary>The time of the site's first stored event (the start of date_range "all"), or null.</summary>
    public async Task<DateTimeOffset?> FirstEventAsync(long merchantId, long siteId, CancellationToken ct)
    {
        var rows = await store.QueryRowsAsync(string.Create(CultureInfo.InvariantCulture,
            $"SELECT count(), toUnixTimestamp64Milli(min(received_at)) FROM {database}.events_enriched WHERE merchant_id = {merchantId} AND site_id = {siteId}"), ct);
        return rows.Count == 0 || ReadLong(rows[0][0]) == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(ReadLong(rows[0][1]));
    }

    private static long ReadLong(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? long.Parse(e.GetString()!, CultureInfo.InvariantCulture)
        : e.GetInt64();
}
