using Analytics.Store;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The engine behaviour Rollup's exactly-once design rests on, checked on the real engine:
/// an insert repeated with the same deduplication token is stored once.
/// </summary>
public class StoreDeduplicationTests(EngineFixture engine)
{
    [Fact]
    public async Task Inserts_repeated_with_the_same_token_are_stored_once()
    {
        var store = new EmbeddedColumnStore(ChDbEngine.Open(engine.ChDbPath));
        string db = "dedup_" + Guid.NewGuid().ToString("N");
        var ct = TestContext.Current.CancellationToken;
        await store.ExecuteAsync($"CREATE DATABASE {db}", ct);
        await store.ExecuteAsync($"CREATE TABLE {db}.t (a UInt64) ENGINE = MergeTree ORDER BY a SETTINGS non_replicated_deduplication_window = 100", ct);
        using var rows = new RowBinaryWriter();
        for (ulong i = 0; i < 1000; i++) rows.WriteUInt64(i);

        long first = await store.InsertRowBinaryAsync($"{db}.t", "a UInt64", rows.WrittenMemory, "token-1", ct);
        long second = await store.InsertRowBinaryAsync($"{db}.t", "a UInt64", rows.WrittenMemory, "token-1", ct);
        await store.ExecuteAsync($"INSERT INTO {db}.t SETTINGS insert_deduplication_token = 'token-2', max_threads = 1 SELECT number FROM numbers(10)", ct);
        await store.ExecuteAsync($"INSERT INTO {db}.t SETTINGS insert_deduplication_token = 'token-2', max_threads = 1 SELECT number FROM numbers(10)", ct);
        var count = await store.QueryRowsAsync($"SELECT count() FROM {db}.t", ct);

        Assert.Equal(1000, first);
        Assert.Equal(1010, count[0][0].GetInt64());
        TestContext.Current.TestOutputHelper?.WriteLine($"second insert reported {second} rows written");
    }
}
