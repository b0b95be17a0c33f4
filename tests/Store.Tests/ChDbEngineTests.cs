using System.Collections.Concurrent;
using System.Text;
using Analytics.Store.Native;

namespace Analytics.Store.Tests;

public class ChDbEngineTests(ChDbFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void Query_returns_TabSeparated_text_by_default()
    {
        Assert.Equal("1\tx\n2\tx\n", fixture.Engine.Query("SELECT number + 1, 'x' FROM numbers(2)"));
    }

    [Fact]
    public void Query_honours_the_requested_format_and_QueryBytes_returns_the_raw_output()
    {
        Assert.Equal("\"a\",1\n", fixture.Engine.Query("SELECT 'a', 1", "CSV"));
        // RowBinary of a single UInt32 column: 4 little-endian bytes per row.
        Assert.Equal(new byte[] { 7, 0, 0, 0 }, fixture.Engine.QueryBytes("SELECT toUInt32(7)", "RowBinary"));
    }

    [Fact]
    public void Query_carries_non_ascii_text_both_ways()
    {
        Assert.Equal("héllo 🌍 日本\n", fixture.Engine.Query("SELECT 'héllo 🌍 日本'"));
    }

    [Fact]
    public void Long_statements_are_passed_whole()
    {
        // Larger than the stackalloc scratch, so the pooled path is taken; multi-byte text too.
        var text = string.Concat(Enumerable.Repeat("abc日本🌍", 10_000));
        Assert.Equal($"{text.EnumerateRunes().Count()}\t{Encoding.UTF8.GetByteCount(text)}\n",
            fixture.Engine.Query($"SELECT lengthUTF8('{text}'), length('{text}')"));
    }

    [Fact]
    public void Query_reader_sees_the_output_and_its_row_count_without_copy()
    {
        var (text, rows) = fixture.Engine.Query("SELECT number FROM numbers(1000) WHERE number % 400 = 0", "TabSeparated",
            static o => (Encoding.UTF8.GetString(o.Data), o.ResultRows));
        Assert.Equal("0\n400\n800\n", text);
        Assert.Equal(3UL, rows);
    }

    [Fact]
    public void Huge_engine_error_messages_are_truncated()
    {
        var literal = new string('x', 100_000);
        var e = Assert.Throws<ChDbException>(() => fixture.Engine.Query($"SELECT no_such_function('{literal}')"));
        Assert.Equal(46, e.ErrorCode); // UNKNOWN_FUNCTION
        Assert.True(e.Message.Length < 5_000, $"message is {e.Message.Length} chars");
        Assert.EndsWith("(engine message truncated)", e.Message);
    }

    [Fact]
    public async Task Execute_runs_DDL_and_inserts()
    {
        var db = await fixture.NewDatabaseAsync("eng");
        fixture.Engine.Execute($"CREATE TABLE {db}.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a");
        fixture.Engine.Execute($"INSERT INTO {db}.t VALUES (1, 'one'), (2, 'two')");
        Assert.Equal("1\tone\n2\ttwo\n", fixture.Engine.Query($"SELECT a, s FROM {db}.t ORDER BY a"));
    }

    [Fact]
    public void Errors_become_ChDbException_with_the_engine_message_and_code()
    {
        var e = Assert.Throws<ChDbException>(() => fixture.Engine.Query("SELECT * FROM no_such_db_x.no_such_table"));
        Assert.Equal(81, e.ErrorCode); // UNKNOWN_DATABASE
        Assert.Contains("no_such_db_x", e.Message);
        Assert.StartsWith("Code: 81.", e.Message);
        Assert.Equal("SELECT * FROM no_such_db_x.no_such_table", e.Statement);

        var syntax = Assert.Throws<ChDbException>(() => fixture.Engine.Execute("SELEC 1"));
        Assert.Equal(62, syntax.ErrorCode); // SYNTAX_ERROR

        var thrown = Assert.Throws<ChDbException>(() => fixture.Engine.Query("SELECT throwIf(number = 3, 'boom') FROM numbers(5)"));
        Assert.Contains("boom", thrown.Message);

        // The engine is fine afterwards.
        Assert.Equal("1\n", fixture.Engine.Query("SELECT 1"));
    }

    [Fact]
    public async Task Async_errors_become_ChDbException()
    {
        await Assert.ThrowsAsync<ChDbException>(() => fixture.Engine.ExecuteAsync("SELECT * FROM no_such_db_y.t", Ct));
    }

    [Fact]
    public void ChDbException_parses_the_code_prefix_only_when_present()
    {
        Assert.Equal(60, new ChDbException("Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE)").ErrorCode);
        Assert.Null(new ChDbException("something else").ErrorCode);
        Assert.Null(new ChDbException("Code: abc. x").ErrorCode);
    }

    [Fact]
    public void Open_on_the_same_path_returns_the_shared_engine_and_one_Dispose_does_not_close_it()
    {
        var again = ChDbEngine.Open(fixture.DataPath + Path.DirectorySeparatorChar);
        Assert.Same(fixture.Engine, again);
        again.Dispose(); // releases only this Open's reference
        Assert.Equal("1\n", fixture.Engine.Query("SELECT 1"));
    }

    [Fact]
    public void Open_on_another_path_while_open_throws_a_clear_error()
    {
        var other = Path.Combine(Path.GetTempPath(), "analytics-other-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<InvalidOperationException>(() => ChDbEngine.Open(other));
        Assert.Contains(fixture.DataPath, e.Message);
        Assert.Contains(other, e.Message);
        Assert.Contains("one engine per process", e.Message);
        Assert.False(Directory.Exists(other));
    }

    [Fact]
    public async Task Concurrent_callers_from_many_threads_each_get_their_own_result()
    {
        var db = await fixture.NewDatabaseAsync("conc");
        fixture.Engine.Execute($"CREATE TABLE {db}.t (a UInt64) ENGINE = MergeTree ORDER BY a");
        var failures = new ConcurrentBag<string>();

        var syncWork = Task.Run(() => Parallel.For(0, 100, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            if (i % 5 == 0)
            {
                fixture.Engine.Execute($"INSERT INTO {db}.t VALUES ({i})");
                return;
            }
            var text = fixture.Engine.Query($"SELECT {i} + number FROM numbers(3)");
            if (text != $"{i}\n{i + 1}\n{i + 2}\n")
                failures.Add($"sync {i}: {text}");
        }), Ct);
        var asyncWork = Enumerable.Range(1000, 100).Select(async i =>
        {
            var rows = await fixture.Store.QueryRowsAsync($"SELECT {i} * 2", Ct);
            if (rows[0][0].GetInt32() != i * 2)
                failures.Add($"async {i}: {rows[0][0]}");
        });
        await Task.WhenAll(asyncWork.Append(syncWork));

        Assert.Empty(failures);
        Assert.Equal("20\n", fixture.Engine.Query($"SELECT count() FROM {db}.t"));
    }

    [Fact]
    public async Task Statements_on_separate_sessions_run_at_the_same_time()
    {
        // One one-second sleep per session: one after another they take 8 s, side by side about
        // 1 s. On the thread pool of a 2-core machine they took 3-4 s (the pool starts with two
        // threads and adds more slowly), so each session runs them on a thread of its own. The
        // bound leaves room for a loaded machine while ruling out running them in turn.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, ChDbEngine.MaxSessions).Select(_ => fixture.Engine.QueryAsync("SELECT sleep(1)", cancellationToken: Ct)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5), $"{ChDbEngine.MaxSessions} sleep(1) took {clock.Elapsed.TotalSeconds:F2} s");
        // Every session was opened with the engine (none in the middle of a busy process).
        Assert.Equal(ChDbEngine.MaxSessions, fixture.Engine.SessionsOpen);
    }

    [Fact]
    public async Task Readers_beside_deduplicated_writers_on_other_sessions_see_whole_blocks_and_every_block_once()
    {
        var db = await fixture.NewDatabaseAsync("sessions");
        fixture.Engine.Execute($"CREATE TABLE {db}.t (k UInt64, s String) ENGINE = MergeTree ORDER BY k SETTINGS non_replicated_deduplication_window = 1000");
        const int Blocks = 40, Rows = 1000;
        async Task Write(int writer)
        {
            for (int i = 0; i < Blocks; i++)
            {
                // Every fifth block twice, as a replayed round sends it: the token must skip the repeat.
                for (int repeat = 0; repeat < (i % 5 == 0 ? 2 : 1); repeat++)
                {
                    await fixture.Engine.ExecuteAsync($"INSERT INTO {db}.t SETTINGS insert_deduplication_token = 'w{writer}-{i}' " +
                        $"SELECT number + {writer * 1_000_000 + i * Rows}, repeat('x', 100) FROM numbers({Rows})", Ct);
                }
            }
        }
        var seen = new ConcurrentBag<string>();
        var writers = Task.WhenAll(Write(1), Write(2));
        while (!writers.IsCompleted)
            seen.Add(await fixture.Engine.QueryAsync($"SELECT count(), uniqExact(k) FROM {db}.t", cancellationToken: Ct));
        await writers;

        Assert.All(seen, counts =>
        {
            var parts = counts.Trim().Split('\t').Select(long.Parse).ToArray();
            Assert.Equal(parts[0], parts[1]);
            Assert.Equal(0, parts[0] % Rows);
        });
        Assert.Equal($"{2 * Blocks * Rows}\t{2 * Blocks * Rows}\n", fixture.Engine.Query($"SELECT count(), uniqExact(k) FROM {db}.t"));
    }

    [Fact]
    public async Task QueryAsync_with_a_cancelled_token_does_not_run_the_statement()
    {
        var db = await fixture.NewDatabaseAsync("cancel");
        fixture.Engine.Execute($"CREATE TABLE {db}.t (a UInt64) ENGINE = MergeTree ORDER BY a");
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fixture.Engine.ExecuteAsync($"INSERT INTO {db}.t VALUES (1)", cts.Token));
        Assert.Equal("0\n", fixture.Engine.Query($"SELECT count() FROM {db}.t"));
    }

    [Fact]
    public void Locator_names_the_fetch_script_when_the_env_var_points_nowhere()
    {
        var e = Assert.Throws<DllNotFoundException>(() => LibChDbLocator.Locate("/nonexistent/libchdb.so"));
        Assert.Contains("scripts/fetch-chdb.sh", e.Message);
        Assert.Contains("/nonexistent/libchdb.so", e.Message);
        Assert.EndsWith("libchdb.so", LibChDbLocator.Locate());
    }
}
