using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
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
/// Exact as KeptVisits is: a day is kept only at a site-day version (SiteDayWrites) read while no
/// write of it ran and unchanged after the statement, so its events are exactly the rounds up to
/// that version; a round that began after it has a higher version on every event it writes, and an
/// event is written once. Days are kept per active generation (reprocessing writes a new one, with
/// version 0, which is read whole once active); a read during which an activation started is not
/// used. Only for funnels without visit filters: a visit's attributes come from all of its events,
/// so a round can change which of the visit's older events pass.
/// </para>
/// </summary>
/// <param name="maxEvents">Events kept at most (<see cref="MaxEvents"/>; smaller in tests).</param>
public sealed class KeptFunnelVisitors(string database, SiteDayWrites writes, GenerationActivations activations, long maxEvents = KeptFunnelVisitors.MaxEvents)
{
    /// <summary>Events kept at most: past it the least recently used days go until half is left.
    /// An event costs 24 bytes in its visitor's array, a visitor about 80 more (its array, its
    /// entry). The largest test merchant's today is about 33,000 events of 14,000 visitors per
    /// funnel asked: about 2 MB.</summary>
    public const long MaxEvents = 2_000_000;

    private sealed class Day(ulong generation, int steps)
    {
        public readonly ulong Generation = generation;
        public long Version, Used, Events;
        public readonly Dictionary<ulong, (FunnelEvent[] Events, int Level)> Visitors = [];
        /// <summary>Visitors per level reached (index 0: none).</summary>
        public readonly long[] Reached = new long[steps + 1];
    }

    /// <summary>A day is taken out while a question brings it up to date, and put back after: two
    /// questions never change one day at once (the second reads the day whole).</summary>
    private readonly ConcurrentDictionary<(long Merchant, long Site, UInt128 Shape, DateOnly Date), Day> _days = new();
    private readonly Lock _evicting = new();
    private long _events, _clock;

    /// <summary>Days read whole, and days brought up to date by the events written since (tests and docs).</summary>
    public long DaysRead => Interlocked.Read(ref _read);
    public long DaysUpdated => Interlocked.Read(ref _updated);
    private long _read, _updated;

    /// <summary>
    /// The day's visitors per level reached (rows of level ≥ 1 with visitors, as DailyRowsCache
    /// keeps a funnel's day: the level as the value, the visitors as the one count): from the kept
    /// visitors brought up to date by the events written since, or from all of the day's events.
    /// Null when an activation started meanwhile.
    /// </summary>
    /// <param name="shape">The funnel's statement over a fixed day (FunnelReader's shape).</param>
    /// <param name="read">Reads the day's events per visitor, or with a version only those written since.</param>
    /// <param name="level">A visitor's level from all of their events of the day, sorted.</param>
    public async Task<List<DayRow>?> ReadAsync(long merchantId, long siteId, string shape, int steps, DateOnly date, ulong generation, long started,
        Func<long?, Task<List<(ulong Visitor, FunnelEvent Event)>>> read, Func<FunnelEvent[], int> level)
    {
        var key = (merchantId, siteId, BinaryPrimitives.ReadUInt128LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(shape))), date);
        if (_days.TryRemove(key, out var day) && day.Generation != generation)
        {
            Interlocked.Add(ref _events, -day.Events);
            day = null;
        }
        bool quiet = writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, date, out long version);
        long before = day?.Events ?? 0;
        List<(ulong Visitor, FunnelEvent Event)> events;
        try
        {
            events = await read(day?.Version);
        }
        catch
        {
            Interlocked.Add(ref _events, -before); // the day taken out is dropped
            throw;
        }
        if (activations.Started != started)
        {
            Interlocked.Add(ref _events, -before); // reprocessing may have deleted what it read
            return null;
        }
        Interlocked.Increment(ref day is null ? ref _read : ref _updated);
        day ??= new Day(generation, steps);
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
        // Kept only at a version read while no write ran and unchanged after: then the events are
        // exactly the rounds up to it. Else dropped (the next question reads the day whole).
        day.Version = version;
        day.Used = Interlocked.Increment(ref _clock);
        if (quiet && writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, date, out long after) && after == version
            && _days.TryAdd(key, day))
        {
            if (Interlocked.Add(ref _events, day.Events - before) > maxEvents) Evict();
        }
        else
            Interlocked.Add(ref _events, -before);
        return rows;
    }

    /// <summary>Drops the least recently used days until half of the bound is left.</summary>
    private void Evict()
    {
        lock (_evicting)
        {
            if (Interlocked.Read(ref _events) <= maxEvents) return;
            // The count is lowered by what goes rather than recounted: a day taken out by a
            // question meanwhile is counted, and its question settles it when done.
            var entries = _days.ToArray();
            long left = entries.Sum(e => e.Value.Events);
            foreach (var entry in entries.OrderBy(e => e.Value.Used))
            {
                if (left <= maxEvents / 2) break;
                if (_days.TryRemove(entry))
                {
                    left -= entry.Value.Events;
                    Interlocked.Add(ref _events, -entry.Value.Events);
                }
            }
        }
    }
}
