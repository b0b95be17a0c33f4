using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// The planned questions from numbers kept per UTC day: top lists, the main graph, entry
/// and exit pages, filtered views, goals, revenue (QueryEngine says which). For each (site,
/// question shape, day) it keeps the raw columns (QuerySql.RawColumns) of each row of the day's
/// active generation, as the pre-aggregates give them per day, and answers over whole UTC days by
/// adding the days up per time bucket and value: exact, for the reason the planner's per-day form
/// is (a visitor id lives one UTC day and a visit ends at UTC midnight, so visitors, visits,
/// bounces, durations, conversions and revenue of several days are the sums of each day's;
/// PreAggregatePlanner). Only the days not kept (days written or reprocessed since, days never
/// asked) are read from the engine, in one statement. Today too is kept between Rollup's rounds:
/// a busy site's today is read again after each round (only the values the round wrote, where the
/// rows say which: readWritten), a quiet site's rarely. A range's kept days are also kept added up
/// (<see cref="KeptSum"/>), so a busy site's question adds only today's rows, or only the values a
/// round wrote to the last answer's rows (<see cref="TodaySum"/>).
/// <para>
/// Why: a large site's top list over 30 days merges tens of thousands of exact visitor sets per
/// question (the largest merchant's top pages: about 72,000 page-day sets), and reading those sets
/// is the cost whatever the SQL's shape (docs/query-performance.md, "Where a question's time
/// goes" and "Visitors per day"); even a small site's question costs the engine's floor of a
/// statement (about 10 ms) where adding kept days up costs microseconds. A day's numbers, today's
/// included, do not change unless the day is written again, which only this process does with
/// the embedded engine.
/// </para>
/// <para>
/// Exact because a day's numbers are used only while nothing changed them. They are kept with the
/// day's active generation (reprocessing writes a new one, and ActiveGenerationCache with
/// GenerationActivations decides which is active) and with the day's version in
/// <see cref="SiteDayWrites"/> as read before their statement (Rollup announces every site-day a
/// round writes, before its first insert and after its last, and each moves the version): a
/// write that overlapped the read, or came after it, moves the version, and kept numbers are used
/// only at the version they were kept with. An answer during whose statement an activation
/// started is not used at all. Only with the embedded engine, where every write and activation
/// goes through this process.
/// </para>
/// </summary>
/// <param name="maxValues">Rows kept at most (<see cref="MaxValues"/>; smaller in tests).</param>
/// <param name="sumFromValues">Kept values from which their sum is kept too (<see cref="SumFromValues"/>; smaller in tests).</param>
public sealed class DailyRowsCache(string database, SiteDayWrites writes, GenerationActivations activations, int maxValues = DailyRowsCache.MaxValues,
    int sumFromValues = DailyRowsCache.SumFromValues)
{
    /// <summary>Rows kept at most (each about 100 bytes: 11 counts and a string shared between
    /// days and sites): past it the least recently used days are dropped until half is left. The
    /// largest test merchant's top pages over 30 days are about 72,000; a typical merchant's whole
    /// dashboard a few hundred.</summary>
    public const int MaxValues = 1_000_000;

    /// <summary>
    /// Longest range answered this way. Its days come back as a row per value and day (the
    /// planner's statement adds the days up in the engine instead), which for a year of the
    /// largest merchant's pages is about 900,000 rows to parse and keep: near the whole bound.
    /// A quarter covers the dashboard's usual ranges (day, 7d, 28d, 30d, month).
    /// </summary>
    public const int MaxDays = 92;

    /// <summary>A day's rows, their counts flattened (Width per value) and revenue maps only
    /// where asked: about 100 bytes per value rather than a record and an array each.</summary>
    private sealed record Day(ulong Generation, long Version, int Width, string[] Values, long[] Counts,
        Dictionary<string, long>?[]? Revenue, Dictionary<string, long>?[]? RevenueEvents)
    {
        /// <summary>When it was last kept or used (<see cref="_clock"/>), for the eviction.</summary>
        public long Used;
        /// <summary>Each value's position, made when the day is first brought up to date.</summary>
        public Dictionary<string, int>? Index;
        public int Size => Values.Length + 1;
    }

    /// <summary>Kept days' values from which their sum is kept too (<see cref="KeptSum"/>): below
    /// it adding them up costs microseconds. Also the values a kept day holds from which it is
    /// brought up to date by the values written since rather than read whole.</summary>
    public const int SumFromValues = 1_000;

    /// <summary>The sum of a range's kept days as one answer added them up: valid while the same
    /// days are kept with the same numbers (<see cref="Days"/>, compared by reference), bucketed
    /// and filtered the same way. Its rows are in an array, with each key's position, so that an
    /// answer over it says which rows it changed by position (DaySums): enumerating an answer by
    /// looking each of the largest test merchant's 20,000 top-page rows up in a dictionary keyed
    /// by two strings cost 15-20 ms a question.</summary>
    private sealed record KeptSum(Day[] Days, Func<DateOnly, string> Bucket, IReadOnlySet<string>? Values,
        (string Bucket, string Value)[] Keys, DayRow[] Rows, Dictionary<(string Bucket, string Value), int> Index)
    {
        public int Size => Rows.Length + 1;

        public bool Answers(List<(DateOnly Date, Day Day)> kept, Func<DateOnly, string> bucket, IReadOnlySet<string>? values)
        {
            if (kept.Count != Days.Length || Bucket != bucket || (Values is null ? values is not null : values is null || !Values.SetEquals(values)))
                return false;
            for (int i = 0; i < Days.Length; i++)
                if (!ReferenceEquals(kept[i].Day, Days[i])) return false;
            return true;
        }
    }

    /// <summary>An answer's rows over a range whose last kept sum is <see cref="Memo"/> and whose
    /// other day, <see cref="Today"/>, was added on top (<see cref="Changed"/>: the memo's rows
    /// that day changed, summed, at their positions; <see cref="Added"/>: the rows of the day's
    /// values the memo lacks): the next answer after a round of that day starts from a copy of
    /// these and adds only the values the round wrote.</summary>
    private sealed record TodaySum(KeptSum Memo, Day Today, DayRow?[] Changed, Dictionary<(string Bucket, string Value), DayRow> Added, int Size);

    /// <summary>Keyed by the shape's <see cref="ShapeKey"/>, not the shape: a planned or funnel
    /// shape is a whole statement (kilobytes), which each request builds anew, and the bound counts
    /// values, not keys.</summary>
    private readonly ConcurrentDictionary<(long Merchant, long Site, UInt128 Shape, DateOnly Day), Day> _days = new();
    private readonly ConcurrentDictionary<(long Merchant, long Site, UInt128 Shape, DateOnly From, DateOnly To), KeptSum> _sums = new();
    private readonly ConcurrentDictionary<(long Merchant, long Site, UInt128 Shape, DateOnly From, DateOnly To), TodaySum> _todaySums = new();
    private readonly ConcurrentDictionary<string, string> _strings = new(StringComparer.Ordinal);
    private readonly Lock _evicting = new();
    private long _values, _clock;

    /// <summary>Days answered from kept numbers, and days read from the engine (tests and docs).</summary>
    public long DaysKept => Interlocked.Read(ref _kept);
    public long DaysRead => Interlocked.Read(ref _read);
    /// <summary>Answers whose kept days were added up by an earlier answer (KeptSum).</summary>
    public long SumsReused => Interlocked.Read(ref _sumsReused);
    /// <summary>Kept days brought up to date by reading only the values written since (readWritten).</summary>
    public long DaysUpdated => Interlocked.Read(ref _updated);
    /// <summary>Answers that added only the values a round wrote to the last answer's rows (TodaySum).</summary>
    public long TodaySumsReused => Interlocked.Read(ref _todaySumsReused);
    private long _kept, _read, _sumsReused, _updated, _todaySumsReused;

    /// <summary>
    /// The rows of the question <paramref name="shape"/> names over [from, to) (whole UTC days),
    /// added up per (bucket of the day, value): the raw columns, and revenue per currency. Null
    /// when an activation started while it read, or when <paramref name="read"/> could not
    /// answer (the caller asks the usual way). The rows may be the kept sum's own: read them,
    /// never change them.
    /// </summary>
    /// <param name="shape">What the rows are, whatever the range: the same shape, the same rows
    /// for a day.</param>
    /// <param name="values">The values kept by an `is` filter (null: all). Each is summed on its
    /// own: the caller never asks for several values added into one row.</param>
    /// <param name="bucket">A day's time bucket (its label), or "" for every day.</param>
    /// <param name="generations">The site's active generations (ActiveGenerationCache), read
    /// when <paramref name="started"/> activations had started and none ran.</param>
    /// <param name="read">Reads the rows of the given days from the engine, in one statement;
    /// null when they cannot answer (rows a plan may not use).</param>
    /// <param name="readWritten">Reads the rows of one day's values written since a version
    /// (SiteDayWrites), each over all of that day's rows, a row of zeros for a value that has none
    /// left (a visit rollup's value every visit of it left: kept as zeros, and an answer's rows
    /// without visitors are left out, QueryEngine.DailyRaw); null where the rows carry no version.
    /// When the one day to read is quiet, was kept at an older version of the same generation (a
    /// busy site's today, after a round) and holds at least sumFromValues values, it is brought up
    /// to date by these rows instead of read whole: a value no round wrote since has the numbers
    /// kept. When it returns null (it cannot tell what changed since) the day is read whole.</param>
    public async Task<DaySums?> SumAsync(long merchantId, long siteId, string shape,
        IReadOnlySet<string>? values, Func<DateOnly, string> bucket, DateOnly from, DateOnly to,
        IReadOnlyDictionary<DateOnly, ulong> generations, long started, Func<IReadOnlyList<DateOnly>, Task<List<DayRow>?>> read,
        Func<DateOnly, long, Task<List<DayRow>?>>? readWritten = null)
    {
        var shapeKey = ShapeKey(shape);
        var kept = new List<(DateOnly Date, Day Day)>();
        var missing = new List<(DateOnly Day, bool Quiet, long Version)>();
        long now = Interlocked.Increment(ref _clock);
        for (var d = from; d < to; d = d.AddDays(1))
        {
            ulong generation = generations.GetValueOrDefault(d);
            bool quiet = writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, d, out long version);
            // (quiet: belt and braces. Numbers are kept only under a version read while no
            // write ran, and a running write has a newer one.)
            if (quiet && _days.TryGetValue((merchantId, siteId, shapeKey, d), out var day)
                && day.Generation == generation && day.Version == version)
            {
                Volatile.Write(ref day.Used, now);
                kept.Add((d, day));
            }
            else
                missing.Add((d, quiet, version));
        }

        // The one day to read, kept at an older version of the same generation: only its values
        // written since are read. Their rows say so (write_version): every round that began
        // after that version was read has a higher one, and none before it does.
        // Only a day of many values: the written values are found by a read of the day's rows
        // first, which for a day of a few values (the site's totals, its devices) costs more than
        // reading them all (main graph p50 14 against 28 ms on the largest test merchant).
        Day? stale = null;
        if (readWritten is not null && missing.Count == 1 && missing[0].Quiet
            && _days.TryGetValue((merchantId, siteId, shapeKey, missing[0].Day), out var previousDay)
            && previousDay.Generation == generations.GetValueOrDefault(missing[0].Day) && previousDay.Values.Length >= sumFromValues)
            stale = previousDay;
        var answered = stale is null ? null : await readWritten!(missing[0].Day, stale.Version);
        if (activations.Started != started) return null; // reprocessing may have deleted what it read
        if (answered is null)
        {
            stale = null; // the reader could not tell what changed since: read whole
            answered = missing.Count == 0 ? [] : await read([.. missing.Select(m => m.Day)]);
        }
        if (answered is null || activations.Started != started) return null; // reprocessing may have deleted what it read
        // A reader may read the span of the missing days (Span): the kept days inside it count once.
        var asked = missing.Select(m => m.Day).ToHashSet();
        var fresh = answered.TrueForAll(r => asked.Contains(r.Day)) ? answered : answered.FindAll(r => asked.Contains(r.Day));
        Interlocked.Add(ref _kept, kept.Count);
        Interlocked.Add(ref _read, stale is null ? missing.Count : 0);
        Interlocked.Add(ref _updated, stale is null ? 0 : 1);
        // The written values' rows are fresh rows of the day; its other values keep their numbers.
        Day? updated = stale is null ? null : Updated(stale, fresh, generations.GetValueOrDefault(missing[0].Day), missing[0].Version, now);
        var anew = new List<(DateOnly Date, Day Day)>(); // the days this answer kept, in order

        // A busy site's question reads one day (today): its rows as they are, not grouped anew.
        var byDay = missing.Count == 1 ? new Dictionary<DateOnly, List<DayRow>> { [missing[0].Day] = fresh }
            : fresh.GroupBy(r => r.Day).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var (d, quiet, version) in missing)
        {
            // Kept under the version read before the statement, and only if the day was quiet
            // then. What keeps it exact is that version: a write that ran, began or ended since
            // moved it, and kept numbers are used only at the version they were kept with. The
            // second look only saves keeping numbers that could never be used.
            if (!quiet || !writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, d, out long current) || current != version) continue;
            var day = updated ?? NewDay(byDay.GetValueOrDefault(d) ?? [], generations.GetValueOrDefault(d), version, now);
            anew.Add((d, day));
            var key = (merchantId, siteId, shapeKey, d);
            int replaced = _days.TryGetValue(key, out var previous) ? previous.Size : 0;
            _days[key] = day;
            if (Interlocked.Add(ref _values, day.Size - replaced) > maxValues) Evict();
        }

        // Without a kept sum, every row; with one, the rows of the values it lacks (its own rows
        // that fresh rows changed are in changed, at their positions).
        var sums = new Dictionary<(string Bucket, string Value), DayRow>();
        // The kept days' sum as the last answer over this range added it up, if its days are the
        // same kept numbers (the very objects: a day kept anew is a new one): a busy site's top list
        // reads only today, and adding up its ~100,000 kept page-days again cost 8-25 ms a question.
        // Not a copy: the largest test merchant's top pages hold 20,000 rows, and copying each
        // cost 16-60 ms a question where today's rows touch a few thousand.
        var sumKey = (merchantId, siteId, shapeKey, from, to);
        KeptSum? memo = null;
        DayRow?[]? changed = null;
        if (_sums.TryGetValue(sumKey, out var keptSum) && keptSum.Answers(kept, bucket, values))
        {
            Interlocked.Increment(ref _sumsReused);
            memo = keptSum;
            // A day brought up to date from the one the last answer added on top of this sum: its
            // rows, with only the written values added anew (adding the day's 12,261 pages again
            // cost 10-25 ms a question on the largest test merchant).
            if (stale is not null && _todaySums.TryGetValue(sumKey, out var last) && ReferenceEquals(last.Memo, memo) && ReferenceEquals(last.Today, stale))
            {
                Interlocked.Increment(ref _todaySumsReused);
                changed = (DayRow?[])last.Changed.Clone();
                sums = new Dictionary<(string Bucket, string Value), DayRow>(last.Added);
                foreach (var row in fresh)
                {
                    if (values is not null && !values.Contains(row.Value)) continue;
                    var key = (bucket(row.Day), row.Value);
                    if (memo.Index.TryGetValue(key, out int at)) changed[at] = Own(row with { Counts = Added(row.Counts, memo.Rows[at].Counts) }, memo.Rows[at]);
                    else sums[key] = Own(row, null);
                }
                if (anew.Count == 1) Remember(sumKey, memo, anew[0].Day, changed, sums);
                return new DaySums(memo.Keys, memo.Rows, changed, sums);
            }
            changed = new DayRow?[memo.Rows.Length];
        }
        // Else a day brought up to date is added whole, from its rows as kept.
        if (updated is not null) fresh = Rows(updated, missing[0].Day);
        if (memo is null)
        {
            // The sum is of the days kept and of those this answer kept anew but the range's last (a
            // busy site's today, which the next answer reads again): the next answer finds them
            // kept, and their sum. Kept from the first answer on, not the second: adding up the
            // largest test merchant's 29 kept page-days made that answer 150-190 ms.
            var lastDay = to.AddDays(-1);
            var summed = anew.Count == 0 ? kept : [.. kept.Concat(anew.Where(a => a.Date != lastDay)).OrderBy(k => k.Date)];
            if (summed.Count > 0 && summed.Sum(k => k.Day.Values.Length) >= sumFromValues)
            {
                memo = KeepSum(sumKey, summed, bucket, values);
                changed = new DayRow?[memo.Rows.Length];
                if (summed.Count > kept.Count)
                {
                    var inSum = summed.Select(k => k.Date).ToHashSet();
                    fresh = fresh.FindAll(r => !inSum.Contains(r.Day));
                }
            }
            else
                foreach (var (d, day) in kept) AddDay(sums, d, day, bucket, values);
        }
        // A fresh row becomes its value's sum itself (the day kept above holds copies of its
        // counts, never its arrays): on a busy site's top list, where today's rows touch a few
        // thousand kept sums, copying each cost about 2 MB of garbage a question.
        foreach (var row in fresh)
        {
            if (values is not null && !values.Contains(row.Value)) continue;
            var key = (bucket(row.Day), row.Value);
            if (memo is not null && memo.Index.TryGetValue(key, out int at))
            {
                if (changed![at] is { } sum) AddTo(sum, row.Counts, row.Revenue, row.RevenueEvents);
                else
                {
                    var keptRow = memo.Rows[at];
                    for (int i = 0; i < row.Counts.Length; i++) row.Counts[i] += keptRow.Counts[i];
                    changed[at] = Own(row, keptRow);
                }
            }
            else if (sums.TryGetValue(key, out var sum))
                AddTo(sum, row.Counts, row.Revenue, row.RevenueEvents);
            else
                sums[key] = Own(row, null);
        }
        if (memo is null) return new DaySums(sums);
        // The one day outside the sum, if this answer kept it: the next answer after a round of it
        // starts from these rows.
        if (to.DayNumber - from.DayNumber - memo.Days.Length == 1 && anew.Count > 0 && !memo.Days.Any(d => ReferenceEquals(d, anew[^1].Day)))
            Remember(sumKey, memo, anew[^1].Day, changed!, sums);
        return new DaySums(memo.Keys, memo.Rows, changed!, sums);
    }

    /// <summary>Adds a row's counts and revenue to a sum's (whose maps, where there are any, are its own).</summary>
    private static void AddTo(DayRow sum, ReadOnlySpan<long> counts, Dictionary<string, long>? revenue, Dictionary<string, long>? revenueEvents)
    {
        for (int i = 0; i < counts.Length; i++) sum.Counts[i] += counts[i];
        AddMap(sum.Revenue, revenue);
        AddMap(sum.RevenueEvents, revenueEvents);
    }

    /// <summary>A kept day's rows added to <paramref name="sums"/> (new rows where it has none).</summary>
    private static void AddDay(Dictionary<(string Bucket, string Value), DayRow> sums, DateOnly date, Day day, Func<DateOnly, string> bucket, IReadOnlySet<string>? values)
    {
        for (int i = 0; i < day.Values.Length; i++)
        {
            if (values is not null && !values.Contains(day.Values[i])) continue;
            var key = (bucket(date), day.Values[i]);
            var counts = day.Counts.AsSpan(i * day.Width, day.Width);
            if (!sums.TryGetValue(key, out var sum))
                sums[key] = sum = new DayRow(date, day.Values[i], new long[counts.Length], day.Revenue?[i] is null ? null : new(StringComparer.Ordinal),
                    day.RevenueEvents?[i] is null ? null : new(StringComparer.Ordinal));
            AddTo(sum, counts, day.Revenue?[i], day.RevenueEvents?[i]);
        }
    }

    /// <summary>Keeps the sum of <paramref name="days"/> (kept days, in order), which answers use and never change.</summary>
    private KeptSum KeepSum((long, long, UInt128, DateOnly, DateOnly) sumKey, List<(DateOnly Date, Day Day)> days, Func<DateOnly, string> bucket,
        IReadOnlySet<string>? values)
    {
        var sums = new Dictionary<(string Bucket, string Value), DayRow>();
        foreach (var (d, day) in days) AddDay(sums, d, day, bucket, values);
        var keys = new (string Bucket, string Value)[sums.Count];
        var rows = new DayRow[sums.Count];
        var index = new Dictionary<(string Bucket, string Value), int>(sums.Count);
        int n = 0;
        foreach (var (key, row) in sums)
        {
            (keys[n], rows[n]) = (key, row);
            index[key] = n++;
        }
        var keptSum = new KeptSum([.. days.Select(k => k.Day)], bucket, values, keys, rows, index);
        int replaced = _sums.TryGetValue(sumKey, out var previous) ? previous.Size : 0;
        // The last answer's rows over the sum replaced can never be reused (another sum),
        // and they hold it: both go, and both leave the count.
        if (_todaySums.TryRemove(sumKey, out var over)) replaced += over.Size;
        _sums[sumKey] = keptSum;
        if (Interlocked.Add(ref _values, keptSum.Size - replaced) > maxValues) Evict();
        return keptSum;
    }

    /// <summary>Keeps an answer's rows over a kept sum and the one day it added on top, if that
    /// day was kept: the next answer after a round of it starts from them. Never changed after.</summary>
    private void Remember((long, long, UInt128, DateOnly, DateOnly) sumKey, KeptSum memo, Day? today,
        DayRow?[] changed, Dictionary<(string Bucket, string Value), DayRow> added)
    {
        if (today is null) return;
        int size = added.Count + 1;
        foreach (var row in changed) if (row is not null) size++;
        var todaySum = new TodaySum(memo, today, changed, added, size);
        int replaced = _todaySums.TryGetValue(sumKey, out var previous) ? previous.Size : 0;
        _todaySums[sumKey] = todaySum;
        if (Interlocked.Add(ref _values, todaySum.Size - replaced) > maxValues) Evict();
    }

    /// <summary>A shape's key where days are kept (here, KeptFunnelVisitors, KeptGoalVisitors):
    /// the first 128 bits of its SHA-256.</summary>
    internal static UInt128 ShapeKey(string shape) => BinaryPrimitives.ReadUInt128LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(shape)));

    /// <summary>A day kept from its rows as read: counts flattened, values interned.</summary>
    private Day NewDay(List<DayRow> rows, ulong generation, long version, long now)
    {
        int width = rows.Count == 0 ? 0 : rows[0].Counts.Length;
        bool revenue = rows.Exists(r => r.Revenue is not null || r.RevenueEvents is not null);
        var dayValues = new string[rows.Count];
        var dayCounts = new long[rows.Count * width];
        for (int i = 0; i < rows.Count; i++)
        {
            dayValues[i] = _strings.GetOrAdd(rows[i].Value, rows[i].Value);
            rows[i].Counts.CopyTo(dayCounts, i * width);
        }
        return new Day(generation, version, width, dayValues, dayCounts,
            revenue ? [.. rows.Select(r => r.Revenue)] : null, revenue ? [.. rows.Select(r => r.RevenueEvents)] : null) { Used = now };
    }

    /// <summary><paramref name="stale"/> with the rows of the values written since it was kept:
    /// each replaces its value's numbers, or is added after the others (a value new that day).</summary>
    private Day Updated(Day stale, List<DayRow> written, ulong generation, long version, long now)
    {
        if (written.Count == 0) return stale with { Version = version, Used = now };
        var at = stale.Index ??= IndexOf(stale.Values);
        var added = written.FindAll(r => !at.ContainsKey(r.Value));
        int width = stale.Width == 0 ? written[0].Counts.Length : stale.Width, n = stale.Values.Length + added.Count;
        var dayValues = new string[n];
        stale.Values.CopyTo(dayValues, 0);
        var dayCounts = new long[n * width];
        stale.Counts.CopyTo(dayCounts, 0);
        var index = added.Count == 0 ? at : new Dictionary<string, int>(at, StringComparer.Ordinal);
        for (int i = 0; i < added.Count; i++)
        {
            dayValues[stale.Values.Length + i] = _strings.GetOrAdd(added[i].Value, added[i].Value);
            index[added[i].Value] = stale.Values.Length + i;
        }
        bool revenue = stale.Revenue is not null || written.Exists(r => r.Revenue is not null || r.RevenueEvents is not null);
        var dayRevenue = revenue ? new Dictionary<string, long>?[n] : null;
        var dayRevenueEvents = revenue ? new Dictionary<string, long>?[n] : null;
        stale.Revenue?.CopyTo(dayRevenue!, 0);
        stale.RevenueEvents?.CopyTo(dayRevenueEvents!, 0);
        foreach (var row in written)
        {
            int i = index[row.Value];
            row.Counts.CopyTo(dayCounts, i * width);
            if (revenue) (dayRevenue![i], dayRevenueEvents![i]) = (row.Revenue, row.RevenueEvents);
        }
        return new Day(generation, version, width, dayValues, dayCounts, dayRevenue, dayRevenueEvents) { Used = now, Index = index };
    }

    private static Dictionary<string, int> IndexOf(string[] values)
    {
        var index = new Dictionary<string, int>(values.Length, StringComparer.Ordinal);
        for (int i = 0; i < values.Length; i++) index[values[i]] = i;
        return index;
    }

    /// <summary>A kept day's rows as fresh rows (new arrays: the sums may own them).</summary>
    private static List<DayRow> Rows(Day day, DateOnly date)
    {
        var rows = new List<DayRow>(day.Values.Length);
        for (int i = 0; i < day.Values.Length; i++)
            rows.Add(new DayRow(date, day.Values[i], day.Counts.AsSpan(i * day.Width, day.Width).ToArray(), day.Revenue?[i], day.RevenueEvents?[i]));
        return rows;
    }

    private static long[] Added(long[] a, long[] b)
    {
        var sum = new long[a.Length];
        for (int i = 0; i < a.Length; i++) sum[i] = a[i] + b[i];
        return sum;
    }

    /// <summary>The whole UTC days from the first of <paramref name="days"/> through the last: one
    /// statement may read them all, rows of days not asked included (SumAsync drops those).</summary>
    public static (DateTimeOffset From, DateTimeOffset To) Span(IReadOnlyList<DateOnly> days) =>
        (new DateTimeOffset(days.Min().ToDateTime(TimeOnly.MinValue), TimeSpan.Zero),
         new DateTimeOffset(days.Max().AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero));

    /// <summary>A fresh row as a sum of its own, <paramref name="kept"/>'s revenue added: its
    /// maps may be the kept day's too, so a row with revenue gets new ones, which later rows add to.</summary>
    private static DayRow Own(DayRow row, DayRow? kept) => row.Revenue is null && row.RevenueEvents is null && kept?.Revenue is null && kept?.RevenueEvents is null
        ? row
        : row with { Revenue = Sum(row.Revenue, kept?.Revenue), RevenueEvents = Sum(row.RevenueEvents, kept?.RevenueEvents) };

    private static Dictionary<string, long>? Sum(Dictionary<string, long>? a, Dictionary<string, long>? b)
    {
        if (a is null && b is null) return null;
        var sum = new Dictionary<string, long>(StringComparer.Ordinal);
        AddMap(sum, a);
        AddMap(sum, b);
        return sum;
    }

    private static void AddMap(Dictionary<string, long>? sum, Dictionary<string, long>? add)
    {
        if (sum is null || add is null) return;
        foreach (var (key, value) in add) sum[key] = sum.GetValueOrDefault(key) + value;
    }

    /// <summary>Drops the least recently used days until half of the bound is left, and recounts
    /// what stays (the count kept while adding may drift under concurrent keeps).</summary>
    private void Evict()
    {
        lock (_evicting)
        {
            if (Interlocked.Read(ref _values) <= maxValues) return;
            var entries = _days.ToArray();
            long left = entries.Sum(e => (long)e.Value.Size);
            foreach (var entry in entries.OrderBy(e => Volatile.Read(ref e.Value.Used)))
            {
                if (left <= maxValues / 2) break;
                if (_days.TryRemove(entry)) left -= entry.Value.Size;
            }
            // Sums are few (a range's, of large sites only) and rebuilt by the next answer.
            _sums.Clear();
            _todaySums.Clear();
            _strings.Clear(); // days kept from now on share strings among themselves
            Interlocked.Exchange(ref _values, left);
        }
    }
}

/// <summary>
/// DailyRowsCache.SumAsync's rows, one per (bucket, value): either every row in a dictionary, or a
/// kept sum's rows (never changed) each replaced by the row at its position in changed where there
/// is one, then the rows of the values the kept sum lacks.
/// </summary>
public sealed class DaySums : IReadOnlyCollection<KeyValuePair<(string Bucket, string Value), DayRow>>
{
    private readonly (string Bucket, string Value)[]? _keys;
    private readonly DayRow[]? _kept;
    private readonly DayRow?[]? _changed;
    private readonly Dictionary<(string Bucket, string Value), DayRow> _rows;

    internal DaySums(Dictionary<(string Bucket, string Value), DayRow> rows) => _rows = rows;

    internal DaySums((string Bucket, string Value)[] keys, DayRow[] kept, DayRow?[] changed, Dictionary<(string Bucket, string Value), DayRow> added) =>
        (_keys, _kept, _changed, _rows) = (keys, kept, changed, added);

    public int Count => (_kept?.Length ?? 0) + _rows.Count;

    public IEnumerator<KeyValuePair<(string Bucket, string Value), DayRow>> GetEnumerator()
    {
        if (_kept is not null)
            for (int i = 0; i < _kept.Length; i++) yield return new(_keys![i], _changed![i] ?? _kept[i]);
        foreach (var row in _rows) yield return row;
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>One row of a day: its value ("" without a dimension), the raw columns
/// (QuerySql.RawColumns without the two revenue maps) and revenue per currency (null: not asked).</summary>
public sealed record DayRow(DateOnly Day, string Value, long[] Counts, Dictionary<string, long>? Revenue = null, Dictionary<string, long>? RevenueEvents = null)
{
    /// <summary>
    /// The row as an answer shows it (QueryEngine.DailyRaw's raw row, which shares its arrays),
    /// kept with it: a range's sums are mostly the same rows from one answer to the next (the kept
    /// sum's, and the rows today changed, which a later answer reuses), and making a raw row for
    /// each of the largest test merchant's 20,000-30,000 rows again was 5-7 ms and 2 MB of garbage
    /// an answer. Never copied by <c>with</c> (a copy is another row).
    /// </summary>
    internal object? Shown;

    private DayRow(DayRow original) =>
        (Day, Value, Counts, Revenue, RevenueEvents) = (original.Day, original.Value, original.Counts, original.Revenue, original.RevenueEvents);
}
