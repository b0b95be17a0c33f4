using System.Diagnostics;
using static Analytics.EventLog.Tests.Records;

namespace Analytics.EventLog.Tests;

public class LocalLogConsumerTests
{
    [Fact]
    public async Task Committed_offset_survives_reopen_and_uncommitted_records_are_delivered_again()
    {
        using var dir = new TempDirectory();
        await using (var log = LocalLog.Open(dir.Path))
        {
            await log.AppendAsync(Enumerable.Range(0, 10).Select(i => $"e{i}").ToArray());
            await using var consumer = log.OpenConsumer("rollup");
            var committed = await ReadAndCommitAsync(consumer, 4);
            Assert.Equal(4, committed.NextOffset);
            Assert.Equal(6, consumer.Lag);
            var uncommitted = await consumer.ReadAsync(3, TimeSpan.FromSeconds(5), Ct);
            Assert.Equal(4, uncommitted.FirstOffset);
            Assert.Equal(6, consumer.Lag); // reading does not commit
        } // "crash" before committing 4..6

        await using (var log = LocalLog.Open(dir.Path))
        {
            await using var consumer = log.OpenConsumer("rollup");
            Assert.Equal(6, consumer.Lag);
            var read = await ReadAsync(consumer, 6);
            Assert.Equal(Enumerable.Range(4, 6).Select(i => ((long)i, $"e{i}")), read);
        }
        Assert.Equal("4\n", await File.ReadAllTextAsync(Path.Combine(dir.Path, "consumers", "rollup.offset"), Ct));
    }

    [Fact]
    public async Task Consumer_groups_are_independent()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path);
        await log.AppendAsync("a", "b", "c");
        await using var fast = log.OpenConsumer("fast");
        await using var slow = log.OpenConsumer("slow");

        var batch = await ReadAndCommitAsync(fast, 10);
        Assert.Equal(3, batch.Records.Count);
        Assert.Equal(0, fast.Lag);
        Assert.Equal(3, slow.Lag);
        Assert.Equal([(0L, "a"), (1L, "b"), (2L, "c")], await ReadAsync(slow, 3));
        Assert.Throws<InvalidOperationException>(() => log.OpenConsumer("fast")); // one reader per group
    }

    [Fact]
    public async Task ReadAsync_returns_an_empty_batch_after_maxWait_when_nothing_is_appended()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path);
        await using var consumer = log.OpenConsumer("g");

        var sw = Stopwatch.StartNew();
        var batch = await consumer.ReadAsync(10, TimeSpan.FromMilliseconds(300), Ct);
        sw.Stop();

        Assert.True(batch.IsEmpty);
        Assert.Equal(0, batch.FirstOffset);
        Assert.Equal(0, batch.NextOffset);
        Assert.InRange(sw.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
        Assert.True((await consumer.ReadAsync(10, TimeSpan.Zero, Ct)).IsEmpty); // no wait at all
    }

    [Fact]
    public async Task ReadAsync_wakes_promptly_when_a_record_is_appended()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path);
        await using var consumer = log.OpenConsumer("g");

        var read = consumer.ReadAsync(10, Timeout.InfiniteTimeSpan, Ct).AsTask();
        await Task.Delay(100, Ct);
        Assert.False(read.IsCompleted);
        await log.AppendAsync("wake");
        var sw = Stopwatch.StartNew();
        var batch = await read;

        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"woke after {sw.Elapsed}");
        Assert.Equal("wake", System.Text.Encoding.UTF8.GetString(batch.Records.Single().Span));
    }

    [Fact]
    public async Task ReadAsync_honours_cancellation_while_waiting()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path);
        await using var consumer = log.OpenConsumer("g");
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => consumer.ReadAsync(10, TimeSpan.FromSeconds(30), cts.Token).AsTask());
    }

    [Fact]
    public async Task Tiny_segments_roll_and_reading_across_boundaries_and_reopening_work()
    {
        using var dir = new TempDirectory();
        // 64 bytes hold three 17-byte records; an append of four (68 bytes) gets a segment alone.
        var options = new LocalLogOptions { SegmentBytes = 64 };
        var expected = new List<string>();
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            for (int i = 0; expected.Count < 150; i++)
            {
                var payloads = Enumerable.Range(0, 1 + (i % 4)).Select(r => $"rec-{expected.Count + r:D5}").ToArray();
                expected.AddRange(payloads);
                await log.AppendAsync(payloads);
            }
            Assert.True(log.SegmentCount > 40, $"{log.SegmentCount} segments");
            await using var consumer = log.OpenConsumer("g");
            var read = await ReadAsync(consumer, expected.Count, maxRecords: 7);
            Assert.Equal(expected.Select((p, i) => ((long)i, p)), read);
            await consumer.CommitAsync(new LogBatch([], 0, 100), Ct); // a position mid-segment
        }

        var files = SegmentFiles(dir.Path);
        long offset = 0;
        foreach (var file in files)
        {
            Assert.Equal(offset.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + ".log", Path.GetFileName(file));
            long length = new FileInfo(file).Length;
            Assert.True(length <= 4 * 17, $"{file} is {length} bytes");
            offset += length / 17;
        }
        Assert.Equal(expected.Count, offset);

        await using (var log = LocalLog.Open(dir.Path, options))
        {
            Assert.Equal(files.Length, log.SegmentCount);
            Assert.Equal(expected.Count, log.NextOffset);
            await log.AppendAsync("after-reopen");
            expected.Add("after-reopen");
            await using var consumer = log.OpenConsumer("g"); // resumes at 100, inside a segment
            var read = await ReadAsync(consumer, expected.Count - 100);
            Assert.Equal(expected.Select((p, i) => ((long)i, p)).Skip(100), read);
            await using var fresh = log.OpenConsumer("fresh");
            Assert.Equal(expected.Count, (await ReadAsync(fresh, expected.Count, maxRecords: 1)).Count);
        }
    }

    [Fact]
    public async Task A_record_larger_than_the_consumer_buffer_is_read_whole()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path, new LocalLogOptions { ConsumerBufferBytes = 4096 });
        var big = new string('b', 10_000);
        await log.AppendAsync("small", big, "small2");
        await using var consumer = log.OpenConsumer("g");
        var read = await ReadAsync(consumer, 3);
        Assert.Equal(["small", big, "small2"], read.Select(r => r.Payload));
    }

    [Fact]
    public async Task A_committed_offset_past_the_end_of_the_log_is_refused()
    {
        using var dir = new TempDirectory();
        await using (var log = LocalLog.Open(dir.Path))
        {
            await log.AppendAsync("a");
        }
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "consumers", "g.offset"), "5\n", Ct);
        await using var reopened = LocalLog.Open(dir.Path);
        Assert.Throws<InvalidDataException>(() => reopened.OpenConsumer("g"));
        Assert.Throws<ArgumentException>(() => reopened.OpenConsumer("../escape"));
    }
}
