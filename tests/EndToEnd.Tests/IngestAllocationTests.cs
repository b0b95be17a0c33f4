using System.Net;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Analytics.EventLog;
using Analytics.FastIngest;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Enrichment;
using Analytics.FastIngest.Validation;
using Analytics.Host;
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
public sealed class IngestAllocationTests : IAsyncLifetime
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
}
