using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>One event that completes goals, as KeptGoalVisitors reads it: its visitor, whether it
/// is a pageview, and the goals it completes as bits (bit k: the k-th goal of the question).</summary>
public readonly record struct GoalEvent(ulong Visitor, bool Pageview, ulong Goals);

/// <summary>
/// A large site's day of one goal question (GoalRevenuePlanner's shape: the goal dimension, or one
/// goal filter) kept per goal as its visitors' ids and its pageviews and conversions. After a Rollup
/// round only the events the round wrote are read (their rows carry the round's write_version,
/// schemas/clickhouse/016): their visitors join the sets and their counts are added. The plan's
/// statement over the largest test merchant's today merges the visitor sets of every page row a
/// page goal matches, all of them again after each round (9,194 rows of "/p/1*" on its today).
/// <para>
/// Exact for the reason the plan is: a goal's conversions are the events that complete it (a page
/// goal's pageviews of the paths it matches, an event goal's events of its name), its visitors the
/// distinct visitors of those events, people only; both are unions over events, so a round's
/// events add to them (a set keeps a visitor once). With a goal filter naming several goals, an
/// event completing any of them counts once, as a rollup row matching any of them does. Kept as
/// KeptDays keeps a day: its events are exactly the rounds up to the version kept, and a later
/// round writes a higher version on every event it writes; an event is written once.
/// </para>
/// </summary>
/// <param name="maxVisitors">Visitor ids kept at most (<see cref="MaxVisitors"/>; smaller in tests).</param>
public sealed class KeptGoalVisitors(string database, SiteDayWrites writes, GenerationActivations activations, long maxVisitors = KeptGoalVisitors.MaxVisitors)
{
    /// <summary>Visitor ids kept at most, over all goals of all days kept: past it the least
    /// recently used days go until half is left. An id costs about 20 bytes in its goal's set; the
    /// largest test merchant's today has about 10,700 converted visitors over the two goals asked.</summary>
    public const long MaxVisitors = 2_000_000;

    /// <summary>Goals one kept question counts at most (a bit each in an event's mask).</summary>
    public const int MaxGoals = 64;

    private sealed class Day(ulong generation, int goals) : KeptDay(generation)
    {
        public readonly HashSet<ulong>[] Visitors = [.. Enumerable.Range(0, goals).Select(_ => new HashSet<ulong>())];
        public readonly long[] Pageviews = new long[goals], Conversions = new long[goals];
        public long VisitorCount;
        public override long Size => VisitorCount;
    }

    private readonly KeptDays<(long Merchant, long Site, UInt128 Shape, DateOnly Date), Day> _days = new(database, writes, activations, maxVisitors);

    /// <summary>Days read whole, and days brought up to date by the events written since (tests and docs).</summary>
    public long DaysRead => _days.DaysRead;
    public long DaysUpdated => _days.DaysUpdated;

    /// <summary>
    /// The day's rows as the goal plan gives them over that day (a row per goal in
    /// <paramref name="labels"/> with visitors: the label as the value, the raw columns
    /// QuerySql.RawColumns without the revenue maps): from the kept goals brought up to date by
    /// the events written since, or from all of the day's events. Null when an activation started
    /// meanwhile.
    /// </summary>
    /// <param name="shape">The plan's statement over a fixed day.</param>
    /// <param name="labels">The value of each goal's row (bit k of an event's mask: labels[k]).</param>
    /// <param name="read">Reads the day's events that complete a goal, or with a version only those written since.</param>
    public Task<List<DayRow>?> ReadAsync(long merchantId, long siteId, string shape, IReadOnlyList<string> labels, DateOnly date, ulong generation, long started,
        Func<long?, Task<List<GoalEvent>>> read)
    {
        if (labels.Count is 0 or > MaxGoals) throw new ArgumentOutOfRangeException(nameof(labels), $"1 to {MaxGoals} goals");
        var key = (merchantId, siteId, DailyRowsCache.ShapeKey(shape), date);
        return _days.UpdateAsync(key, merchantId, siteId, date, _days.Take(key, generation), () => new Day(generation, labels.Count), started, read, (day, events) =>
        {
            foreach (var e in events)
            {
                for (ulong goals = e.Goals; goals != 0; goals &= goals - 1)
                {
                    int k = System.Numerics.BitOperations.TrailingZeroCount(goals);
                    if (day.Visitors[k].Add(e.Visitor)) day.VisitorCount++;
                    day.Conversions[k]++;
                    if (e.Pageview) day.Pageviews[k]++;
                }
            }
            var rows = new List<DayRow>(labels.Count);
            for (int k = 0; k < labels.Count; k++)
            {
                long visitors = day.Visitors[k].Count, conversions = day.Conversions[k];
                // The plan's columns: visitors, visits, pageviews, events, engagement, bots, visit
                // pageviews, bounces, duration, conversions, converted visitors.
                if (visitors > 0) rows.Add(new DayRow(date, labels[k], [visitors, 0, day.Pageviews[k], conversions, 0, 0, 0, 0, 0, conversions, visitors]));
            }
            return rows;
        });
    }

    /// <summary>
    /// The events of <paramref name="day"/> (a NormalQuery over one UTC day: its site and range)
    /// that complete one of <paramref name="goals"/>, of those QuerySql's <c>sel</c> holds (each
    /// day's active generation, people only) read plainly (QuerySql.PeoplesEvents), each with the
    /// goals it completes as bits (bit k: goals[k]; with <paramref name="oneRow"/> bit 0: any of
    /// them); with <paramref name="writtenSince"/> only those Rollup rounds after that version
    /// wrote. Read with <see cref="ReadEvents"/>.
    /// </summary>
    public static string EventsStatement(Query.NormalQuery day, IReadOnlyList<ControlPlane.Goal> goals, bool oneRow, string database, double maxExecutionSeconds,
        IReadOnlyDictionary<DateOnly, ulong> generations, long? writtenSince)
    {
        string mask = oneRow
            ? $"toUInt64({string.Join(" OR ", goals.Select(Goals.GoalConditions.Sql))})"
            : string.Join(" + ", goals.Select((g, k) => $"bitShiftLeft(toUInt64({Goals.GoalConditions.Sql(g)}), {k})"));
        return Query.QuerySql.PeoplesEvents(day with { Filter = null, Dimensions = [] }, database, generations, writtenSince,
                $"visitor_id, toUInt8(name = 'pageview'), {mask} AS goals", "goals != 0") +
            $" SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)}";
    }

    public static List<GoalEvent> ReadEvents(ReadOnlySpan<byte> data)
    {
        var events = new List<GoalEvent>();
        var reader = new RowBinaryReader(data);
        while (!reader.End) events.Add(new GoalEvent(reader.ReadUInt64(), reader.ReadBool(), reader.ReadUInt64()));
        return events;
    }
}
