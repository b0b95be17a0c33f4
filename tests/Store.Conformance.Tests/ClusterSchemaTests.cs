using Analytics.Store.ClickHouse;
using Analytics.Tests.Shared;

namespace Analytics.Store.Conformance.Tests;

/// <summary>
/// The cluster DDL can only be generated and parsed here: running ON CLUSTER statements,
/// ReplicatedMergeTree and Distributed tables needs a real cluster with Keeper
/// (docs/clickhouse-server.md). ClickHouse's own parser (formatQuery) checks every statement.
/// </summary>
public sealed class ClusterSchemaTests(BackendsFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static IReadOnlyList<string> AllStatements(string db, string cluster)
    {
        return
        [
            $"CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER {cluster}",
            ClusterSchema.HistoryTable(db, cluster),
            .. SchemaMigrator.Discover(BackendsFixture.SchemaDirectory).SelectMany(m => ClusterSchemaMigrator.Statements(m, db, cluster)),
        ];
    }

    [Fact]
    public async Task Every_cluster_statement_of_the_product_schema_parses_in_ClickHouse()
    {
        var statements = AllStatements("analytics", "web");
        Assert.True(statements.Count >= 16, $"expected the whole schema, got {statements.Count} statements");
        foreach (var statement in statements)
        {
            var formatted = (await fixture.Embedded.QueryRowsAsync($"SELECT formatQuery({ClickHouseSql.StringLiteral(statement)})", Ct))[0][0].GetString()!;
            // DDL runs on every node; a migration's INSERT … SELECT runs once, through the Distributed tables.
            if (statement.StartsWith("INSERT", StringComparison.Ordinal)) Assert.DoesNotContain("ON CLUSTER", formatted, StringComparison.Ordinal);
            else Assert.Contains("ON CLUSTER web", formatted, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Every_table_is_replicated_and_read_through_a_distributed_table_sharded_by_merchant()
    {
        var statements = AllStatements("analytics", "web");
        string[] tables = ["events_raw", "events_enriched", "event_ids", "rollup_minute", "rollup_hour", "rollup_day", "rollup_dims_day", "rollup_visits_day", "generations", "preaggregate_gaps"];
        foreach (var table in tables)
        {
            var local = Assert.Single(statements, s => s.StartsWith($"CREATE TABLE IF NOT EXISTS analytics.{table}_local ON CLUSTER web", StringComparison.Ordinal));
            Assert.Matches(@"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/analytics/" + table + @"_local', '\{replica\}'", local);
            Assert.DoesNotContain("non_replicated_deduplication_window", local, StringComparison.Ordinal);
            Assert.Contains(
                $"CREATE TABLE IF NOT EXISTS analytics.{table} ON CLUSTER web AS analytics.{table}_local ENGINE = Distributed(web, analytics, {table}_local, cityHash64(merchant_id))",
                statements);
        }
        Assert.Contains(statements, s => s.Contains("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics/generations_local', '{replica}', activated_at)", StringComparison.Ordinal));
    }

    [Fact]
    public void A_table_without_merchant_id_is_one_replicated_table_shared_by_every_node()
    {
        var statements = AllStatements("analytics", "web");
        var inflight = Assert.Single(statements, s => s.Contains("analytics.rollup_inflight", StringComparison.Ordinal));
        Assert.StartsWith("CREATE TABLE IF NOT EXISTS analytics.rollup_inflight ON CLUSTER web", inflight, StringComparison.Ordinal);
        Assert.Contains("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/analytics/rollup_inflight', '{replica}', from_offset)", inflight, StringComparison.Ordinal);
        Assert.DoesNotContain("Distributed", inflight, StringComparison.Ordinal);
    }

    [Fact]
    public void Column_changes_reach_the_distributed_table_and_sort_key_changes_only_the_replicated_one()
    {
        var statements = ClusterSchema.Translate(
            "ALTER TABLE analytics.rollup_day ADD COLUMN IF NOT EXISTS generation UInt64, MODIFY ORDER BY (merchant_id, site_id, bucket, name, generation)", "web");

        Assert.Equal(
        [
            "ALTER TABLE analytics.rollup_day_local ON CLUSTER web ADD COLUMN IF NOT EXISTS generation UInt64, MODIFY ORDER BY (merchant_id, site_id, bucket, name, generation)",
            "ALTER TABLE analytics.rollup_day ON CLUSTER web ADD COLUMN IF NOT EXISTS generation UInt64",
        ], statements);
    }

    [Fact]
    public async Task Retention_on_a_cluster_changes_the_replicated_tables_only_and_parses_in_ClickHouse()
    {
        var db = "c_" + Guid.NewGuid().ToString("N");
        foreach (var table in RetentionPolicy.Tables)
        {
            await fixture.Embedded.ExecuteAsync($"CREATE DATABASE IF NOT EXISTS {db}", Ct);
            await fixture.Embedded.ExecuteAsync($"CREATE TABLE {db}.{table.Name}{ClusterSchema.LocalSuffix} (merchant_id UInt64, {table.TimeColumn} DateTime) ENGINE = MergeTree ORDER BY merchant_id", Ct);
        }
        // A store that records what it is asked to run, over the real engine for the reads.
        var recorder = new RecordingStore(fixture.Embedded);
        await RetentionApplier.ApplyAsync(recorder, db, new RetentionPolicy { Enriched = new(2, RetentionUnit.Year) },
            ClusterSchemaMigrator.Target("web"), ClusterSchema.LocalSuffix, Ct);
        var statement = Assert.Single(recorder.Executed);
        Assert.Equal($"ALTER TABLE {db}.events_enriched_local ON CLUSTER web MODIFY TTL toDateTime(toDate(received_at), 'UTC') + toIntervalYear(2)", statement);
        await fixture.Embedded.QueryRowsAsync($"SELECT formatQuery({ClickHouseSql.StringLiteral(statement)})", Ct);
    }

    /// <summary>Runs reads on the engine and records statements instead of running them (ON CLUSTER needs a cluster).</summary>
    private sealed class RecordingStore(IColumnStore inner) : DelegatingColumnStore(inner)
    {
        public List<string> Executed { get; } = [];

        public override Task ExecuteAsync(string sql, CancellationToken cancellationToken = default)
        {
            Executed.Add(sql);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public void A_migrations_insert_select_runs_once_as_written_through_the_distributed_tables()
    {
        var statements = AllStatements("analytics", "web");
        var insert = Assert.Single(statements, s => s.StartsWith("INSERT", StringComparison.Ordinal));
        Assert.StartsWith("INSERT INTO analytics.preaggregate_gaps (merchant_id, site_id, rollup, day, generation)", insert, StringComparison.Ordinal);
        Assert.DoesNotContain("_local", insert, StringComparison.Ordinal);
        Assert.Equal(["INSERT INTO analytics.t (a) SELECT 1"], ClusterSchema.Translate("INSERT INTO analytics.t (a) SELECT 1", "web"));
    }

    [Fact]
    public void A_statement_without_a_cluster_form_is_refused()
    {
        Assert.Throws<NotSupportedException>(() => ClusterSchema.Translate("CREATE VIEW analytics.v AS SELECT 1", "web"));
        Assert.Throws<NotSupportedException>(() => ClusterSchema.Translate("CREATE TABLE IF NOT EXISTS analytics.m (a UInt8) ENGINE = Memory", "web"));
    }
}
