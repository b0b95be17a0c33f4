using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// A large site's top lists from numbers kept per past UTC day. For each (site, dimension, day)
/// it keeps every value's visitors, visits, pageviews, events and bots of the day's active
/// generation, as the dimension rollup gave them, and answers a top list over whole UTC days by
/// adding the days up: exact, for the reason the planner's per-day form is (a visitor id lives
/// one UTC day, PreAggregatePlanner). Only the days not kept (today, days written or reprocessed
/// since, days never asked) are read from the engine, in one statement.
/// <para>
/// Why: a large site's top list over 30 days merges tens of thousands of exact visitor sets per
/// question (the largest merchant's top pages: about 72,000 page-day sets), and reading those sets
/// is the cost whatever the SQL's shape (docs/query-performance.md, "Where a question's time
/// goes" and "Visitors per day"). A finished day's numbers do not change unless the day is
/// written again, which only this process does with the embedded engine.
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
public sealed class DailyRowsCache(string database, SiteDayWrites writes, GenerationActivations activations)
{
    /// <summary>Values kept at most (each 48 bytes, its string shared between days and sites)
    /// before everything is dropped: the largest test merchant's top pages over 30 days are about
    /// 72,000.</summary>
    public const int MaxValues = 1_000_000;

    /// <summary>
    /// Longest range answered this way. Its days come back as a row per value and day (the
    /// planner's statement adds the days up in the engine instead), which for a year of the
    /// largest merchant's pages is about 900,000 rows to parse and keep: near the whole bound.
    /// A quarter covers the dashboard's usual ranges (day, 7d, 28d, 30d, month).
    /// </summary>
    public const int MaxDays = 92;

    /// <summary>The counts kept per value, in this order (QuerySql.RawColumns names them).</summary>
    private const int Counts = 5; // visitors, visits, pageviews, events, bots

    private sealed record Day(ulong Generation, long Version, string[] Values, long[] Counts);

    private readonly ConcurrentDictionary<(long Merchant, long Site, string Dimension, DateOnly Day), Day> _days = new();
    private readonly ConcurrentDictionary<string, string> _strings = new(StringComparer.Ordinal);
    private long _values;

    /// <summary>Days answered from kept numbers, and days read from the engine (tests and docs).</summary>
    public long DaysKept => Interlocked.Read(ref _kept);
    public long DaysRead => Interlocked.Read(ref _read);
    private long _kept, _read;

    /// <summary>
    /// Each value's counts over [from, to) (whole UTC days) of <paramref name="dimension"/>
    /// ("" for the site's totals, one row), as (value, visitors, visits, pageviews, events, bots);
    /// null when an activation started while it read (the caller asks the usual way).
    /// </summary>
    /// <param name="generations">The site's active generations (ActiveGenerationCache), read
    /// when <paramref name="started"/> activations had started and none ran.</param>
    /// <param name="today">The current UTC day: it and later days are read, never kept.</param>
    /// <param name="read">Runs a statement and reads its RowBinary output.</param>
    public async Task<List<(string Value, long[] Counts)>?> SumAsync(long merchantId, long siteId, string dimension, DateOnly from, DateOnly to,
        IReadOnlyDictionary<DateOnly, ulong> generations, long started, DateOnly today, double maxExecutionSeconds,
        Func<string, RowBinaryRead<List<(DateOnly Day, string Value, long[] Counts)>>, Task<List<(DateOnly Day, string Value, long[] Counts)>>> read)
    {
        var kept = new List<Day>();
        var missing = new List<(DateOnly Day, bool Quiet, long Version)>();
        for (var d = from; d < to; d = d.AddDays(1))
        {
            ulong generation = generations.GetValueOrDefault(d);
            bool quiet = writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, d, out long version);
            // (quiet: belt and braces. Numbers are kept only under a version read while no
            // write ran, and a running write has a newer one.)
            if (quiet && d < today && _days.TryGetValue((merchantId, siteId, dimension, d), out var day)
                && day.Generation == generation && day.Version == version)
                kept.Add(day);
            else
                missing.Add((d, quiet && d < today, version));
        }

        var fresh = missing.Count == 0 ? [] : await read(Statement(merchantId, siteId, dimension, missing.Select(m => m.Day), generations, maxExecutionSeconds), ReadRows);
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
            if (!quiet || !writes.TryQuiet(database, (ulong)merchantId, (ulong)siteId, d, out long now) || now != version) continue;
            var rows = byDay.GetValueOrDefault(d) ?? [];
            var day = new Day(generations.GetValueOrDefault(d), version, [.. rows.Select(r => _strings.GetOrAdd(r.Value, r.Value))], [.. rows.SelectMany(r => r.Counts)]);
            if (Interlocked.Add(ref _values, rows.Count + 1) > MaxValues)
            {
                _days.Clear();
                _strings.Clear();
                Interlocked.Exchange(ref _values, rows.Count + 1);
            }
            var key = (merchantId, siteId, dimension, d);
            if (_days.TryGetValue(key, out var replaced)) Interlocked.Add(ref _values, -(replaced.Values.Length + 1));
            _days[key] = day;
        }

        var sums = new Dictionary<string, long[]>(StringComparer.Ordinal);
        void Add(string value, ReadOnlySpan<long> counts)
        {
            if (!sums.TryGetValue(value, out var sum)) sums[value] = sum = new long[Counts];
            for (int i = 0; i < Counts; i++) sum[i] += counts[i];
        }
        foreach (var day in kept)
            for (int i = 0; i < day.Values.Length; i++) Add(day.Values[i], day.Counts.AsSpan(i * Counts, Counts));
        foreach (var row in fresh) Add(row.Value, row.Counts);
        return [.. sums.Select(s => (s.Key, s.Value))];
    }

    /// <summary>Every value's counts on each of <paramref name="days"/>, in their active
    /// generations: what the planner's per-day form reads before it adds the days up.</summary>
    internal string Statement(long merchantId, long siteId, string dimension, IEnumerable<DateOnly> days, IReadOnlyDictionary<DateOnly, ulong> generations,
        double maxExecutionSeconds)
    {
        var list = days.ToList();
        var inv = CultureInfo.InvariantCulture;
        var from = new DateTimeOffset(list[0].ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var to = new DateTimeOffset(list[^1].AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var sql = new StringBuilder(PreAggregatePlanner.ActiveGenerations(merchantId, siteId, from, to, database, generations));
        sql.Append(inv, $"SELECT bucket, value, toUInt64(uniqExactMerge(visitors)), toUInt64(sum(visit_starts)), toUInt64(sum(pageviews)), ");
        sql.Append(inv, $"toUInt64(sum(events)), toUInt64(sum(bots)) FROM {database}.{PreAggregatePlanner.Table} ");
        sql.Append(inv, $"WHERE merchant_id = {merchantId} AND site_id = {siteId} AND dimension = {ClickHouseSql.StringLiteral(dimension)} ");
        sql.Append("AND bucket IN (").AppendJoin(", ", list.Select(d => "'" + d.ToString("yyyy-MM-dd", inv) + "'")).Append(") ");
        sql.Append("AND ").Append(PreAggregatePlanner.IsActive("bucket", "generation")).Append(" GROUP BY bucket, value");
        sql.Append(" SETTINGS max_execution_time = ").Append(maxExecutionSeconds.ToString("0.######", inv));
        return sql.ToString();
    }

    private static List<(DateOnly Day, string Value, long[] Counts)> ReadRows(ReadOnlySpan<byte> data)
    {
        var rows = new List<(DateOnly, string, long[])>();
        var reader = new RowBinaryReader(data);
        var epoch = new DateOnly(1970, 1, 1);
        while (!reader.End)
        {
            var day = epoch.AddDays(reader.ReadUInt16());
            string value = reader.ReadString();
            var counts = new long[Counts];
            for (int i = 0; i < Counts; i++) counts[i] = (long)reader.ReadUInt64();
            rows.Add((day, value, counts));
        }
        return rows;
    }
}
