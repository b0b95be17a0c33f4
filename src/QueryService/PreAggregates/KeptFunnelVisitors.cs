using System.Globalization;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>One event of a visitor as a funnel reads it (FunnelReader's events): its time in
/// milliseconds, its place in the log, and the steps it completes as bits (bit k: step k+1).
/// Ordered as the engine's arraySort orders the tuples (time, log offset, mask).</summary>
public readonly record struct FunnelEvent(ulong T, ulong LogOffset, ushort Mask) : IComparable<FunnelEvent>
{
    public int CompareTo(FunnelEvent other) =>
        T != other.T ? T.CompareTo(other.T) : LogOffset != other.LogOffset ? LogOffset.CompareTo(other.LogOffset) : Mask.CompareTo(other.Mask);
}

/// <summary>
/// A large site's day of one funnel (its steps, window, order and filters: the shape) kept per
/// visitor: each visitor's events the funnel reads and the level they reached. After a Rollup
/// round only the events the round wrote are read (their rows carry the round's write_version,
/// schemas/clickhouse/016), and only the visitors they belong to get a new level, computed in
/// memory (Goals.FunnelLevels). FunnelReader asks it for the one day it reads of a funnel, which on
/// a busy site is today after each round: the whole statement over the largest test merchant's
/// today took 41-55 ms, reading its round's events 15-22.
/// <para>
/// Why per visitor: a visitor id lives one UTC day, so a day's levels are the day's visitors';
/// a new event changes its visitor's level only, but which level it reaches depends on all of the
/// visitor's events of the day, so those are kept.
/// </para>
/// <para>
/// Exact as KeptDays keeps a day (its events are exactly the rounds up to the version kept, and a
/// later round writes a higher version on every event it writes; an event is written once). Only
/// for funnels without visit filters: a visit's attributes come from all of its events, so a round
/// can change which of the visit's older events pass.
/// </para>
/// </summary>
/// <param name="maxEvents">Events kept at most (<see cref="MaxEvents"/>; smaller in tests).</param>
public sealed class KeptFunnelVisitors(string database, SiteDayWrites writes, GenerationActivations activations, long maxEvents = KeptFunnelVisitors.MaxEvents)
{
    /// <summary>Events kept at most: past it the least recently used days go until half is left.
    /// An event costs 24 bytes in its visitor's array, a visitor about 80 more (its array, its
    /// entry). The largest test merchant's today is about 46,000 events (engagement pings never
    /// pass a funnel) of 14,000 visitors: at most about 2 MB per funnel asked.</summary>
    public const long MaxEvents = 2_000_000;

    private sealed class Day(ulong generation, int steps) : KeptDay(generation)
    {
        public long Events;
        public readonly Dictionary<ulong, (FunnelEvent[] Events, int Level)> Visitors = [];
        /// <summary>Visitors per level reached (index 0: none).</summary>
        public readonly long[] Reached = new long[steps + 1];
        public override long Size => Events;
    }

    private readonly KeptDays<(long Merchant, long Site, UInt128 Shape, DateOnly Date), Day> _days = new(database, writes, activations, maxEvents);

    /// <summary>Days read whole, and days brought up to date by the events written since (tests and docs).</summary>
    public long DaysRead => _days.DaysRead;
    public long DaysUpdated => _days.DaysUpdated;

    /// <summary>
    /// The day's visitors per level reached (rows of level ≥ 1 with visitors, as DailyRowsCache
    /// keeps a funnel's day: the level as the value, the visitors as the one count): from the kept
    /// visitors brought up to date by the events written since, or from all of the day's events.
    /// Null when an activation started meanwhile.
    /// </summary>
    /// <param name="shape">The funnel's statement over a fixed day (FunnelReader's shape).</param>
    /// <param name="read">Reads the day's events per visitor, or with a version only those written since.</param>
    /// <param name="level">A visitor's level from all of their events of the day, sorted.</param>
    public Task<List<DayRow>?> ReadAsync(long merchantId, long siteId, string shape, int steps, DateOnly date, ulong generation, long started,
        Func<long?, Task<List<(ulong Visitor, FunnelEvent Event)>>> read, Func<FunnelEvent[], int> level)
    {
        var key = (merchantId, siteId, DailyRowsCache.ShapeKey(shape), date);
        return _days.UpdateAsync(key, merchantId, siteId, date, _days.Take(key, generation), () => new Day(generation, steps), started, read, (day, events) =>
        {
            foreach (var group in events.GroupBy(e => e.Visitor, e => e.Event))
            {
                FunnelEvent[] all;
                if (day.Visitors.TryGetValue(group.Key, out var kept))
                {
                    day.Reached[kept.Level]--;
                    all = [.. kept.Events, .. group];
                }
                else
                    all = [.. group];
                Array.Sort(all);
                int reached = level(all);
                day.Reached[reached]++;
                day.Visitors[group.Key] = (all, reached);
                day.Events += all.Length - (kept.Events?.Length ?? 0);
            }
            var rows = new List<DayRow>(steps);
            for (int k = 1; k <= steps; k++)
                if (day.Reached[k] > 0) rows.Add(new DayRow(date, k.ToString(CultureInfo.InvariantCulture), [day.Reached[k]]));
            return rows;
        });
    }
}
