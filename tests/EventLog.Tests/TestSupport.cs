using System.Buffers.Binary;
using System.Text;

namespace Analytics.EventLog.Tests;

/// <summary>A unique directory per test, deleted afterwards.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "eventlog-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

internal static class Records
{
    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static byte[] Payload(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>The AppendAsync input format: each record prefixed with its u32 LE length.</summary>
    public static byte[] Encode(params byte[][] payloads)
    {
        var buffer = new byte[payloads.Sum(p => 4 + p.Length)];
        int position = 0;
        foreach (var payload in payloads)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(position), (uint)payload.Length);
            payload.CopyTo(buffer.AsSpan(position + 4));
            position += 4 + payload.Length;
        }
        return buffer;
    }

    public static ValueTask AppendAsync(this LocalLog log, params string[] payloads) =>
        log.AppendAsync(1, Encode(payloads.Select(Payload).ToArray()), payloads.Length, Ct);

    /// <summary>
    /// Reads until <paramref name="count"/> records arrived, copying payloads (batch memory is
    /// only valid until the next read) and checking offsets are consecutive from the start.
    /// </summary>
    public static async Task<List<(long Offset, string Payload)>> ReadAsync(IEventLogConsumer consumer, int count, int maxRecords = 1000)
    {
        var result = new List<(long, string)>();
        long? expectedNext = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (result.Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"Only {result.Count} of {count} records arrived.");
            var batch = await consumer.ReadAsync(Math.Min(maxRecords, count - result.Count), TimeSpan.FromMilliseconds(200), Ct);
            if (batch.IsEmpty)
            {
                continue;
            }
            Assert.Equal(expectedNext ?? batch.FirstOffset, batch.FirstOffset);
            Assert.Equal(batch.FirstOffset + batch.Records.Count, batch.NextOffset);
            for (int i = 0; i < batch.Records.Count; i++)
            {
                result.Add((batch.FirstOffset + i, Encoding.UTF8.GetString(batch.Records[i].Span)));
            }
            expectedNext = batch.NextOffset;
        }
        return result;
    }

    /// <summary>Reads one batch of up to <paramref name="max"/> records and commits it.</summary>
    public static async Task<LogBatch> ReadAndCommitAsync(IEventLogConsumer consumer, int max)
    {
        var batch = await consumer.ReadAsync(max, TimeSpan.FromSeconds(5), Ct);
        await consumer.CommitAsync(batch, Ct);
        return batch;
    }

    public static string SegmentPath(string directory, long baseOffset) =>
        System.IO.Path.Combine(directory, baseOffset.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + ".log");

    public static string[] SegmentFiles(string directory) =>
        Directory.GetFiles(directory, "*.log").Order(StringComparer.Ordinal).ToArray();
}
