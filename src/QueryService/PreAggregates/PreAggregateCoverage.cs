using System.Globalization;
using System.Text.Json;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// Which day pre-aggregates hold every day of a query's range, on a database upgraded from a
/// schema older than they are (schemas/clickhouse/013, docs/query-performance.md, "Days stored
/// before the pre-aggregates existed"). Contract:
/// - A site-day listed in preaggregate_gaps for a table under the day's active generation holds
///   events stored before that table existed, which it lacks; any other site-day is whole there
///   (written with every round since, or rebuilt by reprocessing into a new generation).
/// - <see cref="Sql"/> returns the tables (rollup_dims_day, rollup_visits_day) lacking a UTC day
///   that [From, To) touches, for the query's merchant and site; the planner then plans without
///   them, so the query is answered by the other table or the scan, or refused past the enriched
///   horizon. Coverage is per site-day rather than from one moment per database because
///   reprocessing rebuilds per site-day: activating the rebuilt generation ends that day's gap
///   with no bookkeeping, and a site added after the upgrade never has one. A fresh database lists
///   nothing, and the statement reads one key range of a table that is empty there.
/// </summary>
public static class PreAggregateCoverage
{
    public const string Table = "preaggregate_gaps";

    /// <summary>The migration that created each pre-aggregate table (for the reasons given).</summary>
    private static readonly Dictionary<string, string> Migrations = new()
    {
        [PreAggregatePlanner.Table] = "010",
        [VisitRollupPlanner.Table] = "011",
    };

    /// <summary>SQL returning one row per pre-aggregate table that lacks a day of the range.</summary>
    public static string Sql(long merchantId, long siteId, DateTimeOffset from, DateTimeOffset to, string database)
    {
        var last = to.UtcDateTime.AddTicks(-1).Date;
        return string.Create(CultureInfo.InvariantCulture, $"""
            SELECT DISTINCT g.rollup FROM {database}.{Table} AS g
            LEFT JOIN (SELECT day, argMax(generation, activated_at) AS active_generation FROM {database}.generations
                WHERE merchant_id = {merchantId} AND site_id = {siteId} GROUP BY day) AS active ON g.day = active.day
            WHERE g.merchant_id = {merchantId} AND g.site_id = {siteId} AND g.day >= toDate('{from.UtcDateTime:yyyy-MM-dd}')
                AND g.day <= toDate('{last:yyyy-MM-dd}') AND g.generation = active.active_generation
            """);
    }

    /// <summary>SQL returning how many site-days the database lists (0 on a fresh install).</summary>
    public static string CountSql(string database) => $"SELECT count() FROM {database}.{Table}";

    /// <summary>SQL returning the last day listed for a site as yyyy-MM-dd (1970-01-01: none).</summary>
    public static string LastDaySql(long merchantId, long siteId, string database) => string.Create(CultureInfo.InvariantCulture,
        $"SELECT toString(max(day)) FROM {database}.{Table} WHERE merchant_id = {merchantId} AND site_id = {siteId}");

    /// <summary>The tables named by <see cref="Sql"/>'s rows.</summary>
    public static IReadOnlySet<string> Read(IReadOnlyList<JsonElement[]> rows) => rows.Select(r => r[0].GetString()!).ToHashSet(StringComparer.Ordinal);

    /// <summary>Why the planner does not read <paramref name="table"/> for the range.</summary>
    public static string Reason(string table) =>
        $"{table} lacks days of the range whose events were stored before it existed (migration {Migrations.GetValueOrDefault(table, "?")}) and were not reprocessed since";
}
