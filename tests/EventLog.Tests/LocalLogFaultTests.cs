using static Analytics.EventLog.Tests.Records;

namespace Analytics.EventLog.Tests;

public class LocalLogFaultTests
{
    /// <summary>Fails the chosen I/O step while <see cref="Failing"/> is set, like a full disk.</summary>
    private sealed class Disk
    {
        public volatile bool Failing;

        public LocalLogOptions Options(LocalLogFaultPoint point, long segmentBytes = 128L * 1024 * 1024) => new()
        {
            SegmentBytes = segmentBytes,
            FaultInjector = p => Failing && p == point ? new IOException("No space left on device") : null,
        };
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // the write succeeded: its bytes are in the file and must be cut away
    public async Task A_failed_write_or_fsync_fails_its_callers_and_leaves_the_log_consistent(bool failFsync)
    {
        using var dir = new TempDirectory();
        var disk = new Disk();
        var options = disk.Options(failFsync ? LocalLogFaultPoint.Flush : LocalLogFaultPoint.Write);
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            await log.AppendAsync("ok0", "ok1", "ok2");
            long goodLength = new FileInfo(SegmentPath(dir.Path, 0)).Length;

            disk.Failing = true;
            var failed = Enumerable.Range(0, 20).Select(i => log.AppendAsync($"lost{i}").AsTask()).ToArray();
            foreach (var task in failed)
            {
                var error = await Assert.ThrowsAsync<EventLogUnavailableException>(() => task);
                Assert.IsType<IOException>(error.InnerException);
            }
            Assert.Equal(3, log.NextOffset);
            Assert.Equal(goodLength, new FileInfo(SegmentPath(dir.Path, 0)).Length); // truncated back

            disk.Failing = false;
            await log.AppendAsync("ok3", "ok4");
            await using var consumer = log.OpenConsumer("g");
            Assert.Equal(["ok0", "ok1", "ok2", "ok3", "ok4"], (await ReadAsync(consumer, 5)).Select(r => r.Payload));
        }
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            Assert.Equal(new RecoveryReport(1, 5, 5, 0, TailDamage.None), log.Recovery);
            await using var consumer = log.OpenConsumer("g");
            Assert.Equal(["ok0", "ok1", "ok2", "ok3", "ok4"], (await ReadAsync(consumer, 5)).Select(r => r.Payload));
        }
    }

    [Fact]
    public async Task A_failed_segment_roll_keeps_the_old_segment_and_a_later_roll_succeeds()
    {
        using var dir = new TempDirectory();
        var disk = new Disk();
        var options = disk.Options(LocalLogFaultPoint.Roll, segmentBytes: 64);
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            await log.AppendAsync("record-00", "record-01", "record-02"); // 51 bytes: the segment is nearly full
            disk.Failing = true;
            await Assert.ThrowsAsync<EventLogUnavailableException>(() => log.AppendAsync("record-XX").AsTask());
            Assert.Equal(1, log.SegmentCount);
            disk.Failing = false;
            await log.AppendAsync("record-03");
            Assert.Equal(2, log.SegmentCount);
        }
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            await using var consumer = log.OpenConsumer("g");
            Assert.Equal(["record-00", "record-01", "record-02", "record-03"], (await ReadAsync(consumer, 4)).Select(r => r.Payload));
        }
    }

    [Fact]
    public async Task Acknowledged_appends_are_never_lost_when_failures_come_and_go()
    {
        using var dir = new TempDirectory();
        int calls = 0;
        // Every third fsync fails while concurrent writers keep appending; tiny segments add rolls.
        var options = new LocalLogOptions
        {
            SegmentBytes = 512,
            FaultInjector = p => p == LocalLogFaultPoint.Flush && Interlocked.Increment(ref calls) % 3 == 0 ? new IOException("EIO") : null,
        };
        var acknowledged = new System.Collections.Concurrent.ConcurrentBag<string>();
        int failures = 0;
        await using (var log = LocalLog.Open(dir.Path, options))
        {
            await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(async () =>
            {
                for (int i = 0; i < 100; i++)
                {
                    string payload = $"t{t}-{i}";
                    try
                    {
                        await log.AppendAsync(payload);
                        acknowledged.Add(payload);
                    }
                    catch (EventLogUnavailableException)
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            }, Ct)));
            Assert.Equal(acknowledged.Count, log.NextOffset);
        }
        Assert.True(failures > 0);
        await using (var log = LocalLog.Open(dir.Path))
        {
            Assert.Equal(TailDamage.None, log.Recovery.Damage);
            await using var consumer = log.OpenConsumer("g");
            var read = await ReadAsync(consumer, acknowledged.Count);
            Assert.Equal(acknowledged.Order(StringComparer.Ordinal), read.Select(r => r.Payload).Order(StringComparer.Ordinal));
        }
    }
}
