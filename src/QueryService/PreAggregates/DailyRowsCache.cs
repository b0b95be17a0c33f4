using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// The rollups' questions from numbers kept per past UTC day: top lists, the main graph, entry
/// and exit pages, one value's rows (NormalQueryPlanner.DailyQuestion says which). For each
/// (site, rollup, dimension, day) it keeps every value's counts of the day's active generation,
/// as the dimension rollup or the visit rollup gives them, and answers over whole UTC days by
/// adding the days up per time bucket and value: exact, for the reason the planner's per-day
/// form is (a visitor id lives one UTC day and a visit ends at UTC midnight, PreAggregatePlanner).
/// Only the days not kept (today, days written or reprocessed since, days never asked) are read
/// from the engine, in one statement.
/// <para>
/// Why: a large site's top list over 30 days merges tens of thousands of exact visitor sets per
/// question (the largest merchant's top pages: about 72,000 page-day sets), and reading those sets
/// is the cost whatever the SQL's shape (docs/query-performance.md, "Where a question's time
/// goes" and "Visitors per day"); even a small site's question costs the engine's floor of a
/// statement (about 10 ms) where adding kept days up costs microseconds. A finished day's numbers
/// do not change unless the day is written again, which only this process does with the
/// embedded engine.
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
/// <param name="maxValues">Values kept at most (<see cref="MaxValues"/>; smaller in tests).</param>
public sealed class DailyRowsCache(string database, SiteDayWrites writes, GenerationActivations activations, int maxValues = DailyRowsCache.MaxValues)
{
    /// <summary>Values kept at most (each 48-64 bytes, its string shared between days and sites):
    /// past it the least recently used days are dropped until half is left. The largest test
    /// merchant's top pages over 30 days are about 72,000; a typical merchant's whole dashboard a
    /// few thousand.</summary>
    public const int MaxValues = 1_000_000;

    /// <summary>
    /// Longest range answered this way. Its days come back as a row per value and day (the
    /// planner's statement adds the days up in the engine instead), which for a year of the
    /// largest merchant's pages is about 900,000 rows to parse and keep: near the whole bound.
    /// A quarter covers the dashboard's usual ranges (day, 7d, 28d, 30d, month).
    /// </summary>
    public const int MaxDays = 92;

    /// <summary>The counts kept per value, in the order of <see cref="DailyRollup"/>'s members.</summary>
    public static int Width(DailyRollup rollup) => rollup == DailyRollup.Dimensions ? 5 : 7;

    private sealed record Day(ulong Generation, long Version, string[] Values, long[] Counts)
    {
        /// <summary>When it was last kept or used (<see cref="_clock"/>), for the eviction.</summary>
        public long Used;
        public int Size => Values.Length + 1;
    }

    private readonly ConcurrentDictionary<(long Merchant, long Site, DailyRollup Rollup, string Dimension, DateOnly Day), Day> _days = new();
    private readonly ConcurrentDictionary<string, string> _strings = new(StringComparer.Ordinal);
    private readonly Lock _evicting = new();
    private long _values, _clock;

    /// <summary>Days answered from kept numbers, and days read from the engine (tests and docs).</summary>
    public long DaysKept => Interlocked.Read(ref _kept);
    public long DaysRead => Interlocked.Read(ref _read);
    private long _kept, _read;

    /// <summary>
    /// The counts of <paramref name="question"/>'s dimension's values ("" for the site's totals,
    /// one value) over [from, to) (whole UTC days), added up per (bucket of the day, value), in
    /// the order of <see cref="DailyRollup"/>'s members. Exact because a visitor id lives one UTC
    /// day, so a value's visitors over several days are the sum of each day's, and so are its
    /// visits, bounces and durations (a visit ends at UTC midnight). Null when an activation
    /// started while it read (the caller asks the usual way).
    /// </summary>
    /// <param name="bucket">A day's time bucket (its label), or "" for every day.</param>
    /// <param name="generations">The site's active generations (ActiveGenerationCache), read
    /// when <paramref name="started"/> activations had started and none ran.</param>
    /// <param name="today">The current UTC day: it and later days are read, never kept.</param>
    /// <param name="merged">Read the visit rollup merged by the engine (VisitRollupPlanner.MergedReadFromVisits).</param>
    /// <param name="read">Runs a statement and reads its RowBinary output.</param>
    public async Task<Dictionary<(string Bucket, string Value), long[]>?> SumAsync(long merchantId, long siteId, DailyQuestion question,
        Func<DateOnly, string> bucket, DateOnly from, DateOnly to,
        IReadOnlyDictionary<DateOnly, ulong> generations, long started, DateOnly today, double maxExecutionSeconds, bool merged,
        Func<string, RowBinaryRead<List<(DateOnly Day, string Value, long[] Counts)>>, Task<List<(DateOnly Day, string Value, long[] Counts)>>> read)
    {
        var (rollup, dimension, values) = question;
        int width = Width(rollup);
        var kept = new List<(DateOnly Date, Day Day)>();
        var missing = new List<(DateOnly Day, bool Quiet, long Version)>();
        long now = Interlocked.Increment(ref _clock);
        for (var d = from; d < to; d = d.AddDays(1))
        {
            ulong generation = generations.GetValueOrDefault(d);
            bool quiet = writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, d, out long version);
            // (quiet: belt and braces. Numbers are kept only under a version read while no
            // write ran, and a running write has a newer one.)
            if (quiet && d < today && _days.TryGetValue((merchantId, siteId, rollup, dimension, d), out var day)
                && day.Generation == generation && day.Version == version)
            {
                Volatile.Write(ref day.Used, now);
                kept.Add((d, day));
            }
            else
                missing.Add((d, quiet && d < today, version));
        }

        var days = missing.Select(m => m.Day).ToList();
        var fresh = missing.Count == 0 ? [] : await read(rollup == DailyRollup.Dimensions
            ? Statement(merchantId, siteId, dimension, days, generations, maxExecutionSeconds)
            : VisitRollupPlanner.DailyStatement(merchantId, siteId, dimension, days, generations, database, maxExecutionSeconds, merged),
            data => ReadRows(data, width));
        if (activations.Started != started) return null; // reprocessing may have deleted what it read
        Interlocked.Add(ref _kept, kept.Count);
        Interlocked.Add(ref _read, missing.Count);

        var byDay = fresh.GroupBy(r => r.Day).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var (d, quiet, version) in missing)
        {
            // Kept under the version read before the statement, and only if the day was quiet
            // then. What keeps it exact is that version: a write that ran, began or ended since
            // moved it, and kept numbers are used only at the version they were kept with. The
            // second look only saves keeping numbers that could never be used.
            if (!quiet || !writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, d, out long current) || current != version) continue;
            var rows = byDay.GetValueOrDefault(d) ?? [];
            var day = new Day(generations.GetValueOrDefault(d), version, [.. rows.Select(r => _strings.GetOrAdd(r.Value, r.Value))], [.. rows.SelectMany(r => r.Counts)]) { Used = now };
            var key = (merchantId, siteId, rollup, dimension, d);
            int replaced = _days.TryGetValue(key, out var previous) ? previous.Size : 0;
            _days[key] = day;
            if (Interlocked.Add(ref _values, day.Size - replaced) > maxValues) Evict();
        }

        var sums = new Dictionary<(string Bucket, string Value), long[]>();
        void Add(DateOnly d, string value, ReadOnlySpan<long> counts)
        {
            if (values is not null && !values.Contains(value)) return;
            var key = (bucket(d), value);
            if (!sums.TryGetValue(key, out var sum)) sums[key] = sum = new long[width];
            for (int i = 0; i < width; i++) sum[i] += counts[i];
        }
        foreach (var (d, day) in kept)
            for (int i = 0; i < day.Values.Length; i++) Add(d, day.Values[i], day.Counts.AsSpan(i * width, width));
        foreach (var row in fresh) Add(row.Day, row.Value, row.Counts);
        return sums;
    }

    /// <summary>Drops the least recently used days until half of the bound is left,
    /// and recounts what stays (the count kept while adding may drift under concurrent keeps).</summary>
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
            _strings.Clear(); // days kept from now on share strings among themselves
            Interlocked.Exchange(ref _values, left);
        }
    }

    /// <summary>Every value's counts on each of <paramref name="days"/>, in their active
    /// generations: what the planner's per-day form reads before it adds the days up.</summary>
    private string Statement(long merchantId, long siteId, string dimension, IReadOnlyList<DateOnly> days, IReadOnlyDictionary<DateOnly, ulong> generations,
        double maxExecutionSeconds)
    {
        var inv = CultureInfo.InvariantCulture;
        var sql = new StringBuilder(PreAggregatePlanner.ActiveGenerations(merchantId, siteId, days, database, generations));
        sql.Append(inv, $"SELECT bucket, value, toUInt64(uniqExactMerge(visitors)), toUInt64(sum(visit_starts)), toUInt64(sum(pageviews)), ");
        sql.Append(inv, $"toUInt64(sum(events)), toUInt64(sum(bots)) FROM {database}.{PreAggregatePlanner.Table} ");
        sql.Append(inv, $"WHERE merchant_id = {merchantId} AND site_id = {siteId} AND dimension = {ClickHouseSql.StringLiteral(dimension)} ");
        sql.Append("AND bucket IN (").Append(PreAggregatePlanner.DayList(days)).Append(") ");
        sql.Append("AND ").Append(PreAggregatePlanner.IsActive("bucket", "generation")).Append(" GROUP BY bucket, value");
        sql.Append(" SETTINGS max_execution_time = ").Append(maxExecutionSeconds.ToString("0.######", inv));
        return sql.ToString();
    }

    private static List<(DateOnly Day, string Value, long[] Counts)> ReadRows(ReadOnlySpan<byte> data, int width)
    {
        var rows = new List<(DateOnly, string, long[])>();
        var reader = new RowBinaryReader(data);
        var epoch = new DateOnly(1970, 1, 1);
        while (!reader.End)
        {
            var day = epoch.AddDays(reader.ReadUInt16());
            string value = reader.ReadString();
            var counts = new long[width];
            for (int i = 0; i < width; i++) counts[i] = (long)reader.ReadUInt64();
            rows.Add((day, value, counts));
        }
        return rows;
    }
}

/// <summary>The rollup a question's days are read from, and the counts kept per value, in order.</summary>
public enum DailyRollup
{
    /// <summary>rollup_dims_day: visitors, visits, pageviews, events, bots.</summary>
    Dimensions,
    /// <summary>rollup_visits_day: visitors, visits, pageviews, events, engagement_ms, bounces, duration_ms.</summary>
    Visits,
}

/// <summary>A question DailyRowsCache answers: the rollup, its dimension read ("" for the site's
/// totals) and the values an `is` filter keeps (null: all). Each value is summed on its own: a
/// question never adds several values into one row (NormalQueryPlanner.DailyQuestion).</summary>
public sealed record DailyQuestion(DailyRollup Rollup, string Dimension, IReadOnlySet<string>? Values);
