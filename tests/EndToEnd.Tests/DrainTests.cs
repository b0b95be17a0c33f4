using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Graceful drain of one `analytics serve` process (all roles, local log, embedded engine): SIGTERM
/// while clients stream. Readiness turns false at once while liveness stays true, new WebSockets
/// and HTTP batches get 503 + Retry-After, streaming clients get close 1001, the process exits 0
/// within the drain timeout, and after a restart every acknowledged event is counted exactly once.
/// </summary>
public sealed class DrainTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Sigterm_while_clients_stream_closes_them_with_1001_refuses_new_work_exits_0_in_time_and_loses_nothing()
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-drain-" + Guid.NewGuid().ToString("N"));
        int port = Ports.Free();
        var server = new ServerProcess(data, port);
        try
        {
            await server.StartAsync("--drain-timeout", ((int)DrainTimeout.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
            await server.WaitReadyAsync(TimeSpan.FromSeconds(30));
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/livez", Ct)).StatusCode);

            await using var agents = new NumberedAgents(new Uri($"ws://127.0.0.1:{port}/v1/ws"), "demo-site-key", clients: 4, eventsPerBatch: 20, pause: TimeSpan.FromMilliseconds(5));
            // A client that never answers a close frame keeps the drain open for the server's
            // close-handshake wait (2 s): the window in which the probes below are taken.
            using var silent = new ClientWebSocket();
            silent.Options.SetRequestHeader("User-Agent", TestHost.BrowserUserAgent);
            await silent.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/v1/ws"), Ct);
            await agents.WaitForAckedAsync(2000, TimeSpan.FromSeconds(30));

            long ackedBefore = agents.AckedCount;
            var terminating = server.TerminateAsync(DrainTimeout + TimeSpan.FromSeconds(10));
            var during = await ProbeDuringDrainAsync(http, port);
            var (exitCode, elapsed) = await terminating;
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"drain: SIGTERM to exit {elapsed.TotalMilliseconds:0} ms, exit code {exitCode}; acknowledged before SIGTERM {ackedBefore}, at exit {agents.AckedCount}; " +
                $"probes during the drain: {string.Join(", ", during)}; close codes {string.Join(",", agents.CloseCodes.Distinct())}");

            Assert.Equal(0, exitCode);
            // The documented bound: the drain timeout for the drain and the services' stop, 5 s more to close.
            Assert.True(elapsed < DrainTimeout + TimeSpan.FromSeconds(5), $"the stop took {elapsed}, over the drain timeout {DrainTimeout} + 5 s");
            Assert.Contains("readyz 503", during);
            Assert.Contains("livez 200", during);
            Assert.Contains("websocket 503 retry-after 1", during);
            Assert.Contains("events 503 retry-after 1", during);
            // Every streaming client was told the server is going away.
            Assert.True(agents.CloseCodes.Count(c => c == (int)WebSocketCloseStatus.EndpointUnavailable) >= 4, $"close codes: {string.Join(",", agents.CloseCodes)}");
            Assert.Contains(server.Output, line => line.Contains("Drained in", StringComparison.Ordinal) || line.Contains("Drain timed out", StringComparison.Ordinal));

            // Back up on the same data: clients reconnect and resend what was not acknowledged.
            await server.StartAsync();
            await agents.StopAsync(TimeSpan.FromSeconds(30));
            Assert.Empty(agents.Anomalies);
            string site = await server.DemoSitePublicIdAsync();
            string token = await server.DemoTokenAsync();
            long acked = agents.AckedCount;
            Assert.Equal(agents.SentEvents, acked);
            long counted = await QueryCounts.WaitForEventsAsync(port, site, token, acked);
            await Task.Delay(1000, Ct); // a double count would show up now
            counted = await QueryCounts.EventsAsync(port, site, token);
            TestContext.Current.TestOutputHelper?.WriteLine($"acknowledged {acked}, counted {counted}, resent batches {agents.ResentBatches}");
            Assert.Equal(acked, counted);
        }
        finally
        {
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Polls the draining server until it stops answering; returns what it saw, each once.</summary>
    private static async Task<List<string>> ProbeDuringDrainAsync(HttpClient http, int port)
    {
        var seen = new List<string>();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < DrainTimeout)
        {
            try
            {
                var ready = await http.GetAsync("/readyz", Ct);
                Add($"readyz {(int)ready.StatusCode}");
                if (ready.StatusCode != HttpStatusCode.ServiceUnavailable)
                {
                    await Task.Delay(10, Ct); // not draining yet
                    continue;
                }
                Add($"livez {(int)(await http.GetAsync("/livez", Ct)).StatusCode}");
                using (var upgrade = new HttpRequestMessage(HttpMethod.Get, "/v1/ws"))
                {
                    // A WebSocket handshake as a browser sends it, over plain HTTP/1.1, to read the refusal's status and headers.
                    upgrade.Headers.Add("Connection", "Upgrade");
                    upgrade.Headers.Add("Upgrade", "websocket");
                    upgrade.Headers.Add("Sec-WebSocket-Version", "13");
                    upgrade.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(Guid.NewGuid().ToByteArray()));
                    var refused = await http.SendAsync(upgrade, Ct);
                    Add($"websocket {(int)refused.StatusCode} retry-after {refused.Headers.RetryAfter?.Delta?.TotalSeconds}");
                }
                var batch = new EventBatch { SiteKey = "demo-site-key", Seq = 1 };
                batch.Events.Add(Wire.Pageview("/late"));
                using var content = new ByteArrayContent(batch.ToByteArray());
                content.Headers.ContentType = new("application/x-protobuf");
                var posted = await http.PostAsync("/v1/events", content, Ct);
                Add($"events {(int)posted.StatusCode} retry-after {posted.Headers.RetryAfter?.Delta?.TotalSeconds}");
            }
            catch (HttpRequestException)
            {
                return seen; // the server stopped listening
            }
            await Task.Delay(20, Ct);
        }
        return seen;

        void Add(string observation)
        {
            if (!seen.Contains(observation)) seen.Add(observation);
        }
    }
}
