namespace Analytics.Store.Tests;

public sealed class SchemaMigratorTests(ChDbFixture fixture) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("analytics-migrations-").FullName;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void WriteFile(string name, string text) => File.WriteAllText(Path.Combine(_dir, name), text);

    private static string UniqueDb() => "mig_" + Guid.NewGuid().ToString("N");

    private void WriteTwoMigrations()
    {
        WriteFile("001_events.sql", """
            -- Raw events; {db} is replaced by the database name.
            CREATE TABLE IF NOT EXISTS {db}.events
            (
                id UInt64,
                url String
            )
            ENGINE = MergeTree
            ORDER BY id;

            -- a comment line ending in a semicolon does not end a statement;
            CREATE TABLE IF NOT EXISTS {db}.sites (site_id UInt32, name String) ENGINE = MergeTree ORDER BY site_id;
            """);
        WriteFile("002_more.sql", """
            ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS referrer String DEFAULT '';
            INSERT INTO {db}.sites VALUES (1, 'a;b')
            """);
    }

    [Fact]
    public async Task MigrateAsync_applies_files_in_order_records_them_and_is_a_no_op_when_rerun()
    {
        WriteTwoMigrations();
        WriteFile("notes.txt", "not a migration");
        var db = UniqueDb();
        var migrator = new SchemaMigrator(fixture.Store);

        var first = await migrator.MigrateAsync(_dir, db, Ct);
        Assert.Equal([1u, 2u], first.Select(m => m.Version));
        Assert.Equal(["001_events.sql", "002_more.sql"], first.Select(m => m.Name));

        var columns = await fixture.Store.QueryRowsAsync($"SELECT name FROM system.columns WHERE database = '{db}' AND table = 'events' ORDER BY position", Ct);
        Assert.Equal(["id", "url", "referrer"], columns.Select(r => r[0].GetString()!));
        var sites = await fixture.Store.QueryRowsAsync($"SELECT site_id, name FROM {db}.sites", Ct);
        Assert.Equal("a;b", Assert.Single(sites)[1].GetString());

        var history = await fixture.Store.QueryRowsAsync($"SELECT version, name, applied_at > now() - INTERVAL 1 HOUR FROM {db}.schema_migrations ORDER BY version", Ct);
        Assert.Equal([1u, 2u], history.Select(r => r[0].GetUInt32()));
        Assert.Equal(["001_events.sql", "002_more.sql"], history.Select(r => r[1].GetString()!));
        Assert.All(history, r => Assert.Equal(1, r[2].GetInt32()));

        // Re-run: nothing applied (002 would insert its row again if it ran).
        Assert.Empty(await migrator.MigrateAsync(_dir, db, Ct));
        Assert.Single(await fixture.Store.QueryRowsAsync($"SELECT * FROM {db}.sites", Ct));
        Assert.Equal(2, (await fixture.Store.QueryRowsAsync($"SELECT * FROM {db}.schema_migrations", Ct)).Count);

        // A new file: only it runs.
        WriteFile("010_third.sql", "CREATE TABLE {db}.third (a UInt8) ENGINE = MergeTree ORDER BY a;\n");
        var third = await migrator.MigrateAsync(_dir, db, Ct);
        Assert.Equal([10u], third.Select(m => m.Version));
        Assert.Equal(3, (await fixture.Store.QueryRowsAsync($"SELECT * FROM {db}.schema_migrations", Ct)).Count);
    }

    [Fact]
    public async Task The_same_files_applied_to_two_databases_stay_separate()
    {
        WriteTwoMigrations();
        var (a, b) = (UniqueDb(), UniqueDb());
        var migrator = new SchemaMigrator(fixture.Store);
        Assert.Equal(2, (await migrator.MigrateAsync(_dir, a, Ct)).Count);
        Assert.Equal(2, (await migrator.MigrateAsync(_dir, b, Ct)).Count);
        Assert.Single(await fixture.Store.QueryRowsAsync($"SELECT * FROM {b}.sites", Ct));
    }

    [Fact]
    public async Task A_failing_statement_stops_the_run_and_leaves_that_file_unrecorded()
    {
        WriteFile("001_ok.sql", "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a;");
        WriteFile("002_bad.sql", "CREATE TABLE IF NOT EXISTS {db}.u (a UInt8) ENGINE = MergeTree ORDER BY a;\nSELECT * FROM {db}.missing;");
        var db = UniqueDb();
        var migrator = new SchemaMigrator(fixture.Store);

        var e = await Assert.ThrowsAsync<ChDbException>(() => migrator.MigrateAsync(_dir, db, Ct));
        Assert.Contains("002_bad.sql", e.Message);
        Assert.Equal(60, e.ErrorCode); // UNKNOWN_TABLE
        var history = await fixture.Store.QueryRowsAsync($"SELECT version FROM {db}.schema_migrations", Ct);
        Assert.Equal([1u], history.Select(r => r[0].GetUInt32()));

        // Fixed file: the re-run repeats 002's first statement, which is why it says IF NOT EXISTS.
        WriteFile("002_bad.sql", "CREATE TABLE IF NOT EXISTS {db}.u (a UInt8) ENGINE = MergeTree ORDER BY a;\nSELECT 1;");
        Assert.Equal([2u], (await migrator.MigrateAsync(_dir, db, Ct)).Select(m => m.Version));
    }

    [Fact]
    public async Task A_renamed_applied_version_is_an_error()
    {
        WriteFile("001_a.sql", "SELECT 1;");
        var db = UniqueDb();
        var migrator = new SchemaMigrator(fixture.Store);
        await migrator.MigrateAsync(_dir, db, Ct);
        File.Move(Path.Combine(_dir, "001_a.sql"), Path.Combine(_dir, "001_b.sql"));

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => migrator.MigrateAsync(_dir, db, Ct));
        Assert.Contains("001_a.sql", e.Message);
        Assert.Contains("001_b.sql", e.Message);
    }

    [Theory]
    [InlineData("events.sql")]
    [InlineData("v1_events.sql")]
    [InlineData("_events.sql")]
    [InlineData("99999999999_events.sql")]
    public void Discover_rejects_misnamed_sql_files(string name)
    {
        WriteFile(name, "SELECT 1;");
        Assert.Throws<InvalidDataException>(() => SchemaMigrator.Discover(_dir));
    }

    [Fact]
    public void Discover_rejects_two_files_with_one_version_and_orders_numerically()
    {
        WriteFile("2_b.sql", "");
        WriteFile("10_c.sql", "");
        WriteFile("001_a.sql", "");
        Assert.Equal(["001_a.sql", "2_b.sql", "10_c.sql"], SchemaMigrator.Discover(_dir).Select(m => m.Name));
        WriteFile("0002_dup.sql", "");
        Assert.Throws<InvalidDataException>(() => SchemaMigrator.Discover(_dir));
    }

    [Theory]
    [InlineData("db-name")]
    [InlineData("db; DROP DATABASE x")]
    [InlineData("")]
    public async Task MigrateAsync_refuses_database_names_that_are_not_plain(string db)
    {
        WriteFile("001_a.sql", "SELECT 1;");
        await Assert.ThrowsAnyAsync<ArgumentException>(() => new SchemaMigrator(fixture.Store).MigrateAsync(_dir, db, Ct));
    }

    [Fact]
    public void SplitStatements_splits_at_line_end_semicolons_and_drops_comments_and_blanks()
    {
        var statements = SchemaMigrator.SplitStatements(
            "-- header;\r\nCREATE TABLE a\r\n(x UInt8)  ;  \r\n\r\n;\nSELECT 'x;y' AS v;\nSELECT 2\n  -- trailing\n");
        Assert.Equal(["CREATE TABLE a\n(x UInt8)", "SELECT 'x;y' AS v", "SELECT 2"], statements);
    }
}
