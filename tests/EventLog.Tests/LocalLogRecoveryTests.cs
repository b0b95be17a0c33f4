using static Analytics.EventLog.Tests.Records;

namespace Analytics.EventLog.Tests;

public class LocalLogRecoveryTests
{
    private const string LastPayload = "the-last-record-0123456789";

    /// <summary>Writes four records and a last one; returns the segment bytes and where the last record starts.</summary>
    private static async Task<(byte[] Bytes, int LastStart)> WriteFiveRecordsAsync(string directory)
    {
        await using (var log = LocalLog.Open(directory))
        {
            await log.AppendAsync("r0", "r1");
            await log.AppendAsync("r2");
            await log.AppendAsync("r3");
            await log.AppendAsync(LastPayload);
        }
        var bytes = await File.ReadAllBytesAsync(SegmentPath(directory, 0), Ct);
        return (bytes, bytes.Length - (8 + LastPayload.Length));
    }

    private static async Task AssertFirstFourThenAppendWorksAsync(LocalLog log)
    {
        Assert.Equal(4, log.NextOffset);
        await log.AppendAsync("after-recovery");
        await using var consumer = log.OpenConsumer("check");
        var read = await ReadAsync(consumer, 5);
        Assert.Equal([(0L, "r0"), (1L, "r1"), (2L, "r2"), (3L, "r3"), (4L, "after-recovery")], read);
    }

    [Fact]
    public async Task A_tail_torn_at_every_byte_of_the_last_record_is_truncated_and_appending_continues()
    {
        using var dir = new TempDirectory();
        var (original, lastStart) = await WriteFiveRecordsAsync(dir.Sub("original"));

        for (int cut = lastStart; cut < original.Length; cut++)
        {
            string copy = dir.Sub($"cut{cut}");
            Directory.CreateDirectory(copy);
            await File.WriteAllBytesAsync(SegmentPath(copy, 0), original.AsMemory(0, cut).ToArray(), Ct);

            await using (var log = LocalLog.Open(copy))
            {
                int torn = cut - lastStart;
                var damage = torn == 0 ? TailDamage.None : torn < 8 ? TailDamage.TornHeader : TailDamage.TornPayload;
                Assert.Equal(new RecoveryReport(1, 4, 4, torn, damage), log.Recovery);
                Assert.Equal(lastStart, new FileInfo(SegmentPath(copy, 0)).Length);
                await AssertFirstFourThenAppendWorksAsync(log);
            }
            await using (var log = LocalLog.Open(copy))
            {
                Assert.Equal(new RecoveryReport(1, 5, 5, 0, TailDamage.None), log.Recovery);
            }
        }
    }

    [Theory]
    [InlineData(8 + 5, 0x20, TailDamage.ChecksumMismatch)]   // a payload byte
    [InlineData(5, 0x01, TailDamage.ChecksumMismatch)]       // the stored CRC
    [InlineData(0, 0x04, TailDamage.TornPayload)]            // length 26 -> 30: runs past the end of the file
    [InlineData(0, 0x02, TailDamage.ChecksumMismatch)]       // length 26 -> 24: still inside; the CRC covers the length
    public async Task A_corrupted_last_record_is_dropped_by_recovery(int byteInRecord, int mask, TailDamage expected)
    {
        using var dir = new TempDirectory();
        var (bytes, lastStart) = await WriteFiveRecordsAsync(dir.Path);
        bytes[lastStart + byteInRecord] ^= (byte)mask;
        await File.WriteAllBytesAsync(SegmentPath(dir.Path, 0), bytes, Ct);

        await using var log = LocalLog.Open(dir.Path);
        Assert.Equal(new RecoveryReport(1, 4, 4, 8 + LastPayload.Length, expected), log.Recovery);
        await AssertFirstFourThenAppendWorksAsync(log);
    }

    [Fact]
    public async Task A_zero_filled_tail_is_not_mistaken_for_empty_records()
    {
        // What a crash after the file grew but before its pages were written can leave behind.
        using var dir = new TempDirectory();
        var (bytes, lastStart) = await WriteFiveRecordsAsync(dir.Path);
        Array.Clear(bytes, lastStart, bytes.Length - lastStart);
        await File.WriteAllBytesAsync(SegmentPath(dir.Path, 0), bytes.Concat(new byte[64]).ToArray(), Ct);

        await using var log = LocalLog.Open(dir.Path);
        Assert.Equal(TailDamage.ChecksumMismatch, log.Recovery.Damage);
        Assert.Equal(8 + LastPayload.Length + 64, log.Recovery.BytesTruncated);
        await AssertFirstFourThenAppendWorksAsync(log);
    }

    [Fact]
    public async Task Damage_inside_an_older_segment_is_reported_when_read_not_skipped()
    {
        using var dir = new TempDirectory();
        var options = new LocalLogOptions { SegmentBytes = 64 };
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            for (int i = 0; i < 20; i++)
            {
                await log.AppendAsync($"record-{i:D2}");
            }
        }
        var first = SegmentFiles(dir.Path)[0];
        var bytes = await File.ReadAllBytesAsync(first, Ct);
        bytes[8 + 3] ^= 0xFF; // inside the payload of offset 0
        await File.WriteAllBytesAsync(first, bytes, Ct);

        await using (var log = LocalLog.Open(dir.Path, options))
        {
            Assert.Equal(TailDamage.None, log.Recovery.Damage); // only the last segment is scanned on open
            await using var consumer = log.OpenConsumer("g");
            var error = await Assert.ThrowsAsync<InvalidDataException>(() => consumer.ReadAsync(100, TimeSpan.Zero, Ct).AsTask());
            Assert.Contains("offset 0", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_missing_older_segment_is_reported_when_read()
    {
        using var dir = new TempDirectory();
        var options = new LocalLogOptions { SegmentBytes = 64 };
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            for (int i = 0; i < 20; i++)
            {
                await log.AppendAsync($"record-{i:D2}");
            }
        }
        File.Delete(SegmentFiles(dir.Path)[1]);

        await using var reopened = LocalLog.Open(dir.Path, options);
        await using var consumer = reopened.OpenConsumer("g");
        await Assert.ThrowsAsync<InvalidDataException>(async () =>
        {
            while (true)
            {
                await consumer.ReadAsync(100, TimeSpan.Zero, Ct);
            }
        });
    }

    [Fact]
    public async Task Empty_segment_files_left_by_a_failed_roll_are_dropped_on_open()
    {
        using var dir = new TempDirectory();
        var options = new LocalLogOptions { SegmentBytes = 64 };
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            for (int i = 0; i < 7; i++)
            {
                await log.AppendAsync($"record-{i:D2}"); // segments at 0, 3, 6
            }
        }
        // Names a failed roll could have left: one inside a segment's range, one past the end.
        File.Create(SegmentPath(dir.Path, 4)).Dispose();
        File.Create(SegmentPath(dir.Path, 9)).Dispose();

        await using (var log = LocalLog.Open(dir.Path, options))
        {
            Assert.Equal(new RecoveryReport(3, 7, 1, 0, TailDamage.None), log.Recovery);
            Assert.False(File.Exists(SegmentPath(dir.Path, 4)));
            Assert.False(File.Exists(SegmentPath(dir.Path, 9)));
            await log.AppendAsync("record-07");
            await using var consumer = log.OpenConsumer("g");
            var read = await ReadAsync(consumer, 8);
            Assert.Equal(Enumerable.Range(0, 8).Select(i => ((long)i, $"record-{i:D2}")), read);
        }
    }
}
