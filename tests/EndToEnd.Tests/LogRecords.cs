using System.Buffers.Binary;
using Analytics.Contracts.Internal;
using Analytics.EventLog;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Tests.Shared;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.EndToEnd.Tests;

/// <summary>Stored events appended to a real event log the way ingest appends a batch: each
/// record a little-endian length and the StoredEvent bytes, one append per batch.</summary>
public static class LogRecords
{
    public static async Task AppendAsync(IEventLog log, ulong key, IEnumerable<StoredEvent> events, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        int count = 0;
        var length = new byte[4];
        foreach (var e in events)
        {
            var bytes = e.ToByteArray();
            BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
            buffer.Write(length);
            buffer.Write(bytes);
            count++;
        }
        await log.AppendAsync(key, buffer.ToArray(), count, ct);
    }

    /// <summary>Stores <paramref name="events"/> (one merchant's) in <paramref name="db"/> through a
    /// real local log under <paramref name="dir"/> and the real Rollup, in rounds of
    /// <paramref name="roundRecords"/> records; fails unless all are stored within 90 s.</summary>
    public static async Task RollUpAsync(EngineFixture engine, string db, string dir, ulong merchant, IReadOnlyCollection<StoredEvent> events,
        int roundRecords, CancellationToken ct)
    {
        await using var log = LocalLog.Open(Path.Combine(dir, "log"));
        foreach (var chunk in events.Chunk(97)) await AppendAsync(log, merchant, chunk, ct);
        var status = new RollupStatus();
        var options = new RollupOptions
        {
            Database = db, QuarantineDirectory = Path.Combine(dir, "quarantine"), MaxBatchRecords = roundRecords,
            MaxWait = TimeSpan.FromMilliseconds(20), MinRoundInterval = TimeSpan.Zero,
        };
        using var worker = new RollupWorker(log, engine.Store, options, new ProcessingLogic(engine.Enrichment), status,
            new ReprocessQueue(Path.Combine(dir, "jobs")), NullLogger<RollupWorker>.Instance);
        await worker.StartAsync(ct);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (status.EventsStored < events.Count && DateTime.UtcNow < deadline) await Task.Delay(50, ct);
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
        }
        Assert.Equal(events.Count, status.EventsStored);
    }
}
