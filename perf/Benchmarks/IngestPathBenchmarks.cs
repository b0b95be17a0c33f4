using Analytics.EventLog;
using Analytics.FastIngest;
using Analytics.FastIngest.Enrichment;
using Analytics.ControlPlane;
using Analytics.FastIngest.Validation;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Analytics.Benchmarks;

/// <summary>
/// One batch of 50 events through the whole ingest step (parse, site lookup, validate, enrich,
/// encode log records, append, build the Ack) against the real local log, with and without
/// fsync. Per-event cost = mean / 50; allocated bytes are per batch.
/// </summary>
[MemoryDiagnoser]
public class IngestPathBenchmarks
{
    private BenchDirectory _dir = null!;
    private SiteRegistry _sites = null!;
    private LocalLog _log = null!;
    private IngestProcessor _processor = null!;
    private readonly IngestScratch _scratch = new();
    private readonly ClientInfo _client = StoredRecords.Client;
    private byte[] _batch = [];

    [Params(FsyncMode.Never, FsyncMode.Always)]
    public FsyncMode Fsync { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _dir = new BenchDirectory("bench-ingest");
        _sites = new SiteRegistry(new SqliteControlPlaneStore(_dir.File("control-plane.db")));
        _sites.CreateSite(_sites.CreateMerchant("Bench"), "shop.example", "demo-site-key");
        _log = LocalLog.Open(_dir.File("log"), new LocalLogOptions { Fsync = Fsync });
        _processor = new IngestProcessor(_sites, _log, IngestLimits.Default, new IngestMetrics(), TimeProvider.System);
        _batch = Batches.Realistic(50).ToByteArray();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _log.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _sites.Dispose();
        _scratch.Dispose();
        _dir.Dispose();
    }

    [Benchmark]
    public async Task<int> ProcessBatchOf50()
    {
        var result = await _processor.ProcessAsync(_batch, _client, _scratch, CancellationToken.None);
        return result.Accepted;
    }
}
