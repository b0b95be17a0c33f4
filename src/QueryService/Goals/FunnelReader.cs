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
/// Each step is another event, later in the log: an event that completes two goals (a pageview of
/// /pricing for "any page" and "Pricing") is one step, never two. Events received in the same
/// millisecond (one batch) follow their order in the log, which is the order they were sent in.
/// Sequential: other events may come between steps; ClickHouse's windowFunnel computes that, but
/// it lets one event complete several steps (it tests an event's conditions in turn), and with
/// 'strict_increase' it drops a chain when one event completes two of them. So an event is split
/// into one row per step it completes, those of one event in descending step order (a step is
/// never advanced by the same event's earlier step), each row with a time of its own: the
/// millisecond · <see cref="TimeScale"/> + (the event's rank in its millisecond, in log order) · 8
/// + 7 − step; 'strict_increase' then takes a step only after a strictly earlier row. The window
/// scales with the times and stays exact (<see cref="ScaledWindow"/>).
/// Strict: the pageview or custom event right after a step must be the next step.
/// windowFunnel's 'strict_order' is not that (it stops at the first other event after ANY
/// step-1 event, so A X A B reaches 1, and it can continue a chain across a new step-1 event,
/// so A B A C reaches 3), hence strict is counted with array functions: for every step-1 event,
/// how many of the events right after it are the following steps within the window.
/// Tenant safety: merchant and site ids come from the control plane, never the request.
/// </summary>
public sealed class FunnelReader(IColumnStore store, string database)
{
    /// <summary>Rows of a visitor's one millisecond told apart: an event's rank in it times 8 (a
    /// funnel has at most 8 steps) plus its step's slot. Ranks beyond 8,191 (more events in one
    /// millisecond than a batch holds) share the last.</summary>
    private const long SlotsPerMillisecond = 65_536;

    /// <summary>Milliseconds are scaled by twice the slots, so a slot difference (less than
    /// <see cref="SlotsPerMillisecond"/> either way) never reaches a whole millisecond's step.</summary>
    private const long TimeScale = 2 * SlotsPerMillisecond;

    /// <summary>The window on scaled times: Δt ≤ w ms ⇔ Δt·scale + Δslot ≤ w·scale + slots − 1,
    /// since |Δslot| &lt; slots and scale − slots = slots (exactly window_seconds still counts,
    /// one millisecond more does not, whatever the slots).</summary>
    internal static long ScaledWindow(long windowMs) => windowMs * TimeScale + SlotsPerMillisecond - 1;

    /// <summary>A row's key in <see cref="SequentialLevels"/> (its SQL is Key there), for FunnelLevels.</summary>
    internal static ulong Key(ulong t, int rank, int step) =>
        t * TimeScale + (ulong)Math.Min(rank, SlotsPerMillisecond / 8 - 1) * 8 + 7 - (ulong)step;

    /// <summary>
    /// The sequential funnel's level per visitor (column <c>level</c>, 0 for none) over
    /// <paramref name="events"/>, a subquery with columns visitor_id, t (ms, UInt64), log_offset
    /// and mask (bit k: the event completes step k+1). See the class remarks. Also run by
    /// QueryBench, so the benchmark measures this statement.
    /// An event's rank in its millisecond (in log order) comes, for a small site, from
    /// <c>row_number() OVER (PARTITION BY visitor_id, t ORDER BY log_offset)</c>. For a
    /// <paramref name="largeSite"/> it comes from each visitor's events sorted as an array (the
    /// row's index minus that of the first row of its millisecond, found by where the time
    /// changes): the same numbers, without the window function's sort, which took about half of
    /// the statement for a merchant with 1.2M events in 30 days (the statement 675 → 411 ms p50).
    /// The arrays cost a small site 4-8 ms more (docs/query-performance.md), hence the two. No
    /// lambda here reads the visitor's array by index: a lambda that captures an array column gets
    /// a copy of it per element, which made one visitor of 10,000 events take 16 s.
    /// </summary>
    public static string SequentialLevels(string events, int steps, long windowMs, bool largeSite, bool byDay = false)
    {
        // By day: <paramref name="events"/> has a column day too, and each visitor's level is per day.
        string day = byDay ? "day, " : "", andDay = byDay ? ", day" : "";
        string conditions = string.Join(", ", Enumerable.Range(0, steps).Select(k => $"step = {k}"));
        string Key(string t, string rank) => $"toUInt64({t} * {TimeScale} + least({rank}, {SlotsPerMillisecond / 8 - 1}) * 8 + 7 - step)";
        return largeSite ? $"""
            SELECT {day}windowFunnel({ScaledWindow(windowMs)}, 'strict_increase')({Key("e.1", "i - first")}, {conditions}) AS level
            FROM (
              SELECT visitor_id{andDay}, arraySort(groupArray((t, log_offset, mask))) AS ev,
                arrayFill(x -> x != 0, arrayMap((d, i) -> if(i = 1 OR d != 0, i, 0), arrayDifference(arrayMap(x -> x.1, ev)), arrayEnumerate(ev))) AS first_of_ms
              FROM ({events}) WHERE mask != 0 GROUP BY visitor_id{andDay})
            ARRAY JOIN ev AS e, arrayEnumerate(ev) AS i, first_of_ms AS first
            ARRAY JOIN arrayFilter(k -> bitTest(e.3, k), range({steps})) AS step
            GROUP BY visitor_id{andDay}
            """ : $"""
            SELECT {day}windowFunnel({ScaledWindow(windowMs)}, 'strict_increase')({Key("t", "rank")}, {conditions}) AS level
            FROM (
              SELECT visitor_id{andDay}, t, row_number() OVER (PARTITION BY visitor_id, t ORDER BY log_offset) - 1 AS rank, mask
              FROM ({events}) WHERE mask != 0)
            ARRAY JOIN arrayFilter(k -> bitTest(mask, k), range({steps})) AS step
            GROUP BY visitor_id{andDay}
            """;
    }

    /// <summary>
    /// The strict funnel's level per visitor over <paramref name="events"/> (as
    /// <see cref="SequentialLevels"/>): every event takes part, as any of them between two steps
    /// breaks the chain. For each step-1 event of the visitor's sorted events, the events right
    /// after it are read from the same arrays shifted left by 1..steps−1 (time and mask of the
    /// j-th next event; past the end a mask of 0, which completes no step), so the level is
    /// 1 + c1·(1 + c2·(…)), cj: the j-th next event completes step j+1 within the window of the
    /// step-1 event. The shifted arrays are passed to one lambda rather than read by index inside
    /// it: a lambda that captures an array gets a copy of it per element (quadratic in the
    /// visitor's events).
    /// </summary>
    public static string StrictLevels(string events, int steps, long windowMs, bool byDay = false)
    {
        string day = byDay ? "day, " : "", andDay = byDay ? ", day" : "";
        string chain = "";
        for (int j = steps - 1; j >= 1; j--)
            chain = $"toUInt8(bitTest(m{j}, {j}) AND t{j} <= t0 + {windowMs}) * (1{(chain.Length == 0 ? "" : " + " + chain)})";
        string parameters = string.Join(", ", Enumerable.Range(0, steps).Select(j => $"t{j}, m{j}"));
        string arrays = string.Join(", ", Enumerable.Range(0, steps).Select(j => j == 0 ? "ts, ms" : $"arrayShiftLeft(ts, {j}), arrayShiftLeft(ms, {j})"));
        return $"""
            SELECT {day}arraySort(groupArray((t, log_offset, mask))) AS ev, arrayMap(x -> x.1, ev) AS ts, arrayMap(x -> x.3, ev) AS ms,
              arrayMax(arrayMap(({parameters}) -> if(bitTest(m0, 0), 1 + {chain}, 0), {arrays})) AS level
            FROM ({events})
            GROUP BY visitor_id{andDay}
            """;
    }

    /// <summary>Visitors who reached each step (index 0 = step 1), over the events
    /// <paramref name="q"/> selects (its range and filters; QuerySql's <c>sel</c>). Whole UTC days
    /// come from the numbers <paramref name="engine"/> keeps per day where it can
    /// (QueryEngine.KeptDaysAsync): a visitor id lives one UTC day, so a visitor's steps are all in
    /// one day and the visitors per level of several days are the sums of each day's. The rest is
    /// one statement, whose sequential form depends on the site's size (QueryEngine.IsLargeSite); a
    /// large site's one day to read comes from its visitors kept (PreAggregates.KeptFunnelVisitors),
    /// which after a round reads only the round's events and computes their visitors' levels in
    /// memory (FunnelLevels).</summary>
    /// <exception cref="QueryEngine.QueryTimeoutException">A statement ran past the engine's MaxExecutionSeconds.</exception>
    public async Task<long[]> VisitorsPerStepAsync(NormalQuery q, IReadOnlyList<Goal> steps, int windowSeconds, string order, QueryEngine engine, CancellationToken ct)
    {
        int n = steps.Count;
        bool largeSite = engine.IsLargeSite(q);
        string Statement(NormalQuery range, bool large, bool byDay, IReadOnlyDictionary<DateOnly, ulong>? generations = null) =>
            LevelsStatement(range, steps, windowSeconds, order, engine.MaxExecutionSeconds, large, byDay, generations);
        // The shape: the statement over a fixed day, so the same funnel over another range finds
        // its days (filters, goals, window and order are in it; the site's size changes only its form).
        var someDay = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
        string shape = "funnel:" + Statement(q with { From = someDay, To = someDay.AddDays(1) }, false, true);
        var reachedExactly = new long[n + 1];
        // A large site's one day to read (today, after a round) from its visitors kept: a round's
        // events are read, not the day's. Not with visit filters (KeptFunnelVisitors).
        var visitors = largeSite && !NeedsVisits(q) ? engine.KeptFunnelVisitors : null;
        long windowMs = windowSeconds * 1000L;
        bool strict = order == FunnelOrders.Strict;
        var kept = await engine.KeptDaysAsync(q, shape, async (days, generations, started) =>
        {
            // The form for the site's size over the days read, not the range asked: a large site's
            // today alone is read faster ranked by the window function (one day of the largest test
            // merchant, 42,000 events: 40 against 51 ms).
            var (from, to) = PreAggregates.DailyRowsCache.Span(days);
            var span = q with { From = from, To = to };
            if (visitors is not null && days.Count == 1)
                return await visitors.ReadAsync(q.MerchantId, q.SiteId, shape, n, days[0], generations.GetValueOrDefault(days[0]), started,
                    async since => await RunRowBinaryAsync(EventsStatement(span, steps, strict, engine.MaxExecutionSeconds, generations, since), ReadEvents, ct),
                    events => strict ? FunnelLevels.Strict(events, n, windowMs) : FunnelLevels.Sequential(events, n, windowMs));
            return [.. (await RunAsync(Statement(span, engine.IsLargeSite(span), true, generations), ct)).Select(row => new PreAggregates.DayRow(
                DateOnly.ParseExact(row[0].GetString()!, "yyyy-MM-dd", CultureInfo.InvariantCulture), ReadLong(row[1]).ToString(CultureInfo.InvariantCulture), [ReadLong(row[2])]))];
        }, ct);
        if (kept is not null)
            foreach (var ((_, level), row) in kept) reachedExactly[int.Parse(level, CultureInfo.InvariantCulture)] += row.Counts[0];
        else
            foreach (var row in await RunAsync(Statement(q, largeSite, false), ct)) reachedExactly[(int)ReadLong(row[0])] += ReadLong(row[1]);
        var reached = new long[n];
        for (int k = n; k >= 1; k--) reached[k - 1] = reachedExactly[k] + (k < n ? reached[k] : 0);
        return reached;
    }

    /// <summary>Rows (level, visitors) of the visitors who reached at least step 1, or with
    /// <paramref name="byDay"/> (day, level, visitors) per UTC day.</summary>
    private string LevelsStatement(NormalQuery q, IReadOnlyList<Goal> steps, int windowSeconds, string order, double maxExecutionSeconds, bool largeSite, bool byDay,
        IReadOnlyDictionary<DateOnly, ulong>? generations)
    {
        int n = steps.Count;
        long windowMs = windowSeconds * 1000L;
        var (selected, events) = Events(q, steps, byDay, generations);
        string perVisitor = order != FunnelOrders.Strict ? SequentialLevels(events, n, windowMs, largeSite, byDay) : StrictLevels(events, n, windowMs, byDay);
        string group = byDay ? "day, level" : "level";
        return $"{selected}SELECT {group}, count() FROM ({perVisitor}) WHERE level > 0 GROUP BY {group} SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture)}";
    }

    /// <summary>The events the level statements read, per visitor (visitor_id, t, log_offset, mask),
    /// for FunnelLevels: those that complete a step for the sequential order, all for the strict
    /// one (any event between two steps breaks a chain); with <paramref name="writtenSince"/> only
    /// those Rollup rounds after that version wrote. A plain read (QuerySql.PeoplesEvents), so never
    /// with visit filters.</summary>
    private string EventsStatement(NormalQuery q, IReadOnlyList<Goal> steps, bool strict, double maxExecutionSeconds,
        IReadOnlyDictionary<DateOnly, ulong> generations, long? writtenSince) =>
        QuerySql.PeoplesEvents(q, database, generations, writtenSince,
            $"visitor_id, toUInt64(toUnixTimestamp64Milli(received_at)) AS t, log_offset, toUInt16({Mask(steps)}) AS mask",
            "name != 'engagement'" + (strict ? "" : " AND mask != 0")) +
        $" SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture)}";

    /// <summary>The <c>WITH … sel</c> part (QuerySql.SelectedEvents) and the events subquery over it:
    /// every non-engagement event, with the steps it completes as bits.</summary>
    private (string Selected, string Events) Events(NormalQuery q, IReadOnlyList<Goal> steps, bool byDay, IReadOnlyDictionary<DateOnly, ulong>? generations)
    {
        string selected = QuerySql.SelectedEvents(q, database, bots: false, NeedsVisits(q), generations);
        return (selected, $"SELECT visitor_id, {(byDay ? "toDate(received_at) AS day, " : "")}toUInt64(toUnixTimestamp64Milli(received_at)) AS t, log_offset, {Mask(steps)} AS mask FROM sel WHERE name != 'engagement'");
    }

    /// <summary>The steps an event completes, as bits (bit k: step k+1).</summary>
    private static string Mask(IReadOnlyList<Goal> steps) =>
        string.Join(" + ", steps.Select(GoalConditions.Sql).Select((c, i) => $"toUInt16({c}) * {1 << i}"));

    private static bool NeedsVisits(NormalQuery q) => QueryParser.Leaves(q.Filter).Any(l => l.Dimension.Kind == DimensionKind.Visit);

    private static List<(ulong Visitor, PreAggregates.FunnelEvent Event)> ReadEvents(ReadOnlySpan<byte> data)
    {
        var rows = new List<(ulong, PreAggregates.FunnelEvent)>();
        var reader = new RowBinaryReader(data);
        while (!reader.End)
            rows.Add((reader.ReadUInt64(), new PreAggregates.FunnelEvent(reader.ReadUInt64(), reader.ReadUInt64(), reader.ReadUInt16())));
        return rows;
    }

    private async Task<T> RunRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken ct)
    {
        try
        {
            return await store.QueryRowBinaryAsync(sql, read, ct);
        }
        catch (Exception e) when (QueryEngine.IsTimeout(e))
        {
            throw new QueryEngine.QueryTimeoutException(e);
        }
    }

    private async Task<IReadOnlyList<JsonElement[]>> RunAsync(string sql, CancellationToken ct)
    {
        try
        {
            return await store.QueryRowsAsync(sql, ct);
        }
        catch (Exception e) when (QueryEngine.IsTimeout(e))
        {
            throw new QueryEngine.QueryTimeoutException(e);
        }
    }

    private static long ReadLong(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? long.Parse(e.GetString()!, CultureInfo.InvariantCulture)
        : e.GetInt64();
}
