namespace Analytics.EventLog;

/// <summary>When the local log calls fsync.</summary>
public enum FsyncMode
{
    /// <summary>
    /// fsync once per group commit before any caller of the group is acknowledged (default).
    /// Acknowledged records survive a process crash, an OS crash and a power loss.
    /// </summary>
    Always,

    /// <summary>
    /// Never fsync: acknowledged once written to the OS page cache. Survives a process crash,
    /// not an OS crash or power loss. For tests and benchmarks only.
    /// </summary>
    Never,
}

/// <summary>Settings of <see cref="LocalLog"/>.</summary>
public sealed class LocalLogOptions
{
    /// <summary>
    /// A segment is closed and a new one started before an append would push it past this size.
    /// 128 MiB: large enough that rolls (an extra fsync each) are rare, small enough that a
    /// consumer seeking into a segment on open scans little. One append larger than this still
    /// goes into a single segment of its own.
    /// </summary>
    public long SegmentBytes { get; init; } = 128L * 1024 * 1024;

    public FsyncMode Fsync { get; init; } = FsyncMode.Always;

    /// <summary>Largest single record accepted; larger ones fail AppendAsync with ArgumentException.</summary>
    public int MaxRecordBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>
    /// Bytes queued for the next group commit before appenders wait (backpressure). Bounded so
    /// a slow disk slows producers instead of growing memory without limit.
    /// </summary>
    public int MaxPendingBytes { get; init; } = 64 * 1024 * 1024;

    /// <summary>
    /// Read buffer per consumer; a batch never spans more than this many bytes unless a single
    /// record is larger. 1 MiB amortises read syscalls over many small events.
    /// </summary>
    public int ConsumerBufferBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// Test hook: consulted by the writer thread before each I/O step; a returned exception is
    /// thrown as if that step had failed (e.g. IOException "disk full"). It may also block to
    /// simulate a slow disk.
    /// </summary>
    internal Func<LocalLogFaultPoint, Exception?>? FaultInjector { get; init; }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(SegmentBytes, 64L, nameof(SegmentBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRecordBytes, 0, nameof(MaxRecordBytes));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxRecordBytes, int.MaxValue / 2, nameof(MaxRecordBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingBytes, 4096, nameof(MaxPendingBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(ConsumerBufferBytes, 4096, nameof(ConsumerBufferBytes));
    }
}

/// <summary>Writer I/O steps where <see cref="LocalLogOptions.FaultInjector"/> can inject a failure.</summary>
internal enum LocalLogFaultPoint
{
    /// <summary>Before writing a chunk of records to the segment.</summary>
    Write,
    /// <summary>After the write, before the fsync that makes it durable.</summary>
    Flush,
    /// <summary>Before creating the next segment file.</summary>
    Roll,
}

/// <summary>What recovery found in the last segment when the log was opened.</summary>
public enum TailDamage
{
    /// <summary>The last segment ended on a record boundary with every checksum valid.</summary>
    None,
    /// <summary>The file ended inside a record header.</summary>
    TornHeader,
    /// <summary>A header's length ran past the end of the file.</summary>
    TornPayload,
    /// <summary>A record's checksum did not match (partially persisted or corrupted write).</summary>
    ChecksumMismatch,
}

/// <summary>
/// Result of opening a <see cref="LocalLog"/>. Everything from the first invalid record of the
/// last segment to its end was truncated: those bytes were never acknowledged (see LocalLog).
/// </summary>
/// <param name="Segments">Segment files in the log.</param>
/// <param name="NextOffset">Offset the next appended record gets.</param>
/// <param name="TailRecordsKept">Valid records found in the last segment.</param>
/// <param name="BytesTruncated">Bytes cut from the end of the last segment.</param>
/// <param name="Damage">Why the cut happened, or None.</param>
public sealed record RecoveryReport(int Segments, long NextOffset, long TailRecordsKept, long BytesTruncated, TailDamage Damage);
