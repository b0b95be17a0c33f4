using System.Diagnostics;
using System.Globalization;
using Analytics.EventLog.Local;

namespace Analytics.EventLog;

/// <summary>
/// Reads a <see cref="LocalLog"/> for one consumer group, straight from the segment files with its
/// own handle and buffer. It never reads past the log's durable mark, so it only ever sees records
/// whose fsync returned. Waiting for new records is a signal from the writer, not polling.
/// Committed positions: <c>DIR/consumers/GROUP.offset</c>, the next offset to read as decimal
/// text, replaced atomically. Not thread-safe except <see cref="Lag"/>.
/// A batch's record list and payload memory are reused by the next ReadAsync (the interface's
/// "valid until the next call"), so steady reading allocates one small LogBatch per call.
/// </summary>
internal sealed class LocalLogConsumer : IEventLogConsumer
{
    // Task.Delay's limit is ~49 days; anything this long means "wait until something arrives".
    private static readonly TimeSpan s_maxSingleWait = TimeSpan.FromDays(1);

    private readonly LocalLog _log;
    private readonly string _group;
    private readonly string _offsetPath;
    private readonly string _tempPath;
    private readonly SegmentReader _reader;
    private readonly List<ReadOnlyMemory<byte>> _records = [];
    private Segment _segment;
    private long _segmentEndOffset = -1; // base of the next segment, once _segment is sealed
    private long _position;              // offset of the next record to return
    private long _committed;
    private bool _resumed = true; // until the first non-empty batch
    private bool _disposed;

    public LocalLogConsumer(LocalLog log, string group)
    {
        _log = log;
        _group = group;
        _offsetPath = Path.Combine(log.ConsumersDirectory, group + ".offset");
        _tempPath = _offsetPath + ".tmp";
        _reader = new SegmentReader(log.Options.ConsumerBufferBytes);
        try
        {
            _committed = ReadCommittedOffset();
            _segment = Seek(_committed);
        }
        catch
        {
            _reader.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public long Lag => Math.Max(0, _log.NextOffset - Volatile.Read(ref _committed));

    /// <inheritdoc />
    public IReadOnlyList<KeyValuePair<string, long>> LagBySource => [new(LocalLog.SourceName, Lag)];

    /// <inheritdoc />
    /// <remarks>
    /// A <paramref name="maxWait"/> of zero or less returns at once;
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits until a record arrives or the token fires.
    /// </remarks>
    public ValueTask<LogBatch> ReadAsync(int maxRecords, TimeSpan maxWait, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<LogBatch>(cancellationToken);
        }
        // Synchronous fast path: durable records are usually in the page cache already.
        var batch = ReadAvailable(maxRecords);
        if (batch is not null)
        {
            return new ValueTask<LogBatch>(batch);
        }
        return maxWait <= TimeSpan.Zero && maxWait != Timeout.InfiniteTimeSpan ? new ValueTask<LogBatch>(EmptyBatch()) : WaitAndReadAsync(maxRecords, maxWait, cancellationToken);
    }

    private async ValueTask<LogBatch> WaitAndReadAsync(int maxRecords, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            // Take the signal before looking: an append published in between completes it.
            var signal = _log.AppendSignal;
            var batch = ReadAvailable(maxRecords);
            if (batch is not null)
            {
                return batch;
            }
            ThrowIfDisposed();
            var remaining = maxWait == Timeout.InfiniteTimeSpan ? s_maxSingleWait : maxWait - Stopwatch.GetElapsedTime(start);
            if (remaining <= TimeSpan.Zero)
            {
                return EmptyBatch();
            }
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                var delay = Task.Delay(remaining < s_maxSingleWait ? remaining : s_maxSingleWait, timeout.Token);
                await Task.WhenAny(signal, delay).ConfigureAwait(false);
                timeout.Cancel(); // stop the timer now rather than leave it pending until maxWait
            }
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Reads what is durable now, or returns null if nothing is.</summary>
    private LogBatch? ReadAvailable(int maxRecords)
    {
        var mark = _log.Durable;
        if (_position >= mark.NextOffset)
        {
            return null;
        }
        _reader.Compact(); // releases the previous batch's memory, as the interface allows
        long first = _position;
        var records = _records;
        records.Clear();
        while (records.Count < maxRecords && _position < mark.NextOffset)
        {
            var status = _reader.TryRead(ReadableEnd(mark), mayCompact: records.Count == 0, out var payload);
            if (status == ReadStatus.Record)
            {
                CheckInsideSegment();
                records.Add(payload);
                _position++;
            }
            else if (status == ReadStatus.End)
            {
                NextSegment();
            }
            else if (status == ReadStatus.BufferFull)
            {
                break; // the batch holds a buffer's worth; the rest comes next call
            }
            else
            {
                throw Corrupt(status);
            }
        }
        var batch = new LogBatch(records, first, _position, LocalLog.SourceName, _resumed && records.Count > 0);
        if (records.Count > 0) _resumed = false;
        return batch;
    }

    /// <summary>Durable bytes of the current segment: the mark's length if active, else all of it.</summary>
    private long ReadableEnd(DurableMark mark) =>
        ReferenceEquals(_segment, mark.Active) ? mark.ActiveLength : _segment.SealedLength;

    private Segment Seek(long offset)
    {
        var mark = _log.Durable;
        if (offset > mark.NextOffset)
        {
            throw new InvalidDataException(
                $"Committed offset {offset} of group '{_group}' is past the end of the log ({mark.NextOffset}): " +
                $"acknowledged records are missing (FsyncMode.Never and an OS crash?) or '{_offsetPath}' belongs to another log.");
        }
        _segment = _log.FindSegment(offset) ?? throw new InvalidDataException(
            $"Committed offset {offset} of group '{_group}' is before the first segment: segment files are missing.");
        _reader.Open(_segment.Path, 0);
        _position = _segment.BaseOffset;
        // No offset index (see LocalLog): walk the segment's records up to the offset, once.
        while (_position < offset)
        {
            var status = _reader.TryRead(ReadableEnd(mark), mayCompact: true, out _);
            if (status == ReadStatus.Record)
            {
                CheckInsideSegment();
                _position++;
            }
            else if (status == ReadStatus.End)
            {
                NextSegment();
            }
            else
            {
                throw Corrupt(status);
            }
        }
        return _segment;
    }

    /// <summary>The current segment is exhausted: continue in the one that starts at _position.</summary>
    private void NextSegment()
    {
        var next = _log.FindSegment(_position);
        if (next is null || ReferenceEquals(next, _segment) || next.BaseOffset != _position)
        {
            throw new InvalidDataException(
                $"Segment '{_segment.Path}' ends after offset {_position - 1}, but the next segment starts at " +
                $"{(next is null || ReferenceEquals(next, _segment) ? "none" : next.BaseOffset)}: records are missing.");
        }
        _segment = next;
        _segmentEndOffset = -1;
        _reader.Open(next.Path, 0);
    }

    /// <summary>A sealed segment holding more records than its successor's name allows is damaged.</summary>
    private void CheckInsideSegment()
    {
        if (_segmentEndOffset < 0 && _segment.SealedLength >= 0)
        {
            _segmentEndOffset = _log.NextSegmentBase(_segment) ?? long.MaxValue;
        }
        if (_segmentEndOffset >= 0 && _position >= _segmentEndOffset)
        {
            throw new InvalidDataException(
                $"Segment '{_segment.Path}' holds more records than the next segment's name ({_segmentEndOffset}) allows.");
        }
    }

    private InvalidDataException Corrupt(ReadStatus status) => new(
        $"Segment '{_segment.Path}' is damaged at byte {_reader.Position} (offset {_position}): {status}. " +
        "These records were acknowledged as durable; the log refuses to skip them silently.");

    /// <inheritdoc />
    public ValueTask CommitAsync(LogBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        if (batch.Source != LocalLog.SourceName)
        {
            throw new ArgumentException($"The batch comes from '{batch.Source}', not from this log.", nameof(batch));
        }
        if (batch.NextOffset < 0 || batch.NextOffset > _log.NextOffset)
        {
            throw new ArgumentOutOfRangeException(nameof(batch), $"NextOffset {batch.NextOffset} is outside the log (0..{_log.NextOffset}).");
        }
        if (batch.NextOffset != _committed) // empty batches cost no fsync
        {
            WriteCommittedOffset(batch.NextOffset);
            Volatile.Write(ref _committed, batch.NextOffset);
        }
        return ValueTask.CompletedTask;
    }

    private long ReadCommittedOffset()
    {
        if (!File.Exists(_offsetPath))
        {
            return 0;
        }
        string text = File.ReadAllText(_offsetPath).Trim();
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long offset))
        {
            throw new InvalidDataException($"'{_offsetPath}' does not hold an offset: '{text}'.");
        }
        return offset;
    }

    /// <summary>Temp file, fsync, rename over, fsync directory: the file is always old or new, never torn.</summary>
    private void WriteCommittedOffset(long offset)
    {
        Span<byte> text = stackalloc byte[24];
        offset.TryFormat(text, out int length, default, CultureInfo.InvariantCulture);
        text[length++] = (byte)'\n';
        using (var handle = File.OpenHandle(_tempPath, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            RandomAccess.Write(handle, text[..length], 0);
            RandomAccess.FlushToDisk(handle);
        }
        File.Move(_tempPath, _offsetPath, overwrite: true);
        DirectorySync.Flush(_log.ConsumersDirectory);
    }

    private LogBatch EmptyBatch() => new([], _position, _position, LocalLog.SourceName);

    private void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ObjectDisposedException.ThrowIf(_log.IsDisposed, _log);
    }

    public ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            _reader.Dispose();
            _log.ReleaseGroup(_group);
        }
        return ValueTask.CompletedTask;
    }
}
