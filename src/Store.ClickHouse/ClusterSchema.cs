// The cluster form of the product's DDL, derived from the single-server files in schemas/clickhouse
// so that one set of files stays the source of truth.
//
// Contract: Translate maps one single-server statement (after "{db}" substitution) to the
// statements a cluster needs, all ON CLUSTER:
// - CREATE DATABASE → the same, ON CLUSTER.
// - CREATE TABLE db.t (…) ENGINE = XMergeTree[(args)] … → the data table db.t_local with
//   ENGINE = ReplicatedXMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}'[, args])
//   (the {shard} and {replica} macros come from each server's config) and
//   non_replicated_deduplication_window replaced by replicated_deduplication_window (Replicated
//   tables deduplicate inserts by default; the window keeps the same 10,000 tokens), plus the
//   table the product reads and writes, db.t AS db.t_local ENGINE = Distributed(cluster, db,
//   t_local, cityHash64(merchant_id)). Sharding by merchant puts one merchant's rows on one
//   shard, so a dashboard query touches one shard (optimize_skip_unused_shards) and the JOIN with
//   `generations` stays shard-local (distributed_product_mode = local).
//   A table without a merchant_id column (small control state such as rollup_inflight) has
//   nothing to shard by: it becomes one ReplicatedXMergeTree table, ON CLUSTER, with a path
//   shared by every node ('/clickhouse/tables/all/…'), so every node reads the same rows.
// - ALTER TABLE db.t cmds → ALTER TABLE db.t_local ON CLUSTER cmds; column changes (ADD, DROP,
//   MODIFY, RENAME COLUMN) also go to the Distributed table, whose columns must match.
// - INSERT INTO db.t (…) SELECT … (a migration filling a table from what the database holds, such
//   as 013's list of site-days stored before the pre-aggregates) → the same statement, not ON
//   CLUSTER: run once, on the node running the migration, through the Distributed tables (the
//   SELECT reads every shard, the insert routes each row to its merchant's shard). ON CLUSTER
//   would run it on every node and write each row once per node.
// Anything else throws: a new kind of statement needs a deliberate cluster form, not a guess.
// The translation is checked here only by ClickHouse's parser (formatQuery in the tests); running
// it needs a real cluster with Keeper (docs/clickhouse-server.md has the recipe).
using System.Text;
using System.Text.RegularExpressions;

namespace Analytics.Store.ClickHouse;

public static partial class ClusterSchema
{
    /// <summary>Suffix of the replicated data tables behind the Distributed tables.</summary>
    public const string LocalSuffix = "_local";

    /// <summary>The sharding key of every Distributed table.</summary>
    public const string ShardingKey = "cityHash64(merchant_id)";

    public static IReadOnlyList<string> Translate(string statement, string cluster)
    {
        ArgumentNullException.ThrowIfNull(statement);
        ClickHouseSql.RequirePlainIdentifier(cluster, nameof(cluster));
        var sql = statement.Trim();

        if (CreateDatabase().Match(sql) is { Success: true } database)
            return [$"CREATE DATABASE IF NOT EXISTS {database.Groups["db"].Value} ON CLUSTER {cluster}"];

        if (CreateTable().Match(sql) is { Success: true } create)
        {
            var (db, table) = (create.Groups["db"].Value, create.Groups["table"].Value);
            var local = table + LocalSuffix;
            var engine = create.Groups["engine"].Value;
            var args = create.Groups["args"].Success && create.Groups["args"].Value.Trim().Length > 0
                ? ", " + create.Groups["args"].Value.Trim()
                : "";
            var rest = create.Groups["rest"].Value.Replace("non_replicated_deduplication_window", "replicated_deduplication_window", StringComparison.Ordinal);
            if (!MerchantColumn().IsMatch(create.Groups["columns"].Value))
            {
                return
                [
                    $"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster}\n{create.Groups["columns"].Value}\n" +
                    $"ENGINE = Replicated{engine}('/clickhouse/tables/all/{db}/{table}', '{{replica}}'{args}){rest}",
                ];
            }
            return
            [
                $"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster}\n{create.Groups["columns"].Value}\n" +
                $"ENGINE = Replicated{engine}('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'{args}){rest}",
                $"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local} " +
                $"ENGINE = Distributed({cluster}, {db}, {local}, {ShardingKey})",
            ];
        }

        if (AlterTable().Match(sql) is { Success: true } alter)
        {
            var (db, table, commands) = (alter.Groups["db"].Value, alter.Groups["table"].Value, alter.Groups["commands"].Value);
            var statements = new List<string> { $"ALTER TABLE {db}.{table}{LocalSuffix} ON CLUSTER {cluster} {commands}" };
            var columnCommands = ClickHouseSql.SplitTopLevel(commands).Where(c => ColumnCommand().IsMatch(c)).ToList();
            if (columnCommands.Count > 0)
                statements.Add($"ALTER TABLE {db}.{table} ON CLUSTER {cluster} {string.Join(", ", columnCommands)}");
            return statements;
        }

        if (InsertSelect().IsMatch(sql)) return [sql];

        throw new NotSupportedException(
            $"No cluster form is defined for this statement; extend ClusterSchema deliberately: {(sql.Length <= 120 ? sql : sql[..120])}");
    }

    /// <summary>The migration history on a cluster: one replicated table shared by every node
    /// (a fixed ZooKeeper path without {shard}), so any node knows what was applied.</summary>
    public static string HistoryTable(string database, string cluster) =>
        $"CREATE TABLE IF NOT EXISTS {database}.{SchemaMigrator.HistoryTable} ON CLUSTER {cluster} " +
        "(version UInt32, name String, applied_at DateTime) " +
        $"ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/{SchemaMigrator.HistoryTable}', '{{replica}}') ORDER BY version";

    [GeneratedRegex(@"^CREATE\s+DATABASE\s+IF\s+NOT\s+EXISTS\s+(?<db>[A-Za-z_][A-Za-z0-9_]*)$", RegexOptions.IgnoreCase)]
    private static partial Regex CreateDatabase();

    [GeneratedRegex(@"^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(?<db>[A-Za-z_][A-Za-z0-9_]*)\.(?<table>[A-Za-z_][A-Za-z0-9_]*)\s*(?<columns>\(.*\))\s*ENGINE\s*=\s*(?<engine>(Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing)?MergeTree)\s*(\((?<args>[^)]*)\))?(?<rest>.*)$", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
    private static partial Regex CreateTable();

    [GeneratedRegex(@"^ALTER\s+TABLE\s+(?<db>[A-Za-z_][A-Za-z0-9_]*)\.(?<table>[A-Za-z_][A-Za-z0-9_]*)\s+(?<commands>.+)$", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
    private static partial Regex AlterTable();

    [GeneratedRegex(@"^INSERT\s+INTO\s+[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\s*\([^)]*\)\s*SELECT\s", RegexOptions.IgnoreCase)]
    private static partial Regex InsertSelect();

    [GeneratedRegex(@"^\s*merchant_id\s", RegexOptions.Multiline)]
    private static partial Regex MerchantColumn();

    [GeneratedRegex(@"^(ADD|DROP|MODIFY|RENAME)\s+COLUMN\b", RegexOptions.IgnoreCase)]
    private static partial Regex ColumnCommand();
}
