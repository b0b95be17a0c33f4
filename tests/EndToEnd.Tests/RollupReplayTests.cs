using System.Net.Http.Json;
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
        using (var socket = await first.ConnectAsync())
        {
            // One message is one log append, read by Rollup as one round: offsets 0-100.
            await SendAsync(first, socket, 100);
            await first.WaitForAggregateAsync(t => t["pageviews"] == 100);
        }
        await first.DisposeAsync();
        // 50 more records reach the log while Rollup is down.
        var ingestOnly = await TestHost.StartAsync(engine, restartOf: first, roles: Analytics.Host.Roles.Ingest);
        using (var socket = await ingestOnly.ConnectAsync()) await SendAsync(ingestOnly, socket, 50);
        ingestOnly.KeepData = true;
        await ingestOnly.DisposeAsync();

        // What a crash between the store inserts of round 0-100 and its offset commit leaves:
        // the consumer offset at 0, that round's mark the latest, and its event_ids rows (the
        // last insert of a round) missing, so only the insert deduplication tokens can stop raw,
        // enriched and rollup rows from being written twice. Rounds of at most 40 records now:
        // without the mark, 0-40, 40-80, … would be stored under new tokens.
        await File.WriteAllTextAsync(Path.Combine(first.DataDirectory, "log", "consumers", "rollup.offset"), "0", Ct);
        await KafkaTests.CrashStateAsync(engine, first.Database, "local");

        await using var second = await TestHost.StartAsync(engine, restartOf: first, rollupBatchRecords: 40);
        await second.WaitForAggregateAsync(t => t["pageviews"] >= 150);
        await Task.Delay(1000, Ct); // a double count would show up now
        var totals = await second.AggregateAsync();
        Assert.Equal(150, totals["pageviews"]);
        Assert.Equal(1, totals["visitors"]);
        Assert.Equal(1, totals["visits"]);
        await KafkaTests.AssertStoredOnceAsync(second, 150);
        var ids = await engine.Store.QueryRowsAsync($"SELECT count() FROM {first.Database}.event_ids", Ct);
        Assert.Equal(150, ids[0][0].GetInt64());
    }

    [Fact]
    public async Task A_mark_ahead_of_the_committed_offset_is_replayed_after_the_rounds_before_it()
    {
        // Round 0-100 stored but its commit lost (a Kafka commit refused during a rebalance is
        // the real case), then round 100-150 half stored: the offset says 0, the mark 100-150.
        var first = await TestHost.StartAsync(engine);
        first.KeepData = true;
        using (var socket = await first.ConnectAsync())
        {
            await SendAsync(first, socket, 100);
            await first.WaitForAggregateAsync(t => t["pageviews"] == 100);
            await SendAsync(first, socket, 50);
            await first.WaitForAggregateAsync(t => t["pageviews"] == 150);
        }
        await first.DisposeAsync();
        await File.WriteAllTextAsync(Path.Combine(first.DataDirectory, "log", "consumers", "rollup.offset"), "0", Ct);
        await engine.Store.ExecuteAsync(
            $"ALTER TABLE {first.Database}.event_ids DELETE WHERE event_id IN (SELECT event_id FROM {first.Database}.events_raw WHERE log_offset >= 100) SETTINGS mutations_sync = 2", Ct);

        // Rounds of 40 now: 0-40, 40-80, 80-100 find their ids stored; 100-150 is replayed whole.
        await using var second = await TestHost.StartAsync(engine, restartOf: first, rollupBatchRecords: 40);
        await second.WaitForAggregateAsync(t => t["pageviews"] >= 150);
        await Task.Delay(1500, Ct); // a double count would show up now
        Assert.Equal(150, (await second.AggregateAsync())["pageviews"]);
        await KafkaTests.AssertStoredOnceAsync(second, 150);
    }

    [Fact]
    public async Task A_mark_of_a_committed_round_is_ignored()
    {
        var first = await TestHost.StartAsync(engine);
        first.KeepData = true;
        using (var socket = await first.ConnectAsync()) await SendAsync(first, socket, 10);
        await first.WaitForAggregateAsync(t => t["pageviews"] == 10);
        await first.DisposeAsync();

        // The latest mark is 0-10 and the offset is committed at 10: new records are a new round.
        await using var second = await TestHost.StartAsync(engine, restartOf: first);
        using (var socket = await second.ConnectAsync()) await SendAsync(second, socket, 5);
        await second.WaitForAggregateAsync(t => t["pageviews"] >= 15);
        await Task.Delay(500, Ct);
        Assert.Equal(15, (await second.AggregateAsync())["pageviews"]);
    }

    /// <summary>Rollup restarted behind the log (here: events received on 15 January 2026 by the
    /// host's clock, far behind the wall clock, as under a long backlog): the visit open where it
    /// resumes goes on, as the definition says (a visit ends after 30 minutes without events).
    /// Open visits were restored from the last 30 minutes of the wall clock, so a Rollup resuming
    /// more than 30 minutes behind split every open visit in two.</summary>
    [Fact]
    public async Task A_visit_open_where_Rollup_resumes_behind_the_log_goes_on_after_the_restart()
    {
        var at = new DateTimeOffset(2026, 1, 15, 9, 0, 0, TimeSpan.Zero);
        var clock = new ManualClock(at);
        var first = await TestHost.StartAsync(engine, clock: clock);
        first.KeepData = true;
        using (var socket = await first.ConnectAsync()) await SendAsync(first, socket, 3);
        await WaitForDayAsync(first, t => t["pageviews"] == 3);
        await first.DisposeAsync();
        // Ten minutes later the same visitor goes on while Rollup is down.
        clock.Now = at.AddMinutes(10);
        var ingestOnly = await TestHost.StartAsync(engine, restartOf: first, roles: Analytics.Host.Roles.Ingest, clock: clock);
        using (var socket = await ingestOnly.ConnectAsync()) await SendAsync(ingestOnly, socket, 2);
        ingestOnly.KeepData = true;
        await ingestOnly.DisposeAsync();

        await using var second = await TestHost.StartAsync(engine, restartOf: first, clock: clock);
        var totals = await WaitForDayAsync(second, t => t["pageviews"] == 5);
        // One visitor with events at 09:00 and 09:10: one visit.
        Assert.Equal(1, totals["visitors"]);
        Assert.Equal(1, totals["visits"]);
    }

    private static async Task<Dictionary<string, long>> WaitForDayAsync(TestHost host, Func<Dictionary<string, long>, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var json = await host.Http.GetFromJsonAsync<System.Text.Json.JsonElement>(
                $"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews,visitors,visits&from=2026-01-15&to=2026-01-15", Ct);
            var totals = json.GetProperty("results").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
            if (done(totals)) return totals;
            Assert.True(DateTime.UtcNow < deadline, $"not stored within 30 s: {string.Join(", ", totals)}");
            await Task.Delay(100, Ct);
        }
    }

    private static async Task SendAsync(TestHost host, System.Net.WebSockets.ClientWebSocket socket, int events)
    {
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        for (int i = 0; i < events; i++) batch.Events.Add(Wire.Pageview("/" + i));
        Assert.Equal((uint)events, (await Wire.SendAsync(socket, batch)).Accepted);
    }
}
