using System.Globalization;
using System.Text;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// Bytes on disk per event for every table (QueryBench --storage; docs/operations.md, "Retention"):
/// N events through the real Rollup (RollupWorker from a local log, pre-aggregates on, the path
/// live ingest takes) into a fresh database, then OPTIMIZE TABLE … FINAL on every table so each
/// is measured merged, as it sits after background merges, then system.parts (active parts:
/// bytes_on_disk and rows per table). The events: 100 merchants, 2,000 visitors each, in time
/// order over 30 days, each batch mixing all merchants (CatchUp's generator), so every merchant
/// has a month of buckets: small sites (about 3 events per merchant-hour at 200,000 events), where
/// rollup rows per event are highest; busier sites share each rollup row among more events.
/// </summary>
public static class StorageCost
{
    public sealed record TableCost(string Table, long Rows, long Bytes, double BytesPerEvent);

    public static async Task<(IReadOnlyList<TableCost> Tables, double RollupEventsPerSecond)> MeasureAsync(
        IColumnStore store, string root, int events, CancellationToken ct)
    {
        const string Db = "storage";
        await new SchemaMigrator(store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), Db, ct);
        await using var backlog = new CatchUp(store, Path.Combine(root, "storage-log"), events, merchants: 100, span: TimeSpan.FromDays(30), mixMerchants: true);
        await backlog.WriteBacklogAsync(ct);
        double rate = await backlog.RunAsync(Db, "storage", preAggregates: true, null, ct);

        var tables = await store.QueryRowsAsync($"SELECT name FROM system.tables WHERE database = '{Db}' AND engine LIKE '%MergeTree' ORDER BY name", ct);
        foreach (var t in tables) await store.ExecuteAsync($"OPTIMIZE TABLE {Db}.{t[0].GetString()} FINAL", ct);
        var parts = await store.QueryRowsAsync(
            $"SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = '{Db}' AND active GROUP BY table ORDER BY table", ct);
        var costs = parts.Select(p => new TableCost(p[0].GetString()!, p[1].GetInt64(), p[2].GetInt64(), p[2].GetInt64() / (double)events)).ToList();
        return (costs, rate);
    }

    public static string Markdown(IReadOnlyList<TableCost> costs, int events)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"{events:N0} events through the real Rollup (100 merchants, 30 days), every table after OPTIMIZE FINAL (system.parts, active parts):");
        md.AppendLine();
        md.AppendLine("| table | rows | rows per event | bytes on disk | bytes per event |");
        md.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var c in costs)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {c.Table} | {c.Rows:N0} | {c.Rows / (double)events:0.####} | {c.Bytes:N0} | {c.BytesPerEvent:0.##} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| **total** | {costs.Sum(c => c.Rows):N0} | | {costs.Sum(c => c.Bytes):N0} | **{costs.Sum(c => c.BytesPerEvent):0.##}** |");
        return md.ToString();
    }
}
