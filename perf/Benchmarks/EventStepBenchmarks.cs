using System.Buffers.Binary;
using System.Net;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Enrichment;
using Analytics.FastIngest.Protocol;
using Analytics.ControlPlane;
using Analytics.FastIngest.Validation;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Analytics.Benchmarks;

/// <summary>
/// The per-event steps of ingest over one batch of 50 realistic events, each on top of the
/// zero-copy parse (the baseline): validation (<c>EventValidator.Validate</c> per event) and
/// enrichment (one visitor-id HMAC per batch, then <c>StoredEventWriter.Write</c> per event into
/// a reused buffer, length-prefixed as the log wants them). A step's cost = its mean - the baseline's.
/// </summary>
[MemoryDiagnoser]
public class EventStepBenchmarks
{
    private BenchDirectory _dir = null!;
    private readonly ClientInfo _client = StoredRecords.Client;
    private SiteRegistry _sites = null!;
    private VisitorIdHasher _visitorIds = null!;
    private Site _site = null!;
    private byte[] _batch = [];
    private byte[] _records = [];

    [GlobalSetup]
    public void Setup()
    {
        _dir = new BenchDirectory("bench-steps");
        _sites = new SiteRegistry(new SqliteControlPlaneStore(_dir.File("control-plane.db")));
        _sites.CreateSite(_sites.CreateMerchant("Bench"), "shop.example", "demo-site-key");
        _site = _sites.Resolve("demo-site-key")!;
        _visitorIds = new VisitorIdHasher(_sites);
        _batch = Batches.Realistic(50).ToByteArray();
        _records = new byte[StoredRecords.MaxBytes(_batch)];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _sites.Dispose();
        _dir.Dispose();
    }

    [Benchmark(Baseline = true)]
    public int Parse()
    {
        BatchView.TryParse(_batch, out var batch);
        int n = 0;
        foreach (var raw in batch.GetEvents())
        {
            if (EventView.TryParse(raw, out var e)) n += e.Name.Length;
        }
        return n;
    }

    [Benchmark]
    public int ParseAndValidate()
    {
        BatchView.TryParse(_batch, out var batch);
        int rejected = 0;
        foreach (var raw in batch.GetEvents())
        {
            EventView.TryParse(raw, out var e);
            if (EventValidator.Validate(e, IngestLimits.Default) != RejectionReason.Unspecified) rejected++;
        }
        return rejected;
    }

    [Benchmark]
    public int ParseAndEnrich()
    {
        var now = DateTimeOffset.UtcNow;
        ulong visitor = _visitorIds.Compute(_client, _site.SiteId, now);
        return StoredRecords.Write(_batch, new StoredEventWriter.Enrichment((ulong)_site.MerchantId, (ulong)_site.SiteId, now.ToUnixTimeMilliseconds(), visitor, _client), _records).Count;
    }
}

/// <summary>A batch's events as log records, the way IngestProcessor writes them (validation aside).</summary>
internal static class StoredRecords
{
    // With the client hints a Chromium sends by default, so their copy per event is measured too.
    public static readonly ClientInfo Client = new(IPAddress.Parse("203.0.113.9"), "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36", 512,
        "?0", "\"Linux\"", null, null);

    /// <summary>Room for the records of a batch of up to 64 events (every event's bytes plus the per-record extras).</summary>
    public static int MaxBytes(ReadOnlySpan<byte> batch) => batch.Length + 64 * (4 + StoredEventWriter.MaxEncodedSize(0, Client));

    /// <summary>Writes every event of <paramref name="batch"/> into <paramref name="destination"/> as [int32 length][StoredEvent].</summary>
    public static (int Count, int Bytes) Write(ReadOnlySpan<byte> batch, in StoredEventWriter.Enrichment enrichment, Span<byte> destination)
    {
        BatchView.TryParse(batch, out var view);
        int count = 0, at = 0;
        foreach (var raw in view.GetEvents())
        {
            if (!EventView.TryParse(raw, out var e)) continue;
            int written = StoredEventWriter.Write(destination[(at + 4)..], e, enrichment);
            BinaryPrimitives.WriteInt32LittleEndian(destination[at..], written);
            at += 4 + written;
            count++;
        }
        return (count, at);
    }

    /// <summary>The 50-event realistic batch as log records, with fixed enrichment: the input of the log benchmarks.</summary>
    public static (byte[] Records, int Count) RealisticBatch()
    {
        byte[] batch = Batches.Realistic(50).ToByteArray();
        var buffer = new byte[MaxBytes(batch)];
        var (count, bytes) = Write(batch, new StoredEventWriter.Enrichment(1, 1, 1_764_000_000_000, 0x5EED, Client), buffer);
        return (buffer.AsSpan(0, bytes).ToArray(), count);
    }
}

/// <summary>A fresh temporary directory of a benchmark's own, deleted on dispose.</summary>
internal sealed class BenchDirectory(string prefix) : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}")).FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
