using System.Diagnostics;
using System.Globalization;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// `serve --rollup-interval-ms`: under a trickle (no backlog) Rollup starts a round at most once
/// per interval, and every acknowledged event is still stored. With the default 500 ms the same
/// trickle made 17 rounds against 5, which is what this test would see if the option did not
/// reach Rollup.
/// </summary>
public sealed class RollupIntervalTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Rounds_under_a_trickle_start_at_most_once_per_rollup_interval_and_store_every_event()
    {
        const int intervalMs = 2000;
        string data = Path.Combine(Path.GetTempPath(), "analytics-interval-" + Guid.NewGuid().ToString("N"));
        int port = Ports.Free();
        var server = new ServerProcess(data, port);
        try
        {
            await server.StartAsync("--rollup-interval-ms", intervalMs.ToString(CultureInfo.InvariantCulture));
            await server.WaitReadyAsync(TimeSpan.FromSeconds(30));
            string token = await server.DemoTokenAsync();
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            http.DefaultRequestHeaders.Authorization = new("Bearer", token);

            // One event every 100 ms: always something new, never a round's worth waiting.
            await using var agents = new NumberedAgents(new Uri($"ws://127.0.0.1:{port}/v1/ws"), "demo-site-key", clients: 1, eventsPerBatch: 1, pause: TimeSpan.FromMilliseconds(100));
            await agents.WaitForAckedAsync(5, TimeSpan.FromSeconds(30));
            // Timed from before the first read, so a slow read widens the allowance, never narrows it.
            var window = Stopwatch.StartNew();
            long roundsBefore = await RoundsAsync(http);
            await Task.Delay(TimeSpan.FromSeconds(8), Ct);
            long rounds = await RoundsAsync(http) - roundsBefore;
            double seconds = window.Elapsed.TotalSeconds;
            await agents.StopAsync(TimeSpan.FromSeconds(30));
            TestContext.Current.TestOutputHelper?.WriteLine($"{rounds} rounds in {seconds:0.0} s at --rollup-interval-ms {intervalMs}");
            // Rounds are counted when stored, which a round's own time shifts: allow the window's two
            // ends one round each (with the default 500 ms this trickle made 17).
            Assert.True(rounds <= seconds * 1000 / intervalMs + 2, $"{rounds} rounds in {seconds:0.0} s, more than one per {intervalMs} ms");
            Assert.True(rounds >= 2, $"{rounds} rounds in {seconds:0.0} s: Rollup did not keep storing the trickle");

            Assert.Empty(agents.Anomalies);
            long acked = agents.AckedCount;
            string site = await server.DemoSitePublicIdAsync();
            Assert.Equal(acked, await QueryCounts.WaitForEventsAsync(port, site, token, acked));
        }
        finally
        {
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<long> RoundsAsync(HttpClient http) =>
        TestHost.MetricValue(await http.GetStringAsync("/metrics", Ct), "analytics_rollup_rounds_total");
}
