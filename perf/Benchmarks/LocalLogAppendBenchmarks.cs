using Analytics.EventLog;
using BenchmarkDotNet.Attributes;

namespace Analytics.Benchmarks;

/// <summary>
/// <c>LocalLog.AppendAsync</c> of one batch of 50 realistic log records (~12 KB), one caller at a
/// time, with fsync per group commit and without. One caller means no group commit to share: with
/// fsync every append waits for its own, which is the worst case per batch; under load many
/// connections share one fsync (see the LoadTool figures).
/// </summary>
[MemoryDiagnoser]
public class LocalLogAppendBenchmarks
{
    private BenchDirectory _dir = null!;
    private LocalLog _log = null!;
    private byte[] _records = [];
    private int _count;

    [Params(FsyncMode.Never, FsyncMode.Always)]
    public FsyncMode Fsync { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _dir = new BenchDirectory("bench-log");
        _log = LocalLog.Open(_dir.File("log"), new LocalLogOptions { Fsync = Fsync });
        (_records, _count) = StoredRecords.RealisticBatch();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _log.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _dir.Dispose();
    }

    [Benchmark]
    public ValueTask AppendBatchOf50() => _log.AppendAsync(partitionKey: 1, _records, _count);
}
