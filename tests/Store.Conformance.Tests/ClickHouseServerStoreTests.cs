using System.Net;
using System.Net.Sockets;
using Analytics.Rollup;
using Analytics.Store.ClickHouse;

namespace Analytics.Store.Conformance.Tests;

/// <summary>What only the server path has: HTTP, retries, credentials. Faults are injected by the
/// endpoint (a lost answer after the engine stored an insert is the case that matters).</summary>
public sealed class ClickHouseServerStoreTests(BackendsFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<string> NewProductDatabaseAsync(IColumnStore store)
    {
        var db = "s_" + Guid.NewGuid().ToString("N");
        await ProductScenario.MigrateAsync(store, db, Ct);
        return db;
    }

    [Fact]
    public async Task An_insert_whose_answer_was_lost_is_retried_and_stored_once()
    {
        using var store = fixture.NewServerStore();
        var db = await NewProductDatabaseAsync(store);
        using var raw = new ProductScenario(3_000).RawRows();

        fixture.Endpoint.FailNext(2, afterRunning: true, marker: db); // stored, then the answer lost, twice
        var written = await store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, "raw:lost-answer", Ct);

        Assert.Equal(0, fixture.Endpoint.FaultsLeft(db));
        Assert.Equal(3_000, written);
        Assert.Equal(3_000, ProductScenario.Count(await store.QueryRowsAsync($"SELECT count() FROM {db}.events_raw", Ct)));
    }

    [Fact]
    public async Task A_rollup_whose_answer_was_lost_is_retried_and_counted_once()
    {
        using var store = fixture.NewServerStore();
        var db = await NewProductDatabaseAsync(store);
        var scenario = new ProductScenario(2_000);
        using (var enriched = scenario.EnrichedRows())
            await store.InsertRowBinaryAsync($"{db}.events_enriched", DerivedRows.EnrichedColumns, enriched.WrittenMemory, "enriched:0-1", Ct);

        var (table, bucket) = DerivedRows.Rollups[1];
        fixture.Endpoint.FailNext(1, afterRunning: true, marker: $"{db}.{table}");
        await store.ExecuteAsync(DerivedRows.RollUpStatement(db, table, bucket, "log_source = 'test-log'", $"{table}:0-1"), Ct);

        var events = await store.QueryRowsAsync($"SELECT sum(events) FROM {db}.{table}", Ct);
        Assert.Equal(0, fixture.Endpoint.FaultsLeft($"{db}.{table}"));
        Assert.Equal(scenario.Events.Count(e => !ProcessingLogic.IsBot(e.UserAgent, ProductScenario.Version)), events[0][0].GetInt64());
    }

    [Fact]
    public async Task A_statement_refused_before_running_is_retried_until_it_succeeds()
    {
        using var store = fixture.NewServerStore();
        var retries = new RecordingLogger();
        store.Logger = retries;
        var db = await NewProductDatabaseAsync(store);
        using var raw = new ProductScenario(500).RawRows();

        fixture.Endpoint.FailNext(3, afterRunning: false, marker: db);
        var written = await store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, "raw:refused", Ct);

        Assert.Equal(0, fixture.Endpoint.FaultsLeft(db));
        // Each retried failure is logged once, as a warning naming the attempt (event 3201).
        Assert.Equal([1, 2, 3], retries.Entries.Where(e => e.Id == 3201 && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning).Select(e => e.Attempt));
        Assert.Equal(500, written);
        Assert.Equal(500, ProductScenario.Count(await store.QueryRowsAsync($"SELECT count() FROM {db}.events_raw", Ct)));
    }

    [Fact]
    public async Task Retries_are_bounded_and_the_last_error_is_reported()
    {
        using var store = fixture.NewServerStore(o => o with { MaxAttempts = 3 });
        var marker = "m_" + Guid.NewGuid().ToString("N");
        fixture.Endpoint.FailNext(3, afterRunning: false, marker);

        var e = await Assert.ThrowsAsync<ClickHouseStoreException>(() => store.QueryRowsAsync($"SELECT 1 AS {marker}", Ct));

        Assert.Equal(3, e.Attempts);
        Assert.Equal(319, e.ErrorCode);
        Assert.Contains("attempt 3 of 3", e.Message, StringComparison.Ordinal);
        Assert.Single(await store.QueryRowsAsync($"SELECT 1 AS {marker}", Ct)); // the faults are used up
    }

    [Fact]
    public async Task Wrong_credentials_fail_at_once_with_the_servers_message()
    {
        using var store = fixture.NewServerStore(o => o with { Password = "wrong" });

        var e = await Assert.ThrowsAsync<ClickHouseStoreException>(() => store.ExecuteAsync("SELECT 1", Ct));

        Assert.Equal(516, e.ErrorCode);
        Assert.Equal(1, e.Attempts);
        Assert.Contains("AUTHENTICATION_FAILED", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_server_fails_after_the_retry_budget_with_a_clear_error()
    {
        // A port that was just free: nothing listens there.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var store = fixture.NewServerStore(o => o with { Endpoint = new Uri($"http://127.0.0.1:{port}/"), MaxAttempts = 2 });

        var e = await Assert.ThrowsAsync<ClickHouseStoreException>(() => store.ExecuteAsync("SELECT 1", Ct));

        Assert.Null(e.ErrorCode);
        Assert.Equal(2, e.Attempts);
        Assert.Contains("could not be reached", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>Keeps what was logged: the retry log's event id, level and attempt number.</summary>
internal sealed class RecordingLogger : Microsoft.Extensions.Logging.ILogger
{
    public System.Collections.Concurrent.ConcurrentQueue<(int Id, Microsoft.Extensions.Logging.LogLevel Level, int Attempt)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        int attempt = state is IEnumerable<KeyValuePair<string, object?>> fields && fields.FirstOrDefault(f => f.Key == "Attempt").Value is int a ? a : 0;
        Entries.Enqueue((eventId.Id, logLevel, attempt));
    }
}
