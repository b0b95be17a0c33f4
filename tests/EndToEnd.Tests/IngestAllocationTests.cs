using System.Net;
using System.Net.Sockets;
using System.Text;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Analytics.EventLog;
using Analytics.FastIngest;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Enrichment;
using Analytics.FastIngest.Validation;
using Analytics.Host;
using Analytics.Tests.Shared;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

[CollectionDefinition(nameof(IngestAllocationTests), DisableParallelization = true)]
public sealed class IngestAllocationCollection;

/// <summary>
/// What ingest's hot path allocates per batch, through the real parts a WebSocket batch passes:
/// the processor with the connection's rate limit, the per-IP and per-site buckets, the event-log
/// breaker and the real local log, whose group commit completes appends later on its writer
/// thread. Bytes are counted process-wide (continuations run on other threads) over thousands of
/// batches, so the runner's own few allocations do not matter. Before issue #17's fixes a batch
/// cost ~560 B here: an async frame in the processor (~240 B, already before the breakers), one
/// in the breaker (~240 B), and the partitioned rate limiter's closures (80 B); 507 B measured.
/// Alone in its collection: the process-wide count would otherwise include other tests' bytes.
/// </summary>
[Collection(nameof(IngestAllocationTests))]
public sealed class IngestAllocationTests(EngineFixture engine) : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ingest-alloc-" + Guid.NewGuid().ToString("N"));
    private SiteRegistry _sites = null!;
    private LocalLog _log = null!;

    public ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _sites = new SiteRegistry(new SqliteControlPlaneStore(Path.Combine(_dir, "control-plane.db")));
        _sites.CreateSite(_sites.CreateMerchant("Shop"), "shop.example", "shop-key");
        // The default log: fsync per group commit, appends completed later by its writer thread.
        _log = LocalLog.Open(Path.Combine(_dir, "log"), new LocalLogOptions());
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _log.DisposeAsync();
        _sites.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_batch_of_50_behind_the_limits_the_breaker_and_the_local_log_allocates_under_64_bytes()
    {
        // Limits far above this test's rate: their buckets are consulted on every batch, never refuse.
        var limits = new IngestLimits
        {
            MaxEventsPerSecondPerConnection = 1e9, EventBurstPerConnection = 1e9,
            MaxEventsPerSecondPerIp = 1e9, EventBurstPerIp = 1e9, MaxEventsPerSecondPerSite = 1e9, EventBurstPerSite = 1e9,
        };
        var breakers = new CircuitBreakers(new CircuitBreakerSettings(), TimeProvider.System);
        using var traffic = new TrafficLimits(limits);
        var processor = new IngestProcessor(_sites, new BreakerEventLog(_log, breakers.EventLog), limits, new IngestMetrics(), TimeProvider.System, traffic);
        var batch = new EventBatch { SiteKey = "shop-key", Seq = 1 };
        for (int i = 0; i < 50; i++)
        {
            batch.Events.Add(new Event
            {
                Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Name = "pageview", ClientTimeMs = 1_700_000_000_000 + i,
                Url = $"https://shop.example/products/{i}?utm_source=news", Referrer = "https://www.google.com/", ScreenWidth = 1280,
            });
        }
        byte[] message = batch.ToByteArray();
        var ct = TestContext.Current.CancellationToken;

        // Eight connections at once, each with its own client and scratch, as the WebSocket loop holds them.
        const int Connections = 8, Warmup = 200, Batches = 1_500;
        int acked = 0;
        async Task Connection(int batches, ClientInfo client, IngestScratch scratch)
        {
            for (int i = 0; i < batches; i++)
            {
                var result = await processor.ProcessAsync(message, client, scratch, ct);
                // Counted, not asserted here: Assert.Equal allocates a comparer per call.
                if (result.Status == AckStatus.Ok && result.Accepted == 50) Interlocked.Increment(ref acked);
            }
        }
        var clients = Enumerable.Range(0, Connections).Select(n => new ClientInfo(IPAddress.Parse($"203.0.113.{n + 1}"), "Mozilla/5.0 Chrome/131.0", 512)).ToArray();
        var scratches = Enumerable.Range(0, Connections).Select(_ => new IngestScratch { RateLimiter = new EventRateLimiter(1e9, 1e9) }).ToArray();
        try
        {
            await Task.WhenAll(Enumerable.Range(0, Connections).Select(n => Task.Run(() => Connection(Warmup, clients[n], scratches[n]), ct)));
            long before = GC.GetTotalAllocatedBytes(precise: true);
            await Task.WhenAll(Enumerable.Range(0, Connections).Select(n => Task.Run(() => Connection(Batches, clients[n], scratches[n]), ct)));
            double perBatch = (double)(GC.GetTotalAllocatedBytes(precise: true) - before) / (Connections * Batches);
            TestContext.Current.TestOutputHelper?.WriteLine($"{perBatch:0.0} B allocated per batch of 50 ({perBatch / 50:0.00} B per event)");
            Assert.Equal(Connections * (Warmup + Batches), acked);
            Assert.True(perBatch < 64, $"{perBatch:0} B allocated per batch");
        }
        finally
        {
            foreach (var scratch in scratches) scratch.Dispose();
        }
    }

    /// <summary>
    /// A beacon's POST through the real host: Kestrel, routing, the endpoint, the processor and the
    /// local log, over real sockets. Before issue #17's fixes such a request allocated ~11.2 KB on
    /// the server (the API middleware: authentication, OpenIddict's request handler, status-code
    /// pages; a request Activity and logging scope; a DI scope; a scratch and a deadline timer);
    /// 849 B after, measured with the load tool. The client writes prepared bytes on raw sockets
    /// and reads fixed-length answers, so it adds next to nothing to the process-wide count.
    /// </summary>
    [Fact]
    public async Task A_single_event_POST_to_v1_events_through_the_real_host_allocates_under_one_and_a_half_KB()
    {
        var limits = new IngestLimits
        {
            MaxEventsPerSecondPerIp = 1e9, EventBurstPerIp = 1e9, MaxEventsPerSecondPerSite = 1e9, EventBurstPerSite = 1e9,
        };
        await using var host = await TestHost.StartAsync(engine, limits, roles: Roles.Ingest);
        var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 1 };
        batch.Events.Add(new Event
        {
            Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Name = "pageview", ClientTimeMs = 1_700_000_000_000,
            Url = "https://shop.example/products/1?utm_source=news", Referrer = "https://www.google.com/", ScreenWidth = 1280,
        });
        byte[] body = batch.ToByteArray();
        var uri = new Uri(host.BaseAddress);
        byte[] request = [.. Encoding.ASCII.GetBytes(
            $"POST /v1/events HTTP/1.1\r\nHost: {uri.Authority}\r\nContent-Type: application/x-protobuf\r\n" +
            $"User-Agent: {TestHost.BrowserUserAgent}\r\nContent-Length: {body.Length}\r\n\r\n"), .. body];
        var ct = TestContext.Current.CancellationToken;

        const int Connections = 8, Warmup = 200, Requests = 1_500;
        var sockets = new Socket[Connections];
        var answerLengths = new int[Connections];
        int ok = 0;
        try
        {
            for (int n = 0; n < Connections; n++)
            {
                sockets[n] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await sockets[n].ConnectAsync(IPAddress.Loopback, uri.Port, ct);
                answerLengths[n] = await FirstAnswerLengthAsync(sockets[n], request, ct);
            }
            async Task Connection(int n, int requests)
            {
                var socket = sockets[n];
                var answer = new byte[answerLengths[n]];
                for (int i = 0; i < requests; i++)
                {
                    await socket.SendAsync(request, SocketFlags.None, ct);
                    int read = 0;
                    while (read < answer.Length)
                    {
                        int got = await socket.ReceiveAsync(answer.AsMemory(read), SocketFlags.None, ct);
                        if (got == 0) return;
                        read += got;
                    }
                    // Counted, not asserted here: Assert allocates.
                    if (answer.AsSpan().StartsWith("HTTP/1.1 200 "u8)) Interlocked.Increment(ref ok);
                }
            }
            await Task.WhenAll(Enumerable.Range(0, Connections).Select(n => Task.Run(() => Connection(n, Warmup), ct)));
            long before = GC.GetTotalAllocatedBytes(precise: true);
            await Task.WhenAll(Enumerable.Range(0, Connections).Select(n => Task.Run(() => Connection(n, Requests), ct)));
            double perRequest = (double)(GC.GetTotalAllocatedBytes(precise: true) - before) / (Connections * Requests);
            TestContext.Current.TestOutputHelper?.WriteLine($"{perRequest:0} B allocated per single-event request");
            Assert.Equal(Connections * (Warmup + Requests), ok);
            Assert.True(perRequest < 1_536, $"{perRequest:0} B allocated per request");
        }
        finally
        {
            foreach (var socket in sockets) socket?.Dispose();
        }
    }

    /// <summary>Sends one request and reads its whole answer (headers and Content-Length body);
    /// returns its length, which every later answer on the connection shares (same status and headers).</summary>
    private static async Task<int> FirstAnswerLengthAsync(Socket socket, byte[] request, CancellationToken ct)
    {
        await socket.SendAsync(request, SocketFlags.None, ct);
        var buffer = new byte[4096];
        int read = 0;
        while (true)
        {
            int got = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, ct);
            Assert.True(got > 0, "the server closed the connection");
            read += got;
            string text = Encoding.ASCII.GetString(buffer, 0, read);
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0) continue;
            Assert.StartsWith("HTTP/1.1 200 ", text, StringComparison.Ordinal);
            var length = System.Text.RegularExpressions.Regex.Match(text, "(?im)^content-length: *([0-9]+)");
            Assert.True(length.Success, text);
            int total = end + 4 + int.Parse(length.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (read >= total)
            {
                Assert.Equal(total, read);
                return total;
            }
        }
    }
}
