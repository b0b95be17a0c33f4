using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Analytics.EventLog.Local;
using Analytics.EventLog.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace Analytics.EventLog;

/// <summary>
/// The embedded-default event log: one append-only sequence of records in segment files
/// <c>DIR/00000000000000000000.log</c>, … (name = offset of the segment's first record).
/// On disk each record is <c>[u32 length][u32 CRC-32C of length bytes + payload][payload]</c>,
/// little-endian; offsets are record indices, consecutive across segments.
///
/// Contract:
/// <list type="bullet">
/// <item>Durability: an AppendAsync completes only after the fsync that covers all its records
/// returned (with <see cref="FsyncMode.Always"/>). Consumers never see a record before that fsync,
/// so nothing a consumer processed can vanish in a crash.</item>
/// <item>Group commit: appenders copy their records into one shared buffer under a short lock;
/// one writer thread takes everything queued, writes it with one write call, fsyncs once and
/// completes all those callers. Batching is natural: what arrives during an fsync goes into the
/// next one, so there is no timer and no added latency when idle. Trade-off: an appender's latency
/// is up to two fsyncs, in exchange for throughput bounded by bytes rather than by fsyncs/second.</item>
/// <item>Failure: if a write or fsync fails, the callers of that group get
/// <see cref="EventLogUnavailableException"/> (nothing acknowledged) and the segment is truncated
/// back to the last durable end before anything else is written. Bytes whose fsync failed are
/// never acknowledged later (after a failed fsync Linux may drop the dirty pages and report the
/// next fsync as success, so retrying the fsync would be unsafe).</item>
/// <item>Recovery: on open the last segment is scanned and cut at its first torn or
/// checksum-invalid record. Only never-acknowledged bytes can be there: they are the tail of a
/// group whose fsync did not return, and the OS may have persisted its pages in any order, so a
/// valid-looking record after an invalid one was not acknowledged either. Older segments were
/// fsynced before the next segment was created; damage found in them while reading throws
/// <see cref="InvalidDataException"/> instead of being skipped, so data loss is visible.</item>
/// <item>Delivery: at least once per consumer group; committed positions are files under
/// <c>DIR/consumers/</c>, replaced atomically (write temp, fsync, rename, fsync directory).</item>
/// </list>
/// Not here yet: retention (segments are never deleted; the log grows until an operator removes
/// old segments), partitions (partitionKey is ignored: one ordered log keeps every merchant's
/// records in order), and a sparse offset index (a consumer opening at an offset scans its
/// segment from the start once, at most SegmentBytes). One process owns a directory at a time
/// (an exclusive lock on <c>DIR/.lock</c>).
/// </summary>
public sealed partial class LocalLog : IEventLog
{
    /// <summary>The <see cref="LogBatch.Source"/> of batches read from this log.</summary>
    public const string SourceName = "local";

    internal const string ConsumersDirectoryName = "consumers";
    private const string LockFileName = ".lock";

    // 1 MiB: a group of a few thousand small events fits without growing the buffer.
    private const int InitialBufferBytes = 1024 * 1024;

    // Enough for every concurrent appender a host has; beyond it waiters are simply collected.
    private const int MaxPooledWaiters = 4096;

    private static readonly TaskCompletionSource s_completedSignal = CreateCompletedSignal();

    private readonly LocalLogOptions _options;
    private readonly Func<LocalLogFaultPoint, Exception?>? _fault;
    private readonly SafeFileHandle _lockHandle;
    private readonly Thread _writer;
    private readonly TaskCompletionSource _writerDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Appender side: guarded by _gate (Monitor, because the writer thread waits on it).
    private readonly object _gate = new();
    private byte[] _pending;
    private int _pendingLength;
    private List<PendingAppend> _pendingAppends = [];
    private TaskCompletionSource? _drained; // created only when an appender waits for space
    private bool _writerWaiting;
    private bool _disposed;

    // Writer thread only (and the constructor / DisposeAsync, which do not overlap it).
    private byte[] _writing;
    private List<PendingAppend> _writingAppends = [];
    private Segment _active;
    private SafeFileHandle _activeHandle;
    private long _writeLength; // bytes in the active segment
    private long _nextOffset;  // offset of the next record written
    private bool _needsRepair; // a failed group left bytes past the durable end

    // Published to readers without locks.
    private DurableMark _durable;
    private Segment[] _segments;
    private TaskCompletionSource? _appendSignal; // created only when a consumer waits
    private long _fsyncCount;

    private readonly Lock _poolLock = new();
    private readonly Stack<AppendWaiter> _waiterPool = new();
    private readonly Action<AppendWaiter> _returnWaiter;
    private readonly HashSet<string> _openGroups = new(StringComparer.Ordinal);

    private LocalLog(string directory, LocalLogOptions options, SafeFileHandle lockHandle)
    {
        Directory = directory;
        _options = options;
        _fault = options.FaultInjector;
        _lockHandle = lockHandle;
        _returnWaiter = ReturnWaiter;

        DeleteStaleTempFiles(ConsumersDirectory);
        (_segments, Recovery) = Recover(directory, options);
        _active = _segments[^1];
        _activeHandle = File.OpenHandle(_active.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        _writeLength = RandomAccess.GetLength(_activeHandle);
        _nextOffset = Recovery.NextOffset;
        _durable = new DurableMark(_active, _writeLength, _nextOffset);

        _pending = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
        _writing = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);

        // A dedicated thread, not a pool task: it blocks in write and fsync by design.
        _writer = new Thread(WriterLoop) { IsBackground = true, Name = "LocalLog writer" };
        _writer.Start();
    }

    /// <summary>Full path of the log directory.</summary>
    public string Directory { get; }

    /// <summary>What recovery found and repaired when the log was opened.</summary>
    public RecoveryReport Recovery { get; }

    /// <summary>Offset the next record gets; every record below it is durable and readable.</summary>
    public long NextOffset => Volatile.Read(ref _durable).NextOffset;

    /// <summary>Segment files currently in the log.</summary>
    public int SegmentCount => Volatile.Read(ref _segments).Length;

    /// <summary>Where write and fsync failures are logged (once per outage, from the writer
    /// thread); the host sets it once its logging is built.</summary>
    public ILogger Logger { get; set; } = NullLogger.Instance;

    // Writer thread only: groups failed since the last success (0: healthy).
    private long _failedGroups;

    /// <summary>fsync calls on segment data so far (group commits, rolls, repairs); for observability.</summary>
    public long FsyncCount => Interlocked.Read(ref _fsyncCount);

    internal string ConsumersDirectory => Path.Combine(Directory, ConsumersDirectoryName);

    internal LocalLogOptions Options => _options;

    internal bool IsDisposed => Volatile.Read(ref _disposed);

    internal DurableMark Durable => Volatile.Read(ref _durable);

    /// <summary>
    /// Completes at the next durable publish (or dispose). Read it before checking
    /// <see cref="Durable"/>: a publish in between then completes the task already held.
    /// </summary>
    internal Task AppendSignal
    {
        get
        {
            var signal = Volatile.Read(ref _appendSignal);
            if (signal is null)
            {
                var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                signal = Interlocked.CompareExchange(ref _appendSignal, created, null) ?? created;
            }
            return signal.Task;
        }
    }

    /// <summary>
    /// Opens (creating if needed) the log in <paramref name="directory"/>, recovering the tail of
    /// the last segment. Throws IOException if another LocalLog holds the directory.
    /// </summary>
    public static LocalLog Open(string directory, LocalLogOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new LocalLogOptions();
        options.Validate();
        string full = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Path.Combine(full, ConsumersDirectoryName));

        SafeFileHandle lockHandle;
        try
        {
            // FileShare.None takes an exclusive flock on Unix: a second writer would interleave
            // records and corrupt the log.
            lockHandle = File.OpenHandle(Path.Combine(full, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"The event log in '{full}' is already open (by this or another process).", e);
        }
        try
        {
            return new LocalLog(full, options, lockHandle);
        }
        catch
        {
            lockHandle.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Cancellation is honoured only until the records are queued; after that they may still
    /// become durable, as with any write that raced a timeout (consumers dedupe by event id).
    /// </remarks>
    public ValueTask AppendAsync(ulong partitionKey, ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken = default) =>
        EventLogTelemetry.Source.HasListeners()
            ? TracedAppendAsync(records, recordCount, cancellationToken)
            : AppendCore(records, recordCount, cancellationToken);

    private async ValueTask TracedAppendAsync(ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken)
    {
        using var activity = EventLogTelemetry.StartAppend("local");
        activity?.SetTag("analytics.records", recordCount);
        try
        {
            await AppendCore(records, recordCount, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }

    private ValueTask AppendCore(ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken)
    {
        int diskBytes = MeasureRecords(records.Span, recordCount, _options.MaxRecordBytes);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }
        if (recordCount == 0)
        {
            return ValueTask.CompletedTask;
        }
        Task waitForSpace;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (HasRoomFor(diskBytes))
            {
                return Enqueue(records.Span, recordCount, diskBytes);
            }
            waitForSpace = (_drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
        return AppendWhenRoomAsync(records, recordCount, diskBytes, waitForSpace, cancellationToken);
    }

    private async ValueTask AppendWhenRoomAsync(ReadOnlyMemory<byte> records, int recordCount, int diskBytes, Task waitForSpace, CancellationToken cancellationToken)
    {
        while (true)
        {
            await waitForSpace.WaitAsync(cancellationToken).ConfigureAwait(false);
            ValueTask appended;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!HasRoomFor(diskBytes))
                {
                    waitForSpace = (_drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                    continue;
                }
                appended = Enqueue(records.Span, recordCount, diskBytes);
            }
            await appended.ConfigureAwait(false);
            return;
        }
    }

    // An append larger than the limit is still taken when the queue is empty, or it could never go.
    private bool HasRoomFor(int diskBytes) => _pendingLength == 0 || _pendingLength + (long)diskBytes <= _options.MaxPendingBytes;

    /// <summary>
    /// Validates the caller's framing (u32 length prefixes) and returns the on-disk size.
    /// Throws before anything is queued, so a malformed call never leaves half its records.
    /// </summary>
    private static int MeasureRecords(ReadOnlySpan<byte> records, int recordCount, int maxRecordBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(recordCount);
        long diskBytes = 0;
        int position = 0;
        for (int i = 0; i < recordCount; i++)
        {
            if (records.Length - position < 4)
            {
                ThrowMalformed($"records holds {i} complete records, recordCount says {recordCount}.");
            }
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(records[position..]);
            if (length > (uint)maxRecordBytes)
            {
                ThrowMalformed($"record {i} is {length} bytes; the limit is {maxRecordBytes}.");
            }
            if (length > (uint)(records.Length - position - 4))
            {
                ThrowMalformed($"record {i} claims {length} bytes but only {records.Length - position - 4} remain.");
            }
            position += 4 + (int)length;
            diskBytes += SegmentReader.HeaderSize + length;
        }
        if (position != records.Length)
        {
            ThrowMalformed($"{records.Length - position} bytes follow the last of {recordCount} records.");
        }
        if (diskBytes > int.MaxValue / 2)
        {
            ThrowMalformed("one append may not exceed 1 GiB.");
        }
        return (int)diskBytes;
    }

    private static void ThrowMalformed(string detail) =>
        throw new ArgumentException("Malformed records: " + detail, "records");

    /// <summary>Copies one call's records into the shared buffer. Caller holds _gate.</summary>
    private ValueTask Enqueue(ReadOnlySpan<byte> records, int recordCount, int diskBytes)
    {
        EnsurePendingCapacity(_pendingLength + diskBytes);
        var destination = _pending.AsSpan(_pendingLength, diskBytes);
        int source = 0;
        int written = 0;
        for (int i = 0; i < recordCount; i++)
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(records[source..]);
            var payload = records.Slice(source + 4, (int)length);
            BinaryPrimitives.WriteUInt32LittleEndian(destination[written..], length);
            BinaryPrimitives.WriteUInt32LittleEndian(destination[(written + 4)..], Crc32C.ForRecord(length, payload));
            payload.CopyTo(destination[(written + SegmentReader.HeaderSize)..]);
            source += 4 + (int)length;
            written += SegmentReader.HeaderSize + (int)length;
        }
        _pendingLength += diskBytes;

        var waiter = RentWaiter();
        var task = waiter.Task; // the version is read before the writer can complete it (we hold _gate)
        _pendingAppends.Add(new PendingAppend(waiter, _pendingLength, recordCount, Stopwatch.GetTimestamp()));
        if (_writerWaiting)
        {
            Monitor.Pulse(_gate);
        }
        return task;
    }

    private void EnsurePendingCapacity(int required)
    {
        if (required <= _pending.Length)
        {
            return;
        }
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(required, _pending.Length * 2));
        _pending.AsSpan(0, _pendingLength).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_pending);
        _pending = bigger;
    }

    private void WriterLoop()
    {
        try
        {
            while (true)
            {
                int length;
                TaskCompletionSource? drained;
                lock (_gate)
                {
                    while (_pendingLength == 0)
                    {
                        if (_disposed)
                        {
                            return; // everything queued before dispose has been written
                        }
                        _writerWaiting = true;
                        Monitor.Wait(_gate);
                        _writerWaiting = false;
                    }
                    // Double buffering: appenders fill one buffer while this thread writes the other.
                    (_pending, _writing) = (_writing, _pending);
                    (_pendingAppends, _writingAppends) = (_writingAppends, _pendingAppends);
                    length = _pendingLength;
                    _pendingLength = 0;
                    drained = _drained;
                    _drained = null;
                }
                drained?.TrySetResult();
                CommitGroup(length);
                _writingAppends.Clear();
            }
        }
        finally
        {
            TaskCompletionSource? drained;
            lock (_gate)
            {
                drained = _drained;
                _drained = null;
            }
            drained?.TrySetResult();
            _writerDone.TrySetResult();
        }
    }

    /// <summary>
    /// Writes and fsyncs one group (the first <paramref name="length"/> bytes of _writing).
    /// Splits it at append boundaries where the segment must roll; each part is fsynced and
    /// its callers completed before the next part is written. Never throws.
    /// </summary>
    private void CommitGroup(int length)
    {
        var appends = _writingAppends;
        int done = 0;       // appends completed so far
        int chunkStart = 0; // buffer offset of appends[done]
        try
        {
            if (_needsRepair)
            {
                Repair();
            }
            while (done < appends.Count)
            {
                int last = done;
                int chunkEnd = chunkStart;
                long records = 0;
                while (last < appends.Count)
                {
                    int end = appends[last].BufferEnd;
                    bool fits = _writeLength + (end - chunkStart) <= _options.SegmentBytes;
                    // Roll rather than grow a non-empty segment past the limit; an append that
                    // alone exceeds it goes whole into an empty segment (records of one call
                    // stay together).
                    if (!fits && (_writeLength > 0 || last > done))
                    {
                        break;
                    }
                    chunkEnd = end;
                    records += appends[last].RecordCount;
                    last++;
                }
                if (last == done)
                {
                    Roll();
                    continue;
                }

                Inject(LocalLogFaultPoint.Write);
                RandomAccess.Write(_activeHandle, _writing.AsSpan(chunkStart, chunkEnd - chunkStart), _writeLength);
                if (_options.Fsync == FsyncMode.Always)
                {
                    Inject(LocalLogFaultPoint.Flush);
                    long fsyncStarted = Stopwatch.GetTimestamp();
                    FlushToDisk(_activeHandle);
                    EventLogTelemetry.FsyncDuration.Record(Stopwatch.GetElapsedTime(fsyncStarted).TotalSeconds);
                }
                _writeLength += chunkEnd - chunkStart;
                _nextOffset += records;
                Publish();
                EventLogTelemetry.GroupCommitRecords.Record(records);
                bool timed = EventLogTelemetry.AppendDuration.Enabled;
                for (; done < last; done++)
                {
                    if (timed) EventLogTelemetry.AppendDuration.Record(Stopwatch.GetElapsedTime(appends[done].Enqueued).TotalSeconds, EventLogTelemetry.Local);
                    appends[done].Waiter.Succeed();
                }
                chunkStart = chunkEnd;
            }
            System.Diagnostics.Debug.Assert(chunkStart == length);
            if (_failedGroups > 0)
            {
                LogWritesRecovered(Logger, _failedGroups);
                _failedGroups = 0;
            }
        }
        catch (Exception error)
        {
            if (_failedGroups++ == 0) LogWriteFailed(Logger, error, Directory);
            RollBackToDurableEnd();
            for (; done < appends.Count; done++)
            {
                appends[done].Waiter.Fail(new EventLogUnavailableException(
                    "The local event log could not write or fsync; nothing of this append was stored. Retry later.", error));
            }
        }
    }

    /// <summary>
    /// Starts a new segment at _nextOffset. The current one is already fsynced (every part is
    /// fsynced before the next is written), so it is complete on disk before the new file exists.
    /// </summary>
    private void Roll()
    {
        Inject(LocalLogFaultPoint.Roll);
        var segment = new Segment(_nextOffset, Path.Combine(Directory, Segment.FileName(_nextOffset)));
        // Create, not CreateNew: a file with this name can only be left by an earlier roll that
        // failed before it was published, and it holds nothing acknowledged.
        var handle = File.OpenHandle(segment.Path, FileMode.Create, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        try
        {
            if (_options.Fsync == FsyncMode.Always)
            {
                DirectorySync.Flush(Directory); // the new name must survive a crash before records go in
            }
        }
        catch
        {
            handle.Dispose();
            TryDelete(segment.Path);
            throw;
        }

        // Order matters for lock-free readers: seal, then list the new segment, then publish a
        // mark naming it. A reader that sees the mark therefore finds both.
        _active.SealedLength = _writeLength;
        Volatile.Write(ref _segments, [.. _segments, segment]);
        var previous = _activeHandle;
        _active = segment;
        _activeHandle = handle;
        _writeLength = 0;
        Publish();
        previous.Dispose();
    }

    private void Publish()
    {
        Volatile.Write(ref _durable, new DurableMark(_active, _writeLength, _nextOffset));
        Interlocked.Exchange(ref _appendSignal, null)?.TrySetResult();
    }

    /// <summary>After a failed group: forget its bytes and cut the file back to the durable end.</summary>
    private void RollBackToDurableEnd()
    {
        var mark = Durable;
        System.Diagnostics.Debug.Assert(ReferenceEquals(mark.Active, _active));
        _writeLength = mark.ActiveLength;
        _nextOffset = mark.NextOffset;
        try
        {
            Repair();
        }
        catch (Exception)
        {
            // Still failing (disk gone?): the next group retries the truncation first and fails
            // if it cannot. Writes go to explicit offsets from the durable end meanwhile.
        }
    }

    private void Repair()
    {
        _needsRepair = true;
        RandomAccess.SetLength(_activeHandle, _writeLength);
        if (_options.Fsync == FsyncMode.Always)
        {
            FlushToDisk(_activeHandle);
        }
        _needsRepair = false;
    }

    private void FlushToDisk(SafeFileHandle handle)
    {
        RandomAccess.FlushToDisk(handle);
        Interlocked.Increment(ref _fsyncCount);
    }

    private void Inject(LocalLogFaultPoint point)
    {
        if (_fault?.Invoke(point) is { } error)
        {
            throw error;
        }
    }

    /// <summary>Scans the last segment and truncates a torn or corrupt tail. See the class remarks.</summary>
    private static (Segment[] Segments, RecoveryReport Report) Recover(string directory, LocalLogOptions options)
    {
        var segments = new List<Segment>();
        foreach (string path in System.IO.Directory.EnumerateFiles(directory, "*" + Segment.Extension))
        {
            if (Segment.TryParseFileName(Path.GetFileName(path), out long baseOffset))
            {
                segments.Add(new Segment(baseOffset, path));
            }
        }
        segments.Sort((a, b) => a.BaseOffset.CompareTo(b.BaseOffset));
        // An empty segment holds no records; one can be left by a crash right after a roll, or by
        // a roll that failed and could not delete its file. Dropping it keeps the invariant that
        // each segment's name is its first record's offset (a stale empty name could lie).
        bool removed = false;
        for (int i = segments.Count - 1; i >= 0 && segments.Count > 1; i--)
        {
            if (new FileInfo(segments[i].Path).Length == 0)
            {
                File.Delete(segments[i].Path);
                segments.RemoveAt(i);
                removed = true;
            }
        }
        if (removed)
        {
            DirectorySync.Flush(directory);
        }
        if (segments.Count == 0)
        {
            var first = new Segment(0, Path.Combine(directory, Segment.FileName(0)));
            File.OpenHandle(first.Path, FileMode.CreateNew, FileAccess.ReadWrite).Dispose();
            DirectorySync.Flush(directory);
            segments.Add(first);
        }
        for (int i = 0; i < segments.Count - 1; i++)
        {
            // Older segments are trusted by length here and verified record by record when read.
            segments[i].SealedLength = new FileInfo(segments[i].Path).Length;
        }

        var last = segments[^1];
        long fileLength = new FileInfo(last.Path).Length;
        long goodLength;
        long records = 0;
        var damage = TailDamage.None;
        using (var reader = new SegmentReader(options.ConsumerBufferBytes))
        {
            reader.Open(last.Path, 0);
            while (true)
            {
                var status = reader.TryRead(fileLength, mayCompact: true, out _);
                if (status == ReadStatus.Record)
                {
                    records++;
                    continue;
                }
                damage = status switch
                {
                    ReadStatus.End => TailDamage.None,
                    ReadStatus.TornHeader => TailDamage.TornHeader,
                    ReadStatus.TornPayload => TailDamage.TornPayload,
                    ReadStatus.ChecksumMismatch => TailDamage.ChecksumMismatch,
                    _ => throw new InvalidOperationException($"Unexpected {status} during recovery."),
                };
                goodLength = reader.Position;
                break;
            }
        }
        if (goodLength < fileLength)
        {
            using var handle = File.OpenHandle(last.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            RandomAccess.SetLength(handle, goodLength);
            RandomAccess.FlushToDisk(handle);
        }
        var report = new RecoveryReport(segments.Count, last.BaseOffset + records, records, fileLength - goodLength, damage);
        return (segments.ToArray(), report);
    }

    private static void DeleteStaleTempFiles(string consumersDirectory)
    {
        // Left by a crash between writing and renaming an offset file; the old offset stands.
        foreach (string path in System.IO.Directory.EnumerateFiles(consumersDirectory, "*.tmp"))
        {
            TryDelete(path);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The segment holding <paramref name="offset"/> (the last one with BaseOffset ≤ offset), or null.</summary>
    internal Segment? FindSegment(long offset)
    {
        var segments = Volatile.Read(ref _segments);
        int lo = 0, hi = segments.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) / 2);
            if (segments[mid].BaseOffset <= offset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found < 0 ? null : segments[found];
    }

    /// <summary>Base offset of the segment after <paramref name="segment"/>, or null if it is the last.</summary>
    internal long? NextSegmentBase(Segment segment)
    {
        var segments = Volatile.Read(ref _segments);
        int index = Array.IndexOf(segments, segment);
        return index >= 0 && index + 1 < segments.Length ? segments[index + 1].BaseOffset : null;
    }

    /// <inheritdoc />
    /// <remarks>One consumer per group at a time in this process; the group name is a file name.</remarks>
    public IEventLogConsumer OpenConsumer(string group)
    {
        if (string.IsNullOrEmpty(group) || group.Length > 200 || group is "." or ".." || !GroupName().IsMatch(group))
        {
            throw new ArgumentException("A consumer group name is 1-200 characters of A-Z a-z 0-9 . _ -", nameof(group));
        }
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        lock (_openGroups)
        {
            if (!_openGroups.Add(group))
            {
                throw new InvalidOperationException($"Consumer group '{group}' is already open on this log.");
            }
        }
        try
        {
            return new LocalLogConsumer(this, group);
        }
        catch
        {
            ReleaseGroup(group);
            throw;
        }
    }

    internal void ReleaseGroup(string group)
    {
        lock (_openGroups)
        {
            _openGroups.Remove(group);
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex GroupName();

    private AppendWaiter RentWaiter()
    {
        lock (_poolLock)
        {
            if (_waiterPool.TryPop(out var waiter))
            {
                return waiter;
            }
        }
        return new AppendWaiter(_returnWaiter);
    }

    private void ReturnWaiter(AppendWaiter waiter)
    {
        lock (_poolLock)
        {
            if (_waiterPool.Count < MaxPooledWaiters)
            {
                _waiterPool.Push(waiter);
            }
        }
    }

    /// <summary>Writes and fsyncs everything already queued, stops the writer and closes the files.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            Volatile.Write(ref _disposed, true);
            Monitor.Pulse(_gate);
        }
        await _writerDone.Task.ConfigureAwait(false);
        _activeHandle.Dispose();
        ArrayPool<byte>.Shared.Return(_pending);
        ArrayPool<byte>.Shared.Return(_writing);
        // Wake waiting consumers for good; they see the log is disposed.
        Interlocked.Exchange(ref _appendSignal, s_completedSignal)?.TrySetResult();
        _lockHandle.Dispose();
    }

    private static TaskCompletionSource CreateCompletedSignal()
    {
        var signal = new TaskCompletionSource();
        signal.SetResult();
        return signal;
    }

    /// <param name="Enqueued">Stopwatch timestamp of the append's call, for the append latency.</param>
    private readonly record struct PendingAppend(AppendWaiter Waiter, int BufferEnd, int RecordCount, long Enqueued);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Error, Message = "The local event log in {Directory} could not write or fsync; appends are refused (clients retry) until it can")]
    private static partial void LogWriteFailed(ILogger logger, Exception error, string directory);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "The local event log writes again; {Groups} group commits failed meanwhile (none acknowledged)")]
    private static partial void LogWritesRecovered(ILogger logger, long groups);
}
