using System.Globalization;
using Analytics.Store;

namespace Analytics.Rollup;

/// <summary>
/// The log range a consumer group is storing, per source, kept in the store (table
/// rollup_inflight; see schemas/clickhouse/004_rollup_inflight.sql for why). Rounds of one
/// source never overlap, so the latest mark of a source is either the range being stored now or
/// one already committed.
/// </summary>
public sealed class InflightRanges(IColumnStore store, string database, string consumerGroup)
{
    private readonly string _table = $"{ClickHouseSql.RequirePlainIdentifier(database)}.rollup_inflight";
    private readonly string _group = ClickHouseSql.StringLiteral(consumerGroup);

    public readonly record struct Range(long From, long Next);

    /// <summary>Records, before anything of it is written, that [from, next) of the source is being stored.</summary>
    public Task MarkAsync(string source, long from, long next, CancellationToken ct) =>
        store.ExecuteAsync(string.Create(CultureInfo.InvariantCulture,
            $"INSERT INTO {_table} (consumer_group, source, from_offset, next_offset, marked_at) VALUES ({_group}, {ClickHouseSql.StringLiteral(source)}, {from}, {next}, now64(3))"), ct);

    /// <summary>The source's latest mark, or null if it never had one.</summary>
    public async Task<Range?> LatestAsync(string source, CancellationToken ct)
    {
        var rows = await store.QueryRowsAsync(
            $"SELECT from_offset, next_offset FROM {_table} WHERE consumer_group = {_group} AND source = {ClickHouseSql.StringLiteral(source)} " +
            "ORDER BY from_offset DESC, marked_at DESC LIMIT 1", ct);
        return rows.Count == 0 ? null : new Range(rows[0][0].GetInt64(), rows[0][1].GetInt64());
    }
}
