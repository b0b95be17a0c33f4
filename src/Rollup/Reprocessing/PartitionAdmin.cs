using System.Globalization;
using Analytics.Store;

namespace Analytics.Rollup.Reprocessing;

public sealed record PartitionStatus(long SiteId, DateOnly Day, ulong Generation, ushort MinLogicVersion, ushort MaxLogicVersion, long Events, bool Outdated);

public sealed record ExportedFile(string Path, DateOnly Day, long Rows);

/// <summary>
/// Partition status (which site-days were built with older processing logic) and Parquet export
/// of raw or enriched events for teams that reprocess with Spark or other engines.
/// </summary>
public sealed class PartitionAdmin(IColumnStore store, string db)
{
    /// <summary>Site-days of a merchant with the logic versions of their active rows.</summary>
    public async Task<IReadOnlyList<PartitionStatus>> StatusAsync(long merchantId, long? siteId, ushort currentVersion, CancellationToken ct)
    {
        string site = siteId is { } s ? string.Create(CultureInfo.InvariantCulture, $" AND e.site_id = {s}") : "";
        var rows = await store.QueryRowsAsync(string.Create(CultureInfo.InvariantCulture,
            $"SELECT e.site_id, toString(toDate(e.received_at)) AS day, e.generation, min(e.logic_version), max(e.logic_version), count() " +
            $"FROM {db}.events_enriched AS e " +
            $"LEFT JOIN (SELECT site_id, day, argMax(generation, activated_at) AS active_generation FROM {db}.generations " +
            $"WHERE merchant_id = {merchantId} GROUP BY site_id, day) AS a ON e.site_id = a.site_id AND toDate(e.received_at) = a.day " +
            $"WHERE e.merchant_id = {merchantId}{site} AND e.generation = a.active_generation " +
            $"GROUP BY e.site_id, day, e.generation ORDER BY day, e.site_id"), ct);
        return rows.Select(r =>
        {
            ushort min = (ushort)r[3].GetUInt32();
            return new PartitionStatus(r[0].GetInt64(), DateOnly.Parse(r[1].GetString()!, CultureInfo.InvariantCulture), r[2].GetUInt64(),
                min, (ushort)r[4].GetUInt32(), r[5].GetInt64(), min < currentVersion);
        }).ToList();
    }

    /// <summary>
    /// Writes one Parquet file per day: DIR/merchant_id=M/date=YYYY-MM-DD/{raw|enriched}.parquet
    /// (Hive-style directories, which Spark, DuckDB and ClickHouse read as partition columns).
    /// Enriched exports contain only the active generation.
    /// </summary>
    public async Task<IReadOnlyList<ExportedFile>> ExportParquetAsync(long merchantId, long? siteId, DateOnly from, DateOnly to, string kind, string directory, CancellationToken ct)
    {
        if (kind is not ("raw" or "enriched")) throw new ArgumentException("kind must be raw or enriched", nameof(kind));
        string site = siteId is { } s ? string.Create(CultureInfo.InvariantCulture, $" AND e.site_id = {s}") : "";
        string active = kind == "raw" ? "" :
            $" AND e.generation = a.active_generation";
        string join = kind == "raw" ? "" : string.Create(CultureInfo.InvariantCulture,
            $" LEFT JOIN (SELECT site_id, day, argMax(generation, activated_at) AS active_generation FROM {db}.generations " +
            $"WHERE merchant_id = {merchantId} GROUP BY site_id, day) AS a ON e.site_id = a.site_id AND toDate(e.received_at) = a.day");
        var files = new List<ExportedFile>();
        for (var day = from; day <= to; day = day.AddDays(1))
        {
            string where = string.Create(CultureInfo.InvariantCulture,
                $"e.merchant_id = {merchantId}{site} AND toDate(e.received_at) = '{DerivedRows.Day(day)}'{active}");
            var count = await store.QueryRowsAsync($"SELECT count() FROM {db}.events_{kind} AS e{join} WHERE {where}", ct);
            long rows = count[0][0].GetInt64();
            if (rows == 0) continue;
            string dir = Path.Combine(Path.GetFullPath(directory), string.Create(CultureInfo.InvariantCulture, $"merchant_id={merchantId}"), $"date={DerivedRows.Day(day)}");
            Directory.CreateDirectory(dir);
            string path = Path.Combine(dir, kind + ".parquet");
            File.Delete(path);
            // Event ids leave as 32 hex characters: FixedString bytes are awkward in most readers.
            await store.ExecuteAsync(
                $"INSERT INTO FUNCTION file({ClickHouseSql.StringLiteral(path)}, 'Parquet') " +
                $"SELECT e.* REPLACE (hex(e.event_id) AS event_id) FROM {db}.events_{kind} AS e{join} WHERE {where} ORDER BY e.site_id, e.received_at, e.event_id", ct);
            files.Add(new ExportedFile(path, day, rows));
        }
        return files;
    }
}
