using Analytics.Contracts.V1;
using Analytics.Store;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Rollup crashed after writing a round's rows but before committing the log offset: the state
/// is rebuilt on disk exactly as such a crash leaves it, and the restarted host must replay the
/// range without counting anything twice.
/// </summary>
public class RollupReplayTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_round_replayed_after_a_crash_before_the_offset_commit_is_counted_once()
    {
        var first = await TestHost.StartAsync(engine);
        first.KeepData = true;
        const int events = 100;
        using (var socket = await first.ConnectAsync())
        {
            // One message is one log append, read by Rollup as one round: offsets 0-100.
            var batch = new EventBatch { SiteKey = first.Site.SiteKey };
            for (int i = 0; i < events; i++) batch.Events.Add(Wire.Pageview("/" + i));
            Assert.Equal((uint)events, (await Wire.SendAsync(socket, batch)).Accepted);
        }
        Assert.Equal(events, (await first.WaitForAggregateAsync(t => t["pageviews"] == events))["pageviews"]);
        await first.DisposeAsync();

        // What a crash between the store inserts and the commit leaves behind: the consumer
        // offset still at 0 and the round marked in flight. Also drop the round's event_ids
        // rows (the last insert of a round), so only the insert deduplication tokens can stop
        // raw, enriched and rollup rows from being written twice.
        await File.WriteAllTextAsync(Path.Combine(first.DataDirectory, "log", "consumers", "rollup.offset"), "0", Ct);
        Directory.CreateDirectory(Path.Combine(first.DataDirectory, "rollup"));
        await File.WriteAllTextAsync(Path.Combine(first.DataDirectory, "rollup", "inflight-rollup.txt"), $"local,0,{events}", Ct);
        var store = engine.Store;
        await store.ExecuteAsync($"TRUNCATE TABLE {first.Database}.event_ids", Ct);

        await using var second = await TestHost.StartAsync(engine, restartOf: first);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && File.Exists(Path.Combine(first.DataDirectory, "rollup", "inflight-rollup.txt")))
        {
            await Task.Delay(100, Ct);
        }
        Assert.False(File.Exists(Path.Combine(first.DataDirectory, "rollup", "inflight-rollup.txt")), "the replay finished");

        var totals = await second.AggregateAsync();
        Assert.Equal(events, totals["pageviews"]);
        Assert.Equal(1, totals["visitors"]);
        Assert.Equal(1, totals["visits"]);
        var raw = await store.QueryRowsAsync($"SELECT count(), uniqExact(event_id) FROM {first.Database}.events_raw", Ct);
        Assert.Equal(events, raw[0][0].GetInt64());
        var enriched = await store.QueryRowsAsync($"SELECT count() FROM {first.Database}.events_enriched", Ct);
        Assert.Equal(events, enriched[0][0].GetInt64());
        var ids = await store.QueryRowsAsync($"SELECT count() FROM {first.Database}.event_ids", Ct);
        Assert.Equal(events, ids[0][0].GetInt64());
    }

    [Fact]
    public async Task A_stale_in_flight_mark_for_a_committed_round_is_dropped_without_waiting_for_new_events()
    {
        var first = await TestHost.StartAsync(engine);
        first.KeepData = true;
        using (var socket = await first.ConnectAsync())
        {
            var batch = new EventBatch { SiteKey = first.Site.SiteKey };
            for (int i = 0; i < 10; i++) batch.Events.Add(Wire.Pageview("/" + i));
            await Wire.SendAsync(socket, batch);
        }
        await first.WaitForAggregateAsync(t => t["pageviews"] == 10);
        await first.DisposeAsync();

        // Crash after the offset commit, before the mark was cleared.
        string mark = Path.Combine(first.DataDirectory, "rollup", "inflight-rollup.txt");
        await File.WriteAllTextAsync(mark, "local,0,10", Ct);

        await using var second = await TestHost.StartAsync(engine, restartOf: first);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline && File.Exists(mark)) await Task.Delay(50, Ct);
        Assert.False(File.Exists(mark));
        Assert.Equal(10, (await second.AggregateAsync())["pageviews"]);
    }
}
