using System.Diagnostics;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Analytics.FastIngest.Validation;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Abuse over real sockets: many idle WebSocket connections plus a flood from one address for one
/// site, while a well-behaved client (another address through the trusted proxy's
/// X-Forwarded-For, another site) measures its ack latency and an API call's. The client must
/// keep being served (every batch OK, every API call 200) and the flood must be limited (RETRY).
/// The API is called after every batch, 200 calls per measured phase, so its p99 (the 198th) is a
/// percentile rather than the slowest call; one stray slow call moves the maximum, not the p99.
/// Sized for CI (ANALYTICS_ABUSE_IDLE, default 2,000 idle connections); the full size is
/// `ANALYTICS_ABUSE_IDLE=5000 dotnet test tests/EndToEnd.Tests --filter AbuseTests` (perf/README.md).
/// Client and server share this process, so the memory figure covers both ends of each socket.
/// </summary>
public sealed class AbuseTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static int IdleConnections => int.TryParse(Environment.GetEnvironmentVariable("ANALYTICS_ABUSE_IDLE"), out int n) ? n : 2_000;

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    /// <summary>p50, p95 and p99 of both phases and their ratios, on one line.</summary>
    private static string Ratios(string name, List<double> quiet, List<double> abused) =>
        $"{name} quiet → abuse: " + string.Join("; ", new[] { 0.5, 0.95, 0.99 }.Select(p =>
            $"p{p * 100:0} {Percentile(quiet, p):0.0} → {Percentile(abused, p):0.0} ms ({Percentile(abused, p) / Percentile(quiet, p):0.00}x)"));

    private static string Join(List<double> values) => string.Join(", ", values.Select(ms => ms.ToString("0", System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>The machine's 1, 5 and 15 minute load averages, printed beside every timing (the CI machine is shared).</summary>
    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    /// <summary>A phase's latencies, and the process's CPU time and wall time over it (CPU time is
    /// what a loaded, shared machine distorts least: it shows what the flood costs).</summary>
    private sealed record Sample(List<double> AckMs, List<double> ApiMs)
    {
        public TimeSpan Cpu { get; set; }
        public TimeSpan Wall { get; set; }
        public string CpuLine => $"{Cpu.TotalMilliseconds:0} ms CPU in {Wall.TotalSeconds:0.0} s ({Cpu / Wall:0.00} cores)";
    }

    /// <summary>The well-behaved client: <paramref name="batches"/> batches of 10 events, one at a time, each followed by an API call.</summary>
    private static async Task<Sample> MeasureAsync(TestHost host, ClientWebSocket socket, ulong seqBase, int batches = 200)
    {
        var sample = new Sample([], []);
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        for (int i = 0; i < batches; i++)
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = seqBase + (ulong)i };
            for (int e = 0; e < 10; e++) batch.Events.Add(Wire.Pageview("/w" + e));
            var watch = Stopwatch.StartNew();
            var ack = await Wire.SendAsync(socket, batch);
            sample.AckMs.Add(watch.Elapsed.TotalMilliseconds);
            Assert.Equal(AckStatus.Ok, ack.Status);
            watch.Restart();
            using var response = await host.Http.GetAsync($"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews&from={DateTime.UtcNow.AddDays(-1):yyyy-MM-dd}&to={DateTime.UtcNow.AddDays(1):yyyy-MM-dd}", Ct);
            sample.ApiMs.Add(watch.Elapsed.TotalMilliseconds);
            Assert.True(response.IsSuccessStatusCode, $"API answered {(int)response.StatusCode} under abuse");
            await Task.Delay(10, Ct);
        }
        sample.Cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        sample.Wall = wall.Elapsed;
        return sample;
    }

    [Fact]
    public async Task A_well_behaved_client_keeps_being_served_while_idle_connections_and_a_flood_hit_the_server()
    {
        var limits = new IngestLimits { MaxEventsPerSecondPerIp = 2_000, EventBurstPerIp = 2_000, MaxEventsPerSecondPerSite = 5_000, EventBurstPerSite = 5_000 };
        await using var host = await TestHost.StartAsync(engine, limits: limits, trustedProxies: ["127.0.0.1"]);
        var registry = host.App.Services.GetRequiredService<SiteRegistry>();
        var flooded = registry.CreateSite(registry.CreateMerchant("Flooded " + Guid.NewGuid().ToString("N")), "flood.example", "key-flood-" + Guid.NewGuid().ToString("N"));
        var output = TestContext.Current.TestOutputHelper;

        using var client = await host.ConnectAsync(headers: ("X-Forwarded-For", "198.51.100.7"));
        await MeasureAsync(host, client, 1_000_000, batches: 60); // warm-up: JIT, pools, first API answers
        var quiet = await MeasureAsync(host, client, 2_000_000);

        var idle = new List<ClientWebSocket>();
        var flooders = new List<ClientWebSocket>();
        using var stopFlood = new CancellationTokenSource();
        try
        {
            GC.Collect();
            long rssBefore = Process.GetCurrentProcess().WorkingSet64;
            var opening = Stopwatch.StartNew();
            // Idle sockets from 250 addresses (each under the per-IP connection limit).
            for (int start = 0; start < IdleConnections; start += 50)
            {
                var chunk = await Task.WhenAll(Enumerable.Range(start, Math.Min(50, IdleConnections - start))
                    .Select(i => host.ConnectAsync(headers: ("X-Forwarded-For", $"10.1.{i % 250}.{1 + i / 250 % 250}"))));
                idle.AddRange(chunk);
            }
            GC.Collect();
            long rssAfter = Process.GetCurrentProcess().WorkingSet64;
            output?.WriteLine($"{idle.Count} idle connections opened in {opening.Elapsed.TotalSeconds:0.0} s; RSS +{(rssAfter - rssBefore) / 1048576.0:0.0} MiB, {(double)(rssAfter - rssBefore) / idle.Count / 1024:0.0} KiB per connection (both ends)");

            long floodOk = 0, floodRetry = 0;
            for (int f = 0; f < 4; f++) flooders.Add(await host.ConnectAsync(headers: ("X-Forwarded-For", "203.0.113.66")));
            var flooding = Stopwatch.StartNew();
            var flood = Task.WhenAll(flooders.Select(async (socket, f) =>
            {
                ulong seq = 0;
                while (!stopFlood.IsCancellationRequested)
                {
                    var batch = new EventBatch { SiteKey = flooded.SiteKey, Seq = ++seq };
                    for (int e = 0; e < 100; e++) batch.Events.Add(Wire.Pageview("/f"));
                    var ack = await Wire.SendAsync(socket, batch);
                    if (ack.Status == AckStatus.Ok) Interlocked.Increment(ref floodOk);
                    else if (ack.Status == AckStatus.Retry) Interlocked.Increment(ref floodRetry); // ignores the wait: hostile
                }
            }));
            await Task.Delay(500, Ct);
            var abused = await MeasureAsync(host, client, 3_000_000);
            await stopFlood.CancelAsync();
            await flood;
            flooding.Stop();

            double abusedP99 = Percentile(abused.AckMs, 0.99);
            output?.WriteLine($"load average {LoadAverage()}; process (server and every client): quiet {quiet.CpuLine}, under abuse {abused.CpuLine}");
            output?.WriteLine(Ratios("ack", quiet.AckMs, abused.AckMs));
            output?.WriteLine(Ratios("API", quiet.ApiMs, abused.ApiMs));
            // In order, so where the slow calls fall (start, spread, end) says why.
            output?.WriteLine($"API calls quiet: {Join(quiet.ApiMs)} ms");
            output?.WriteLine($"API calls under abuse: {Join(abused.ApiMs)} ms");
            output?.WriteLine($"flood: {floodOk} batches accepted, {floodRetry} answered RETRY in {flooding.Elapsed.TotalSeconds:0.0} s ({(floodOk + floodRetry) / flooding.Elapsed.TotalSeconds:0} answers/s over 4 sockets)");
            Assert.True(floodRetry > 0, "the flood was never limited");
            // The target is 2x; the shared CI machine cannot promise it, so the test holds a
            // loose bound and reports the ratio (docs/security.md records measured runs).
            Assert.True(abusedP99 < 2_000, $"ack p99 under abuse {abusedP99} ms");
            Assert.True(Percentile(abused.ApiMs, 0.99) < 5_000, $"API p99 under abuse {Percentile(abused.ApiMs, 0.99)} ms");
        }
        finally
        {
            await stopFlood.CancelAsync();
            foreach (var socket in idle.Concat(flooders)) socket.Dispose();
        }
    }
}
