// Applies the product's migrations (schemas/clickhouse) to a cluster, in their ClusterSchema form.
//
// Contract: SchemaMigrator's contract (version order, {db}, statements split the same way,
// history recorded after a file's statements all succeed, recorded versions skipped, a renamed
// version is an error), with every statement ON CLUSTER and the history in one replicated table
// shared by all nodes. Idempotent: every translated statement is IF NOT EXISTS / IF NOT EXISTS
// column changes, so a file interrupted half way is safe to run again. ON CLUSTER statements
// wait for every host (distributed_ddl_task_timeout, 180 s by default) and fail if one does not
// answer; re-run the migration after the host is back. Run one migrator per cluster at a time.
namespace Analytics.Store.ClickHouse;

public static class ClusterSchemaMigrator
{
    /// <summary>SchemaMigrator's target for a cluster.</summary>
    public static SchemaTarget Target(string cluster)
    {
        ClickHouseSql.RequirePlainIdentifier(cluster, nameof(cluster));
        return new SchemaTarget(
            db => $"CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {cluster}",
            db => ClusterSchema.HistoryTable(db, cluster),
            statement => ClusterSchema.Translate(statement, cluster));
    }

    /// <summary>The statements a migration file becomes on the cluster, in order.</summary>
    public static IReadOnlyList<string> Statements(SchemaMigration migration, string database, string cluster) =>
        SchemaMigrator.Statements(migration, database, Target(cluster));

    public static SchemaMigrator For(IColumnStore store, string cluster) => new(store, Target(cluster));
}
