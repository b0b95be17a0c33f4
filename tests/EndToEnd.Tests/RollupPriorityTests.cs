using System.Diagnostics;
using Analytics.Contracts.V1;
using Analytics.Store;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The host runs Rollup's statements in the background (StatementPriority.Background) and the
/// query API's at the normal priority, so a dashboard beside a catch-up gets the cores first.
/// Checked in the engine's own process list while a real host stores events and answers queries:
/// every statement of the host's database that the engine is running carries the nice value its
/// role should have (10 for Rollup, -1 for queries: ChDbEngine.SessionNiceValue).
/// </summary>
public class RollupPriorityTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Rollup_statements_run_in_the_background_and_query_statements_at_the_normal_priority()
    {
        await using var host = await TestHost.StartAsync(engine);
        string db = host.Database;
        var seen = new List<(string Nice, string Statement)>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        // The poll runs at the normal priority (the fixture's store) and leaves itself out.
        var poll = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var rows = await engine.Store.QueryRowsAsync(
                    $"SELECT Settings['os_threads_nice_value_query'], query FROM system.processes " +
                    $"WHERE position(query, '{db}.') > 0 AND position(query, 'system.processes') = 0", CancellationToken.None);
                lock (seen) seen.AddRange(rows.Select(r => (r[0].GetString()!, r[1].GetString()!)));
            }
        }, CancellationToken.None);

        using var socket = await host.ConnectAsync();
        long sent = 0;
        var clock = Stopwatch.StartNew();
        bool Enough()
        {
            lock (seen)
                return seen.Count(s => IsRollup(s.Statement)) >= 5 && seen.Count(s => IsQuery(s.Statement)) >= 5;
        }
        while (!Enough() && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            for (int i = 0; i < 200; i++) batch.Events.Add(Wire.Pageview("/p" + (sent + i) % 50));
            Assert.Equal(200u, (await Wire.SendAsync(socket, batch)).Accepted);
            sent += 200;
            await host.AggregateAsync(); // the query API's statements, beside Rollup's rounds
        }
        await stop.CancelAsync();
        await poll;

        List<(string Nice, string Statement)> all;
        lock (seen) all = [.. seen];
        var rollup = all.Where(s => IsRollup(s.Statement)).ToList();
        var queries = all.Where(s => IsQuery(s.Statement)).ToList();
        Assert.True(rollup.Count >= 5 && queries.Count >= 5, $"saw {rollup.Count} Rollup and {queries.Count} query statements running after {sent} events");
        // Without CAP_SYS_NICE the engine ignores the setting, but the host still asks for it.
        Assert.All(rollup, s => Assert.True(s.Nice == "10", $"Rollup statement at nice '{s.Nice}': {s.Statement[..Math.Min(200, s.Statement.Length)]}"));
        Assert.All(queries, s => Assert.True(s.Nice == "-1", $"query statement at nice '{s.Nice}': {s.Statement[..Math.Min(200, s.Statement.Length)]}"));
    }

    [Fact]
    public async Task Without_CAP_SYS_NICE_the_server_warns_once_at_start_and_with_it_says_nothing()
    {
        // setpriv (util-linux) drops the capability from the bounding set, so the server's
        // effective set lacks it even as root.
        var without = await StartupLinesAsync(["setpriv", "--bounding-set", "-sys_nice"]);
        var with = await StartupLinesAsync([]);

        var warning = Assert.Single(without, line => line.Contains("CAP_SYS_NICE", StringComparison.Ordinal));
        Assert.Contains("lacks CAP_SYS_NICE: Rollup's statements run at the queries' CPU priority", warning, StringComparison.Ordinal);
        if (ChDbEngine.CanPrioritize) Assert.DoesNotContain(with, line => line.Contains("CAP_SYS_NICE", StringComparison.Ordinal));
    }

    // Everything a server (all roles) printed by the time it answered /healthz.
    private static async Task<List<string>> StartupLinesAsync(IReadOnlyList<string> launcher)
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-nice-" + Guid.NewGuid().ToString("N"));
        var server = new ServerProcess(data, Ports.Free(), demo: false) { Launcher = launcher };
        try
        {
            await server.StartAsync();
            // A warning, if any, arrives within a moment (the console logger writes from a queue).
            await server.LogLineAsync("CAP_SYS_NICE", TimeSpan.FromSeconds(2));
            return [.. server.Output, .. server.Errors];
        }
        finally
        {
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    // Rollup writes (INSERT, ALTER, DELETE) and reads its own bookkeeping: duplicate lookups in
    // event_ids, marks in rollup_inflight, a day's active generation. The query API only reads,
    // always one merchant's rows.
    private static bool IsRollup(string statement)
    {
        var text = statement.TrimStart();
        return !text.StartsWith("SELECT", StringComparison.OrdinalIgnoreCase) && !text.StartsWith("WITH", StringComparison.OrdinalIgnoreCase)
            || statement.Contains(".event_ids", StringComparison.Ordinal)
            || statement.Contains(".rollup_inflight", StringComparison.Ordinal)
            || statement.Contains("WHERE (merchant_id, site_id, day) IN", StringComparison.Ordinal);
    }

    private static bool IsQuery(string statement) => !IsRollup(statement) && statement.Contains("merchant_id", StringComparison.Ordinal);
}
