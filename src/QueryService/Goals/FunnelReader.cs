using System.Globalization;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.QueryService.Query;
using Analytics.Store;

namespace Analytics.QueryService.Goals;

/// <summary>
/// Counts a funnel in the engine, per visitor, over the events a query selects (QuerySql's
/// <c>sel</c>: the site's events in [from, to) passing the filters, each site-day's active
/// generation only, people only), the agent's engagement pings left out.
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
    /// <summary>Visitors who reached each step (index 0 = step 1), over the events
    /// <paramref name="q"/> selects (its range and filters; QuerySql's <c>sel</c>).</summary>
    /// <exception cref="QueryEngine.QueryTimeoutException">The statement ran past <paramref name="maxExecutionSeconds"/>.</exception>
    public async Task<long[]> VisitorsPerStepAsync(NormalQuery q, IReadOnlyList<Goal> steps, int windowSeconds, string order, double maxExecutionSeconds, CancellationToken ct)
    {
        int n = steps.Count;
        long windowMs = windowSeconds * 1000L;
        var conditions = steps.Select(GoalConditions.Sql).ToList();
        bool needVisits = QueryParser.Leaves(q.Filter).Any(l => l.Dimension.Kind == DimensionKind.Visit);
        string selected = QuerySql.SelectedEvents(q, database, bots: false, needVisits);
        const string events = "SELECT visitor_id, toUInt64(toUnixTimestamp64Milli(received_at)) AS t, name, pathname, props, currency FROM sel WHERE name != 'engagement'";
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
        string sql = $"{selected}SELECT level, count() FROM ({perVisitor}) WHERE level > 0 GROUP BY level SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture)}";
        IReadOnlyList<JsonElement[]> rows;
        try
        {
            rows = await store.QueryRowsAsync(sql, ct);
        }
        catch (Exception e) when (QueryEngine.IsTimeout(e))
        {
            throw new QueryEngine.QueryTimeoutException(e);
        }
        var reachedExactly = new long[n + 1];
        foreach (var row in rows) reachedExactly[(int)ReadLong(row[0])] += ReadLong(row[1]);
        var reached = new long[n];
        for (int k = n; k >= 1; k--) reached[k - 1] = reachedExactly[k] + (k < n ? reached[k] : 0);
        return reached;
    }

    private static long ReadLong(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? long.Parse(e.GetString()!, CultureInfo.InvariantCulture)
        : e.GetInt64();
}
