using System.Text.Json;
using Analytics.Rollup;

namespace Analytics.Store.Conformance.Tests;

/// <summary>
/// The store contract (IColumnStore) as the product uses it, run unchanged against every backend.
/// Each subclass names one backend; BackendEquivalenceTests then requires both to give
/// byte-identical answers for the same work.
/// </summary>
public abstract class ColumnStoreConformanceTests(BackendsFixture fixture)
{
    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected BackendsFixture Fixture => fixture;

    protected abstract IColumnStore Store { get; }

    /// <summary>The same backend with its statements in the background (WithPriority).</summary>
    protected abstract IColumnStore BackgroundStore { get; }

    /// <summary>The engine's error code carried by a backend's exception.</summary>
    protected abstract int? ErrorCode(Exception e);

    private async Task<string> NewDatabaseAsync()
    {
        var db = "c_" + Guid.NewGuid().ToString("N");
        await Store.ExecuteAsync($"CREATE DATABASE {db}", Ct);
        return db;
    }

    [Fact]
    public async Task A_query_over_20000_keys_passed_as_data_finds_exactly_the_stored_ones()
    {
        var db = await NewDatabaseAsync();
        await Store.ExecuteAsync($"CREATE TABLE {db}.ids (site UInt64, id FixedString(16)) ENGINE = MergeTree ORDER BY (site, id)", Ct);
        var rng = new Random(5);
        var ids = Enumerable.Range(0, 20_000).Select(_ => { var b = new byte[16]; rng.NextBytes(b); return b; }).ToList();
        ids[7] = new byte[16]; // all zero
        ids[8] = Enumerable.Repeat((byte)'\'', 16).ToArray(); // quote bytes must survive any encoding
        using (var rows = new RowBinaryWriter())
        {
            foreach (var id in ids.Where((_, i) => i % 2 == 0))
            {
                rows.WriteUInt64(1);
                rows.WriteFixedString(id, 16);
            }
            await Store.InsertRowBinaryAsync($"{db}.ids", "site UInt64, id FixedString(16)", rows.WrittenMemory, cancellationToken: Ct);
        }

        var keys = new KeyRows("id FixedString(16)", 16, ids.SelectMany(b => b).ToArray());
        var found = await Store.QueryRowsAsync($"SELECT hex(id) FROM {db}.ids WHERE site = 1 AND id IN (SELECT id FROM {KeyRows.Placeholder})", keys, Ct);

        Assert.Equal(
            ids.Where((_, i) => i % 2 == 0).Select(Convert.ToHexString).Order(StringComparer.Ordinal),
            found.Select(r => r[0].GetString()!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_RowBinary_read_gives_the_rows_the_JSON_read_gives()
    {
        const string Sql = "SELECT number, concat('v', toString(number), if(number % 3 = 0, ' ümlaut \\\\ \"', '')), " +
            "if(number % 2 = 0, map(), map('k', toString(number))) FROM numbers(500)";
        var json = (await Store.QueryRowsAsync(Sql, Ct))
            .Select(r => $"{r[0].GetUInt64()} {r[1].GetString()} {string.Join(",", r[2].EnumerateObject().Select(p => p.Name + "=" + p.Value.GetString()))}").ToList();
        var binary = await Store.QueryRowBinaryAsync(Sql, static data =>
        {
            var rows = new List<string>();
            var r = new RowBinaryReader(data);
            while (!r.End)
                rows.Add($"{r.ReadUInt64()} {r.ReadString()} {string.Join(",", r.ReadStringMap().Select(p => p.Key + "=" + p.Value))}");
            return rows;
        }, Ct);
        Assert.Equal(500, json.Count);
        Assert.Equal(json, binary);
    }

    [Fact]
    public async Task The_product_migrations_apply_once_and_a_rerun_is_a_no_op()
    {
        var db = "c_" + Guid.NewGuid().ToString("N");
        var first = await new SchemaMigrator(Store).MigrateAsync(BackendsFixture.SchemaDirectory, db, Ct);
        var second = await new SchemaMigrator(Store).MigrateAsync(BackendsFixture.SchemaDirectory, db, Ct);

        Assert.Equal(SchemaMigrator.Discover(BackendsFixture.SchemaDirectory).Select(m => m.Name), first.Select(m => m.Name));
        Assert.Empty(second);
        var tables = await Store.QueryRowsAsync($"SELECT name FROM system.tables WHERE database = '{db}' ORDER BY name", Ct);
        Assert.Equal(
            ["event_ids", "events_enriched", "events_raw", "generations", "ingest_rejections", "preaggregate_gaps", "rollup_day", "rollup_dims_day", "rollup_hour", "rollup_inflight", "rollup_minute", "rollup_visits_day", "schema_migrations"],
            tables.Select(r => r[0].GetString()));
    }

    [Fact]
    public async Task Retention_on_the_product_tables_sets_the_TTLs_once_and_expired_days_go_at_the_next_merge()
    {
        var db = "c_" + Guid.NewGuid().ToString("N");
        await new SchemaMigrator(Store).MigrateAsync(BackendsFixture.SchemaDirectory, db, Ct);
        var policy = new RetentionPolicy { Raw = new(30, RetentionUnit.Day), Hour = new(2, RetentionUnit.Year) };
        Assert.Equal(["events_raw", "rollup_hour"], (await RetentionApplier.ApplyAsync(Store, db, policy, cancellationToken: Ct)).Select(c => c.Table));
        Assert.Empty(await RetentionApplier.ApplyAsync(Store, db, policy, cancellationToken: Ct));

        // Days 40 and 10 ago: the first is past 30 days, the second not.
        await Store.ExecuteAsync($"INSERT INTO {db}.events_raw (merchant_id, site_id, received_at) VALUES (1, 1, now64() - INTERVAL 40 DAY), (1, 1, now64() - INTERVAL 10 DAY)", Ct);
        await Store.ExecuteAsync($"OPTIMIZE TABLE {db}.events_raw FINAL", Ct);
        var days = await Store.QueryRowsAsync($"SELECT dateDiff('day', toDate(received_at), today()) FROM {db}.events_raw", Ct);
        Assert.Equal([10], days.Select(r => r[0].GetInt32()));

        Assert.Equal(["events_raw", "rollup_hour"], (await RetentionApplier.ApplyAsync(Store, db, RetentionPolicy.KeepEverything, cancellationToken: Ct)).Select(c => c.Table));
        Assert.Empty(await RetentionApplier.CurrentAsync(Store, db, cancellationToken: Ct));
    }

    [Fact]
    public async Task A_100000_row_RowBinary_insert_stores_and_reports_every_row()
    {
        var db = await NewDatabaseAsync();
        await ProductScenario.MigrateAsync(Store, db, Ct);
        var scenario = new ProductScenario(100_000);
        using var raw = scenario.RawRows();

        var written = await Store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, cancellationToken: Ct);

        Assert.Equal(100_000, written);
        Assert.Equal(100_000, ProductScenario.Count(await Store.QueryRowsAsync($"SELECT count() FROM {db}.events_raw", Ct)));
    }

    [Fact]
    public async Task An_insert_repeated_with_its_deduplication_token_is_stored_once()
    {
        var db = await NewDatabaseAsync();
        await ProductScenario.MigrateAsync(Store, db, Ct);
        using var raw = new ProductScenario(1_000).RawRows();

        var first = await Store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, "raw:0-1000:20261124", Ct);
        var replay = await Store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, "raw:0-1000:20261124", Ct);
        Assert.Equal(1_000, first);
        // Rollup relies on this: a replay skipped by its token reports the rows as written.
        Assert.Equal(1_000, replay);
        Assert.Equal(1_000, ProductScenario.Count(await Store.QueryRowsAsync($"SELECT count() FROM {db}.events_raw", Ct)));

        await Store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, "raw:another-range", Ct);
        Assert.Equal(2_000, ProductScenario.Count(await Store.QueryRowsAsync($"SELECT count() FROM {db}.events_raw", Ct)));
    }

    [Fact]
    public async Task A_rollup_statement_replayed_with_its_token_does_not_count_twice()
    {
        var db = await NewDatabaseAsync();
        await ProductScenario.MigrateAsync(Store, db, Ct);
        var scenario = new ProductScenario(2_000);
        await scenario.StoreAsync(Store, db, Ct);
        var before = await ProductScenario.DashboardAsync(Store, db, Ct);

        await ProductScenario.RollUpAsync(Store, db, Ct);

        Assert.Equal(before, await ProductScenario.DashboardAsync(Store, db, Ct));
    }

    [Fact]
    public async Task The_product_metric_queries_return_the_numbers_computed_from_the_events()
    {
        var db = await NewDatabaseAsync();
        await ProductScenario.MigrateAsync(Store, db, Ct);
        var scenario = new ProductScenario(5_000);
        var written = await scenario.StoreAsync(Store, db, Ct);
        Assert.Equal([5_000L, 5_000L], written);

        var lines = await ProductScenario.DashboardAsync(Store, db, Ct);

        var (m, s, day1) = (ProductScenario.Merchant, ProductScenario.Site, ProductScenario.Day1);
        Assert.Equal($"days, aggregate: {ProductScenario.Format(scenario.Expected(m, s, day1, day1.AddDays(2)))}", lines[0]);
        Assert.Equal($"hours, aggregate: {ProductScenario.Format(scenario.Expected(m, s, day1.AddHours(5), day1.AddHours(29)))}", lines[1]);
        Assert.Equal($"minutes, aggregate: {ProductScenario.Format(scenario.Expected(m, s, day1.AddMinutes(125), day1.AddMinutes(1000)))}", lines[2]);
        Assert.Equal("other tenant's site under this merchant: events=0,pageviews=0,visitors=0,visits=0", lines[4]);
        Assert.Equal($"other merchant: {ProductScenario.Format(scenario.Expected(ProductScenario.OtherMerchant, ProductScenario.OtherSite, day1, day1.AddDays(2)))}", lines[5]);
        Assert.True(scenario.Expected(m, s, day1, day1.AddDays(2))["visits"] > 100, "the scenario must exercise visits");
    }

    [Fact]
    public async Task Query_rows_keep_64_bit_integers_exact_and_strings_byte_for_byte()
    {
        var rows = await Store.QueryRowsAsync(
            "SELECT toUInt64(18446744073709551615), toInt64(-9223372036854775808), 'a\"b\\\\c ✓ ünï', [1, 2], 0.5, nan, map('k', 'v'), NULL", Ct);

        var row = Assert.Single(rows);
        Assert.Equal(JsonValueKind.Number, row[0].ValueKind);
        Assert.Equal(ulong.MaxValue, row[0].GetUInt64());
        Assert.Equal(long.MinValue, row[1].GetInt64());
        Assert.Equal("a\"b\\c ✓ ünï", row[2].GetString());
        Assert.Equal([1, 2], row[3].EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(0.5, row[4].GetDouble());
        Assert.Equal(JsonValueKind.Null, row[5].ValueKind);
        Assert.Equal("v", row[6].GetProperty("k").GetString());
        Assert.Equal(JsonValueKind.Null, row[7].ValueKind);
        Assert.Empty(await Store.QueryRowsAsync("SELECT number FROM numbers(0)", Ct));
    }

    [Fact]
    public async Task A_background_store_runs_every_kind_of_statement_in_the_background_and_its_origin_at_the_normal_priority()
    {
        // Each statement reads the nice value it runs at (getSetting), in every way a store runs
        // one, the two stores taking turns on the same sessions and connections. Both backends
        // end in ChDbEngine here (the driver's through the test endpoint, which runs the driver's
        // os_thread_priority=10 as Background), at the engine's values: -1 and 10
        // (ChDbEngine.SessionNiceValue). The driver itself sends nothing for normal statements.
        const string Nice = "getSetting('os_threads_nice_value_query')";
        var db = await NewDatabaseAsync();
        await Store.ExecuteAsync($"CREATE TABLE {db}.t (store String, nice Int32) ENGINE = MergeTree ORDER BY store", Ct);
        for (var round = 0; round < 5; round++)
        {
            foreach (var (name, store, expected) in new[] { ("normal", Store, -1), ("background", BackgroundStore, 10) })
            {
                await store.ExecuteAsync($"INSERT INTO {db}.t SELECT '{name}', {Nice}", Ct);
                Assert.Equal(expected, (await store.QueryRowsAsync($"SELECT {Nice}", Ct))[0][0].GetInt32());
                Assert.Equal(expected, await store.QueryRowBinaryAsync($"SELECT toInt32({Nice})", static data => BitConverter.ToInt32(data), Ct));
                Assert.Equal(expected, (await store.QueryRowsAsync($"SELECT {Nice} FROM {KeyRows.Placeholder} LIMIT 1", new KeyRows("k UInt64", 8, BitConverter.GetBytes(1UL)), Ct))[0][0].GetInt32());
            }
        }
        var stored = await Store.QueryRowsAsync($"SELECT store, groupUniqArray(nice), count() FROM {db}.t GROUP BY store ORDER BY store", Ct);
        Assert.Equal(["background [10] 5", "normal [-1] 5"], stored.Select(r => $"{r[0].GetString()} [{string.Join(",", r[1].EnumerateArray())}] {r[2]}"));
    }

    [Fact]
    public async Task A_refused_statement_fails_with_the_engine_error_code()
    {
        var db = await NewDatabaseAsync();
        var unknownTable = await Assert.ThrowsAnyAsync<Exception>(() => Store.QueryRowsAsync($"SELECT * FROM {db}.missing", Ct));
        Assert.Equal(60, ErrorCode(unknownTable));
        Assert.Contains("UNKNOWN_TABLE", unknownTable.Message, StringComparison.Ordinal);

        var syntax = await Assert.ThrowsAnyAsync<Exception>(() => Store.ExecuteAsync("CREATE TABEL x", Ct));
        Assert.Equal(62, ErrorCode(syntax));

        using var bad = new RowBinaryWriter();
        bad.WriteUInt8(1); // one byte where a UInt64 is due: the engine must refuse, not store garbage
        await Store.ExecuteAsync($"CREATE TABLE {db}.t (a UInt64) ENGINE = MergeTree ORDER BY a", Ct);
        var truncated = await Assert.ThrowsAnyAsync<Exception>(() => Store.InsertRowBinaryAsync($"{db}.t", "a UInt64", bad.WrittenMemory, cancellationToken: Ct));
        Assert.NotNull(ErrorCode(truncated));
        Assert.Equal(0, ProductScenario.Count(await Store.QueryRowsAsync($"SELECT count() FROM {db}.t", Ct)));
    }
}

public sealed class EmbeddedStoreConformanceTests(BackendsFixture fixture) : ColumnStoreConformanceTests(fixture)
{
    protected override IColumnStore Store => Fixture.Embedded;

    protected override IColumnStore BackgroundStore => Fixture.Embedded.WithPriority(StatementPriority.Background);

    protected override int? ErrorCode(Exception e) => Assert.IsType<ChDbException>(e).ErrorCode;
}

public sealed class ClickHouseServerStoreConformanceTests(BackendsFixture fixture) : ColumnStoreConformanceTests(fixture)
{
    protected override IColumnStore Store => Fixture.Server;

    protected override IColumnStore BackgroundStore => Fixture.Server.WithPriority(StatementPriority.Background);

    protected override int? ErrorCode(Exception e) => Assert.IsType<ClickHouse.ClickHouseStoreException>(e).ErrorCode;
}
