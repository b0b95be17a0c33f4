using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using Analytics.Store.Conformance.Tests;
using Microsoft.Playwright;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The scaled-out deployment as separate processes on 127.0.0.1: two ingest nodes behind HAProxy
/// (deploy/haproxy/haproxy.cfg, unchanged), one Rollup node, one query node, the Kafka log
/// (`analytics kafka-mock`: librdkafka's mock cluster, 3 brokers), the PostgreSQL control plane
/// (a throwaway cluster) and the ClickHouse store (ClickHouse's HTTP interface served by the real
/// engine, chDB, in the test process: ChDbHttpEndpoint). WebSocket clients sending numbered events
/// and the real browser agent in Chromium go through HAProxy while one ingest node is SIGKILLed
/// (then restarted) and the other drained with SIGTERM. Expected values are what the clients were
/// acknowledged: every acknowledged event counted once by the query API, nothing stored twice.
/// </summary>
public sealed class HaProxyTopologyTests(EngineFixture engine, PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Chromium = "/usr/bin/chromium";
    private const string HaProxy = "/usr/sbin/haproxy";
    // Four nodes start one after another on a 2-core machine that other suites share.
    private const int StartSeconds = 180;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static ITestOutputHelper? Output => TestContext.Current.TestOutputHelper;

    [Fact]
    public async Task Agents_through_haproxy_lose_nothing_and_count_once_when_one_ingest_node_is_killed_and_the_other_drained()
    {
        Assert.True(File.Exists(HaProxy), "needs Debian's haproxy (./test.sh installs it: apt-get install haproxy)");
        Assert.True(File.Exists(Chromium), "needs Debian's chromium (./test.sh installs it: apt-get install chromium)");
        string id = Guid.NewGuid().ToString("N")[..12];
        string root = Path.Combine(Path.GetTempPath(), "analytics-topology-" + id);
        string password = Guid.NewGuid().ToString("N");
        var secrets = new Dictionary<string, string> { ["ANALYTICS_CLICKHOUSE_PASSWORD"] = password }; // kept out of ps
        string database = "topology_" + id, topic = "events-" + id;
        int lbPort = Ports.Free(), statsPort = Ports.Free();
        var query = new ServerProcess(Path.Combine(root, "query"), Ports.Free(), demo: true, StartSeconds) { Environment = secrets };
        var rollup = new ServerProcess(Path.Combine(root, "rollup"), Ports.Free(), demo: false, StartSeconds) { Environment = secrets };
        var ingest1 = new ServerProcess(Path.Combine(root, "ingest1"), Ports.Free(), demo: false, StartSeconds) { Environment = secrets };
        var ingest2 = new ServerProcess(Path.Combine(root, "ingest2"), Ports.Free(), demo: false, StartSeconds) { Environment = secrets };
        ChDbHttpEndpoint? store = null;
        ChildProcess? kafka = null, haproxy = null;
        NumberedAgents? agents = null;
        IPlaywright? playwright = null;
        IBrowser? browser = null;
        try
        {
            store = await ChDbHttpEndpoint.StartAsync(engine.Engine, "default", password);
            kafka = ChildProcess.Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "analytics.dll"), "kafka-mock", "--brokers", "3", "--partitions", "6", "--kafka-topic", topic]);
            string bootstrap = await kafka.FirstLineAsync(TimeSpan.FromSeconds(30));
            string controlPlane = "postgres:" + postgres.CreateDatabase("topology");
            string[] shared =
            [
                "--store", "clickhouse", "--clickhouse-url", store.Address.ToString(), "--clickhouse-database", database,
                "--log", "kafka", "--kafka-bootstrap", bootstrap, "--kafka-topic", topic,
                "--control-plane", controlPlane,
                "--trusted-proxies", "127.0.0.1", "--drain-timeout", "10",
            ];
            var clock = Stopwatch.StartNew();
            // The query node first: it migrates the store and creates the demo site and client.
            await query.StartAsync([.. shared, "--roles", "query"]);
            await query.WaitReadyAsync(TimeSpan.FromSeconds(60));
            // The browser page is on HAProxy's origin, which the demo site does not allow by itself
            // (it allows the node's own address): allowed before the ingest nodes load the site.
            var allow = await HostCommand.RunAsync(["sites", "origins", "add", "--site", await query.DemoSitePublicIdAsync(),
                "--origin", $"http://127.0.0.1:{lbPort}", "--control-plane", controlPlane], environment: null);
            Assert.True(allow.ExitCode == 0, allow.ToString());
            await rollup.StartAsync([.. shared, "--roles", "rollup"]);
            await ingest1.StartAsync([.. shared, "--roles", "ingest"]);
            await ingest2.StartAsync([.. shared, "--roles", "ingest"]);
            foreach (var node in new[] { query, rollup, ingest1, ingest2 }) await node.WaitReadyAsync(TimeSpan.FromSeconds(60));

            haproxy = ChildProcess.Start(HaProxy, ["-db", "-f", Path.Combine(AppContext.BaseDirectory, "deploy", "haproxy", "haproxy.cfg")], new Dictionary<string, string>
            {
                ["ANALYTICS_LB_BIND"] = $"127.0.0.1:{lbPort}",
                ["ANALYTICS_LB_STATS"] = $"127.0.0.1:{statsPort}",
                ["ANALYTICS_INGEST_1"] = $"127.0.0.1:{ingest1.Port}",
                ["ANALYTICS_INGEST_2"] = $"127.0.0.1:{ingest2.Port}",
            });
            await WaitForServerStatusAsync(statsPort, "ingest1", "UP");
            await WaitForServerStatusAsync(statsPort, "ingest2", "UP");
            Output?.WriteLine($"topology up in {clock.Elapsed.TotalSeconds:0.0} s");

            agents = new NumberedAgents(new Uri($"ws://127.0.0.1:{lbPort}/v1/ws"), "demo-site-key", clients: 6, eventsPerBatch: 20, pause: TimeSpan.FromMilliseconds(10));
            playwright = await Playwright.CreateAsync();
            browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Timeout = 20_000, Args =
            [
                "--no-sandbox", "--disable-gpu", $"--user-agent={TestHost.BrowserUserAgent}",
                // The test page is fulfilled by Playwright, so it has no network address and Chromium
                // would file it as public and block its WebSocket to 127.0.0.1 (Local Network Access).
                // Deployed pages and the agent's endpoint are both public, where the check never applies.
                "--disable-features=LocalNetworkAccessChecks",
            ] });
            var page = await BrowserPageAsync(browser, lbPort);
            using var stopTicks = new CancellationTokenSource();
            var ticking = TickAsync(page, stopTicks.Token);
            await agents.WaitForAckedAsync(1000, TimeSpan.FromSeconds(30));

            // SIGKILL: sockets on ingest1 break without a close frame; HAProxy sends reconnects to ingest2.
            long before = agents.AckedCount;
            ingest1.Kill();
            var killedAt = Stopwatch.StartNew();
            await WaitForServerStatusAsync(statsPort, "ingest1", "DOWN");
            var markedDown = killedAt.Elapsed;
            await agents.WaitForAckedAsync(before + 1000, TimeSpan.FromSeconds(30));
            Output?.WriteLine($"SIGKILL ingest1: HAProxy marked it DOWN after {markedDown.TotalMilliseconds:0} ms; acknowledged {before} before; reconnects {Outages(agents, 0)}");
            int outagesBeforeDrain = agents.Outages.Count;

            // Back up, and in HAProxy's rotation again, before the other node drains: always a node to go to.
            await ingest1.StartAsync([.. shared, "--roles", "ingest"]);
            await ingest1.WaitReadyAsync(TimeSpan.FromSeconds(30));
            await WaitForServerStatusAsync(statsPort, "ingest1", "UP");
            await agents.WaitForAckedAsync(agents.AckedCount + 1000, TimeSpan.FromSeconds(30));

            // SIGTERM: ingest2 drains; its clients get 1001 and reconnect through HAProxy to ingest1.
            before = agents.AckedCount;
            int closesBefore = agents.CloseCodes.Count;
            var (exitCode, drainTime) = await ingest2.TerminateAsync(TimeSpan.FromSeconds(20));
            await agents.WaitForAckedAsync(agents.AckedCount + 1000, TimeSpan.FromSeconds(30));
            var drainCloses = agents.CloseCodes.Skip(closesBefore).ToList();
            Output?.WriteLine($"SIGTERM ingest2: exit {exitCode} after {drainTime.TotalMilliseconds:0} ms; close codes {string.Join(",", drainCloses)}; acknowledged {before} before; reconnects {Outages(agents, outagesBeforeDrain)}");
            Assert.Equal(0, exitCode);
            Assert.True(drainTime < TimeSpan.FromSeconds(15), $"drain took {drainTime}, over --drain-timeout 10 s + 5 s to close");
            Assert.Contains((int)WebSocketCloseStatus.EndpointUnavailable, drainCloses);

            await agents.StopAsync(TimeSpan.FromSeconds(30));
            await stopTicks.CancelAsync();
            long ticks = await ticking;
            Assert.Empty(agents.Anomalies);
            long acked = agents.AckedCount;
            Assert.Equal(agents.SentEvents, acked);

            string site = await query.DemoSitePublicIdAsync();
            string token = await query.DemoTokenAsync();
            long numbered = await QueryCounts.WaitForEventsAsync(query.Port, site, token, acked, "numbered");
            long browserTicks = await QueryCounts.WaitForEventsAsync(query.Port, site, token, ticks, "browser-tick");
            await Task.Delay(1500, Ct); // a double count would show up now
            numbered = await QueryCounts.EventsAsync(query.Port, site, token, "numbered");
            browserTicks = await QueryCounts.EventsAsync(query.Port, site, token, "browser-tick");
            var raw = await engine.Store.QueryRowsAsync($"SELECT count(), uniqExact(event_id) FROM {database}.events_raw", Ct);
            Output?.WriteLine(
                $"sent {agents.SentEvents} numbered events, acknowledged {acked}, counted {numbered}; browser ticks {ticks}, counted {browserTicks}; " +
                $"stored rows {raw[0][0]}, distinct ids {raw[0][1]}; resent batches {agents.ResentBatches}, RETRY answers {agents.RetryAcks}");
            Assert.Equal(acked, numbered);
            Assert.Equal(ticks, browserTicks);
            Assert.Equal(raw[0][1].ToString(), raw[0][0].ToString());
            Assert.True(agents.ResentBatches > 0, "no batch was resent: the kill and the drain missed the traffic");

            // Readiness follows the store for the roles that use it, and only for them.
            await store.DisposeAsync();
            store = null;
            using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            foreach (var node in new[] { query, rollup })
            {
                string answer = "";
                for (var waited = Stopwatch.StartNew(); !answer.StartsWith("store unreachable", StringComparison.Ordinal) && waited.Elapsed < TimeSpan.FromSeconds(20); await Task.Delay(200, Ct))
                    answer = await (await probe.GetAsync($"http://127.0.0.1:{node.Port}/readyz", Ct)).Content.ReadAsStringAsync(Ct);
                Assert.StartsWith("store unreachable", answer);
            }
            Assert.Equal(System.Net.HttpStatusCode.OK, (await probe.GetAsync($"http://127.0.0.1:{ingest1.Port}/readyz", Ct)).StatusCode);
        }
        finally
        {
            if (agents is not null) await agents.DisposeAsync();
            if (browser is not null) await browser.DisposeAsync();
            playwright?.Dispose();
            haproxy?.Dispose();
            foreach (var node in new[] { ingest1, ingest2, rollup, query }) node.Kill();
            kafka?.Dispose();
            if (store is not null) await store.DisposeAsync();
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>A page on HAProxy's origin with the real agent (loaded through HAProxy from an
    /// ingest node) and a function that records one custom event. The page's HTML comes from the
    /// test; everything the agent does goes over the network through HAProxy.</summary>
    private static async Task<IPage> BrowserPageAsync(IBrowser browser, int lbPort)
    {
        var page = await browser.NewPageAsync(new() { UserAgent = TestHost.BrowserUserAgent });
        page.SetDefaultTimeout(20_000);
        string origin = $"http://127.0.0.1:{lbPort}";
        await page.RouteAsync(origin + "/drain-test.html", route => route.FulfillAsync(new()
        {
            ContentType = "text/html",
            // track-bots: Playwright's browser reports navigator.webdriver, which the agent otherwise ignores.
            Body = """
                <!doctype html><title>drain</title>
                <script src="/agent.js" data-site-key="demo-site-key" data-track-bots data-auto-pageviews="false" data-flush-interval="100"></script>
                <script>window.tick = () => window.analyticsAgent.track("browser-tick");</script>
                """,
        }));
        await page.GotoAsync(origin + "/drain-test.html");
        await page.WaitForFunctionAsync("() => typeof window.analyticsAgent?.track === 'function'");
        return page;
    }

    /// <summary>One browser event every 50 ms until stopped; returns how many were recorded.</summary>
    private static async Task<long> TickAsync(IPage page, CancellationToken stop)
    {
        long ticks = 0;
        while (!stop.IsCancellationRequested)
        {
            await page.EvaluateAsync("tick()");
            ticks++;
            try { await Task.Delay(50, stop); } catch (OperationCanceledException) { }
        }
        return ticks;
    }

    /// <summary>Waits until HAProxy's stats (CSV) give <paramref name="server"/> the status wanted.</summary>
    private static async Task WaitForServerStatusAsync(int statsPort, string server, string status)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        string last = "no answer";
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                var lines = (await http.GetStringAsync($"http://127.0.0.1:{statsPort}/stats;csv", Ct)).Split('\n');
                var header = lines[0].TrimStart('#', ' ').Split(',');
                int name = Array.IndexOf(header, "svname"), state = Array.IndexOf(header, "status");
                var row = lines.Skip(1).Select(l => l.Split(',')).FirstOrDefault(f => f.Length > state && f[0] == "ingest" && f[name] == server);
                last = row?[state] ?? "missing";
                if (last.StartsWith(status, StringComparison.Ordinal)) return;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100, Ct);
        }
        throw new TimeoutException($"HAProxy never reported {server} {status} (last: {last})");
    }

    /// <summary>Reconnects through HAProxy since the <paramref name="skip"/>-th: from the lost
    /// connection to the next OK ack, in ms.</summary>
    private static string Outages(NumberedAgents agents, int skip)
    {
        var ms = agents.Outages.Skip(skip).Select(o => o.TotalMilliseconds).Order().ToList();
        return ms.Count == 0 ? "none" : $"n={ms.Count} min {ms[0]:0} median {ms[ms.Count / 2]:0} max {ms[^1]:0} ms";
    }
}
