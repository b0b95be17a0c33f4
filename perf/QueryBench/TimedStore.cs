using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// The real store with a stopwatch around each statement, summed by what the statement does
/// ("insert events_raw", "select event_ids", …): where a Rollup round spends its engine time,
/// measured the same way in every run, so a breakdown is comparable where wall clock is not.
/// Statements running at the same time each count their own time, so the sum can exceed the
/// wall clock once statements overlap.
/// </summary>
public sealed partial class TimedStore(IColumnStore inner) : IColumnStore
{
    private readonly ConcurrentDictionary<string, (long Count, long Ticks)> _totals = new();

    public IReadOnlyDictionary<string, (long Count, TimeSpan Time)> Totals =>
        _totals.ToDictionary(t => t.Key, t => (t.Value.Count, Stopwatch.GetElapsedTime(0, t.Value.Ticks)));

    public void Reset() => _totals.Clear();

    public Task ExecuteAsync(string sql, CancellationToken cancellationToken = default) =>
        Time(Kind(sql), () => inner.ExecuteAsync(sql, cancellationToken));

    public Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, CancellationToken cancellationToken = default) =>
        Time(Kind(sql), () => inner.QueryRowsAsync(sql, cancellationToken));

    public Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, KeyRows keys, CancellationToken cancellationToken = default) =>
        Time(Kind(sql), () => inner.QueryRowsAsync(sql, keys, cancellationToken));

    public Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default) =>
        Time(Kind(sql) + " (RowBinary)", () => inner.QueryRowBinaryAsync(sql, read, cancellationToken));

    public Task<long> InsertRowBinaryAsync(string table, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary, string? deduplicationToken = null,
        CancellationToken cancellationToken = default) =>
        Time("insert " + table[(table.IndexOf('.') + 1)..], () => inner.InsertRowBinaryAsync(table, columnsWithTypes, rowBinary, deduplicationToken, cancellationToken));

    private async Task Time(string kind, Func<Task> run) => await Time(kind, async () => { await run(); return true; });

    private async Task<T> Time<T>(string kind, Func<Task<T>> run)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            return await run();
        }
        finally
        {
            long ticks = Stopwatch.GetTimestamp() - start;
            _totals.AddOrUpdate(kind, (1, ticks), (_, t) => (t.Count + 1, t.Ticks + ticks));
        }
    }

    private static string Kind(string sql)
    {
        var insert = InsertInto().Match(sql);
        if (insert.Success) return "insert " + insert.Groups[1].Value;
        var from = FromTable().Match(sql);
        string verb = sql.TrimStart().Split(' ', 2)[0].ToLowerInvariant();
        return from.Success ? $"{verb} {from.Groups[1].Value}" : verb;
    }

    [GeneratedRegex(@"^\s*INSERT INTO \w+\.(\w+)", RegexOptions.IgnoreCase)]
    private static partial Regex InsertInto();

    [GeneratedRegex(@"FROM \w+\.(\w+)", RegexOptions.IgnoreCase)]
    private static partial Regex FromTable();
}
