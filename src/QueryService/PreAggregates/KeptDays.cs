using System.Collections.Concurrent;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>A day KeptDays keeps: of one active generation, at the site-day version it was read at.</summary>
internal abstract class KeptDay(ulong generation)
{
    public readonly ulong Generation = generation;
    public long Version, Used;

    /// <summary>What the bound counts (visits, events).</summary>
    public abstract long Size { get; }
}

/// <summary>
/// How KeptVisits and KeptFunnelVisitors keep a large site's day between Rollup rounds and bring
/// it up to date by what a round wrote (the rows' write_version). Exact because a day is kept only
/// at a site-day version (SiteDayWrites) read while no write of it ran and unchanged after the
/// read: it then holds exactly the rounds up to that version, and every round after it writes a
/// higher version on every row it writes. A read during which an activation started is not used
/// (reprocessing may have deleted what it read). A day is taken out while a question brings it up
/// to date and put back after, so two questions never change one day at once (the second reads it
/// whole). At most <paramref name="max"/> of the days' sizes are kept, the least recently used days
/// dropped past it.
/// </summary>
internal sealed class KeptDays<TKey, TDay>(string database, SiteDayWrites writes, GenerationActivations activations, long max)
    where TKey : notnull where TDay : KeptDay
{
    private readonly ConcurrentDictionary<TKey, TDay> _days = new();
    private readonly Lock _evicting = new();
    private long _size, _clock, _read, _updated;

    /// <summary>Days read whole, and days brought up to date by the rows written since.</summary>
    public long DaysRead => Interlocked.Read(ref _read);
    public long DaysUpdated => Interlocked.Read(ref _updated);

    /// <summary>The day kept under <paramref name="key"/>, taken out (null when none, or when of
    /// another generation, which is dropped). Give it back to <see cref="UpdateAsync"/> or <see cref="PutBack"/>.</summary>
    public TDay? Take(TKey key, ulong generation)
    {
        if (!_days.TryRemove(key, out var day)) return null;
        if (day.Generation == generation) return day;
        Interlocked.Add(ref _size, -day.Size);
        return null;
    }

    /// <summary>The day kept under <paramref name="key"/> at version <paramref name="since"/>, taken
    /// out as by <see cref="Take"/>; null when none is. One kept at another version (by a read
    /// whose numbers DailyRowsCache did not keep) stays, for the caller's whole read, which brings
    /// it up to date from there.</summary>
    public TDay? TakeAt(TKey key, ulong generation, long since)
    {
        if (Take(key, generation) is not { } day) return null;
        if (day.Version == since) return day;
        PutBack(key, day);
        return null;
    }

    /// <summary>A day taken out and left as it was (dropped if another was kept meanwhile).</summary>
    public void PutBack(TKey key, TDay day)
    {
        if (!_days.TryAdd(key, day)) Interlocked.Add(ref _size, -day.Size);
    }

    /// <summary>
    /// Reads the rows written since <paramref name="day"/>'s version (all of the day's without a day),
    /// applies them to it (a new day from <paramref name="create"/>) and keeps it if the day was quiet
    /// throughout. Null when an activation started meanwhile.
    /// </summary>
    public async Task<List<DayRow>?> UpdateAsync<TRows>(TKey key, long merchantId, long siteId, DateOnly date, TDay? day, Func<TDay> create, long started,
        Func<long?, Task<TRows>> read, Func<TDay, TRows, List<DayRow>> apply)
    {
        bool quiet = writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, date, out long version);
        long before = day?.Size ?? 0;
        TRows rows;
        try
        {
            rows = await read(day?.Version);
        }
        catch
        {
            Interlocked.Add(ref _size, -before); // the day taken out is dropped
            throw;
        }
        if (activations.Started != started)
        {
            Interlocked.Add(ref _size, -before);
            return null;
        }
        Interlocked.Increment(ref day is null ? ref _read : ref _updated);
        day ??= create();
        var answer = apply(day, rows);
        day.Version = version;
        day.Used = Interlocked.Increment(ref _clock);
        if (quiet && writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, date, out long after) && after == version
            && _days.TryAdd(key, day))
        {
            if (Interlocked.Add(ref _size, day.Size - before) > max) Evict();
        }
        else
            Interlocked.Add(ref _size, -before);
        return answer;
    }

    /// <summary>Drops the least recently used days until half of the bound is left.</summary>
    private void Evict()
    {
        lock (_evicting)
        {
            if (Interlocked.Read(ref _size) <= max) return;
            // The count is lowered by what goes rather than recounted: a day taken out by a
            // question meanwhile is counted, and its question settles it when done.
            var entries = _days.ToArray();
            long left = entries.Sum(e => e.Value.Size);
            foreach (var entry in entries.OrderBy(e => e.Value.Used))
            {
                if (left <= max / 2) break;
                if (_days.TryRemove(entry))
                {
                    left -= entry.Value.Size;
                    Interlocked.Add(ref _size, -entry.Value.Size);
                }
            }
        }
    }
}
