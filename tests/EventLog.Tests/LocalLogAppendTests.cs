using System.Diagnostics;
using static Analytics.EventLog.Tests.Records;

namespace Analytics.EventLog.Tests;

public class LocalLogAppendTests
{
    [Fact]
    public async Task Concurrent_appends_from_many_tasks_are_all_read_back_once_with_consecutive_offsets()
    {
        using var dir = new TempDirectory();
        const int tasks = 16, appendsPerTask = 100;
        var expected = new List<string>();
        await using var log = LocalLog.Open(dir.Path);

        var writers = Enumerable.Range(0, tasks).Select(t => Task.Run(async () =>
        {
            for (int i = 0; i < appendsPerTask; i++)
            {
                // 1-3 records per call, so calls of different sizes interleave in one group.
                var payloads = Enumerable.Range(0, 1 + (i % 3)).Select(r => $"t{t}-a{i:D3}-r{r}").ToArray();
                await log.AppendAsync(payloads);
            }
        }, Ct)).ToArray();
        for (int t = 0; t < tasks; t++)
        {
            for (int i = 0; i < appendsPerTask; i++)
            {
                expected.AddRange(Enumerable.Range(0, 1 + (i % 3)).Select(r => $"t{t}-a{i:D3}-r{r}"));
            }
        }
        await Task.WhenAll(writers);
        Assert.Equal(expected.Count, log.NextOffset);

        await using var consumer = log.OpenConsumer("all");
        var read = await ReadAsync(consumer, expected.Count, maxRecords: 333);

        Assert.Equal(Enumerable.Range(0, expected.Count).Select(i => (long)i), read.Select(r => r.Offset));
        Assert.Equal(expected.Order(StringComparer.Ordinal), read.Select(r => r.Payload).Order(StringComparer.Ordinal));
        // Each task awaited its appends one by one, so its records appear in its own order.
        foreach (var group in read.GroupBy(r => r.Payload.Split('-')[0]))
        {
            var payloads = group.Select(r => r.Payload).ToList();
            Assert.Equal(payloads.Order(StringComparer.Ordinal), payloads);
        }
        Assert.Equal(expected.Count, consumer.Lag);
    }

    [Fact]
    public async Task Reopening_after_dispose_keeps_the_records_and_continues_the_offsets()
    {
        using var dir = new TempDirectory();
        await using (var log = LocalLog.Open(dir.Path))
        {
            await log.AppendAsync("a", "b");
            await log.AppendAsync("c");
        }
        await using (var log = LocalLog.Open(dir.Path))
        {
            Assert.Equal(new RecoveryReport(1, 3, 3, 0, TailDamage.None), log.Recovery);
            Assert.Equal(3, log.NextOffset);
            await log.AppendAsync("d");
            await using var consumer = log.OpenConsumer("g");
            var read = await ReadAsync(consumer, 4);
            Assert.Equal([(0L, "a"), (1L, "b"), (2L, "c"), (3L, "d")], read);
        }
    }

    [Fact]
    public async Task Group_commit_completes_1000_concurrent_appends_with_far_fewer_fsyncs()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path);
        long before = log.FsyncCount;

        var appends = Enumerable.Range(0, 1000).Select(i => Task.Run(() => log.AppendAsync($"e{i}").AsTask(), Ct)).ToArray();
        await Task.WhenAll(appends);

        long fsyncs = log.FsyncCount - before;
        Assert.Equal(1000, log.NextOffset);
        // Real fsyncs on this disk: callers that arrive during one fsync share the next.
        TestContext.Current.SendDiagnosticMessage($"1000 appends, {fsyncs} fsyncs");
        Assert.InRange(fsyncs, 1, 100);
        await using var consumer = log.OpenConsumer("g");
        var read = await ReadAsync(consumer, 1000);
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"e{i}").Order(StringComparer.Ordinal), read.Select(r => r.Payload).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Appends_queued_during_a_slow_fsync_share_the_next_one()
    {
        using var dir = new TempDirectory();
        using var firstFsyncStarted = new ManualResetEventSlim();
        using var releaseFsync = new ManualResetEventSlim();
        var options = new LocalLogOptions
        {
            FaultInjector = point =>
            {
                if (point == LocalLogFaultPoint.Flush && !firstFsyncStarted.IsSet)
                {
                    firstFsyncStarted.Set();
                    releaseFsync.Wait(TimeSpan.FromSeconds(30)); // a slow disk
                }
                return null;
            },
        };
        await using var log = LocalLog.Open(dir.Path, options);

        var first = log.AppendAsync("first").AsTask();
        Assert.True(firstFsyncStarted.Wait(TimeSpan.FromSeconds(10), Ct));
        var others = Enumerable.Range(0, 999).Select(i => log.AppendAsync($"e{i}").AsTask()).ToArray();
        Assert.False(first.IsCompleted); // not acknowledged before its fsync returned
        releaseFsync.Set();
        await first;
        await Task.WhenAll(others);

        Assert.Equal(2, log.FsyncCount); // one for "first", one for the 999 queued behind it
        Assert.Equal(1000, log.NextOffset);
    }

    [Fact]
    public async Task Records_are_invisible_to_consumers_until_their_fsync_returns()
    {
        using var dir = new TempDirectory();
        using var fsyncReached = new ManualResetEventSlim();
        using var releaseFsync = new ManualResetEventSlim();
        bool block = false;
        var options = new LocalLogOptions
        {
            FaultInjector = point =>
            {
                if (point == LocalLogFaultPoint.Flush && Volatile.Read(ref block))
                {
                    fsyncReached.Set();
                    releaseFsync.Wait(TimeSpan.FromSeconds(30));
                }
                return null;
            },
        };
        await using var log = LocalLog.Open(dir.Path, options);
        await using var consumer = log.OpenConsumer("g");
        await log.AppendAsync("durable");
        Volatile.Write(ref block, true);
        var pending = log.AppendAsync("written-not-fsynced").AsTask();
        Assert.True(fsyncReached.Wait(TimeSpan.FromSeconds(10), Ct));

        // The bytes are in the file, but the consumer must stop before them.
        Assert.True(new FileInfo(SegmentPath(dir.Path, 0)).Length > 8 + 7);
        var batch = await consumer.ReadAsync(10, TimeSpan.FromMilliseconds(200), Ct);
        Assert.Single(batch.Records);
        batch = await consumer.ReadAsync(10, TimeSpan.FromMilliseconds(200), Ct);
        Assert.True(batch.IsEmpty);

        releaseFsync.Set();
        await pending;
        batch = await consumer.ReadAsync(10, TimeSpan.FromSeconds(5), Ct);
        Assert.Equal("written-not-fsynced", System.Text.Encoding.UTF8.GetString(batch.Records.Single().Span));
    }

    [Fact]
    public async Task Dispose_writes_appends_still_queued_and_later_appends_throw_ObjectDisposedException()
    {
        using var dir = new TempDirectory();
        var log = LocalLog.Open(dir.Path);
        var appends = Enumerable.Range(0, 200).Select(i => log.AppendAsync($"e{i}").AsTask()).ToArray();
        await log.DisposeAsync();
        await Task.WhenAll(appends); // every append queued before dispose is durable, none fails

        await Assert.ThrowsAsync<ObjectDisposedException>(() => log.AppendAsync("late").AsTask());
        Assert.Throws<ObjectDisposedException>(() => log.OpenConsumer("g"));

        await using var reopened = LocalLog.Open(dir.Path);
        Assert.Equal(200, reopened.NextOffset);
    }

    [Fact]
    public async Task Malformed_input_is_rejected_and_nothing_of_it_is_stored()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path, new LocalLogOptions { MaxRecordBytes = 100 });
        var two = Encode(Payload("a"), Payload("b"));

        Assert.Throws<ArgumentException>(() => { _ = log.AppendAsync(1, two, 3, Ct); });               // fewer records than claimed
        Assert.Throws<ArgumentException>(() => { _ = log.AppendAsync(1, two, 1, Ct); });               // trailing bytes
        Assert.Throws<ArgumentException>(() => { _ = log.AppendAsync(1, two.AsMemory(0, 7), 2, Ct); }); // truncated payload
        Assert.Throws<ArgumentException>(() => { _ = log.AppendAsync(1, Encode(new byte[101]), 1, Ct); });
        await log.AppendAsync(1, ReadOnlyMemory<byte>.Empty, 0, Ct); // nothing to do, completes at once
        await log.AppendAsync(1, Encode(Array.Empty<byte>()), 1, Ct); // an empty record is a record

        Assert.Equal(1, log.NextOffset);
        await using var consumer = log.OpenConsumer("g");
        var batch = await consumer.ReadAsync(10, TimeSpan.FromSeconds(5), Ct);
        Assert.Equal(0, batch.Records.Single().Length);
    }

    [Fact]
    public async Task FsyncMode_Never_acknowledges_without_fsync_and_the_records_survive_reopen()
    {
        using var dir = new TempDirectory();
        var options = new LocalLogOptions { Fsync = FsyncMode.Never, SegmentBytes = 64 };
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            await Task.WhenAll(Enumerable.Range(0, 50).Select(i => log.AppendAsync($"e{i:D2}").AsTask()));
            Assert.Equal(0, log.FsyncCount);
        }
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            Assert.Equal(50, log.NextOffset);
            await using var consumer = log.OpenConsumer("g");
            Assert.Equal(50, (await ReadAsync(consumer, 50)).Select(r => r.Payload).Distinct().Count());
        }
    }

    [Fact]
    public async Task Opening_a_directory_that_is_already_open_fails()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path);
        Assert.Throws<IOException>(() => LocalLog.Open(dir.Path));
    }

    [Fact]
    public async Task Appends_larger_than_the_pending_limit_wait_for_the_writer_and_all_succeed()
    {
        using var dir = new TempDirectory();
        await using var log = LocalLog.Open(dir.Path, new LocalLogOptions { MaxPendingBytes = 4096 });
        var payload = new string('x', 1000);
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => log.AppendAsync(payload).AsTask()));
        Assert.Equal(200, log.NextOffset);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30));
    }
}
