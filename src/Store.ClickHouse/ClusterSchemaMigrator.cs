// Applies the product's migrations (schemas/clickhouse) to a cluster, in their ClusterSchema form.
//
// Contract: SchemaMigrator's contract (version order, {db}, statements split the same way,
// history recorded after a file's statements all succeed, recorded versions skipped, a renamed
// version is an error), with every statement ON CLUSTER and the history in one replicated table
// shared by all nodes. Idempotent: every translated statement is IF NOT EXISTS / IF NOT EXISTS
// column changes, so a file interrupted half way is safe to run again. ON CLUSTER statements
// wait for every host (distributed_ddl_task_timeout, 180 s by default) and fail if one does not
// answer; re-run the migration after the host is back. Run one migrator per cluster at a time.
using System.Globalization;

namespace Analytics.Store.ClickHouse;

public sealed class ClusterSchemaMigrator(IColumnStore store, string cluster)
{
    private readonly IColumnStore _store = store ?? throw new ArgumentNullException(nameof(store));
    private readonly string _cluster = ClickHouseSql.RequirePlainIdentifier(cluster, nameof(cluster));

    /// <summary>The statements a migration file becomes on the cluster, in order.</summary>
    public static IReadOnlyList<string> Statements(SchemaMigration migration, string database, string cluster)
    {
        ArgumentNullException.ThrowIfNull(migration);
        ClickHouseSql.RequirePlainIdentifier(database, nameof(database));
        var script = File.ReadAllText(migration.FilePath).Replace(SchemaMigrator.DatabasePlaceholder, database, StringComparison.Ordinal);
        return [.. SchemaMigrator.SplitStatements(script).SelectMany(s => ClusterSchema.Translate(s, cluster))];
    }

    public async Task<IReadOnlyList<SchemaMigration>> MigrateAsync(string directory, string database,
        CancellationToken cancellationToken = default)
    {
        ClickHouseSql.RequirePlainIdentifier(database, nameof(database));
        var migrations = SchemaMigrator.Discover(directory);
        // Translate everything first: a statement without a cluster form fails before any DDL runs.
        var plans = migrations.Select(m => (Migration: m, Statements: Statements(m, database, _cluster))).ToList();

        await _store.ExecuteAsync($"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {_cluster}", cancellationToken).ConfigureAwait(false);
        await _store.ExecuteAsync(ClusterSchema.HistoryTable(database, _cluster), cancellationToken).ConfigureAwait(false);

        var applied = new Dictionary<uint, string>();
        foreach (var row in await _store.QueryRowsAsync($"SELECT version, name FROM {database}.{SchemaMigrator.HistoryTable}", cancellationToken).ConfigureAwait(false))
            applied[row[0].GetUInt32()] = row[1].GetString() ?? "";

        var done = new List<SchemaMigration>();
        foreach (var (migration, statements) in plans)
        {
            if (applied.TryGetValue(migration.Version, out var appliedName))
            {
                if (!string.Equals(appliedName, migration.Name, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException(
                        $"Database {database} has migration {migration.Version} applied as '{appliedName}', but {directory} holds " +
                        $"'{migration.Name}' for that version. Give the new file an unused version number.");
                }
                continue;
            }
            foreach (var statement in statements)
                await _store.ExecuteAsync(statement, cancellationToken).ConfigureAwait(false);
            await _store.ExecuteAsync(
                $"INSERT INTO {database}.{SchemaMigrator.HistoryTable} (version, name, applied_at) VALUES " +
                $"({migration.Version.ToString(CultureInfo.InvariantCulture)}, {ClickHouseSql.StringLiteral(migration.Name)}, now())",
                cancellationToken).ConfigureAwait(false);
            done.Add(migration);
        }
        return done;
    }
}
