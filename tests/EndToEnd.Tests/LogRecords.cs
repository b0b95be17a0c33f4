using System.Buffers.Binary;
using Analytics.Contracts.Internal;
using Analytics.EventLog;
using Google.Protobuf;

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
}
