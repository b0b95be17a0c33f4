using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace Analytics.EventLog.Local;

internal enum ReadStatus
{
    /// <summary>A whole, checksum-valid record was returned.</summary>
    Record,
    /// <summary>The readable limit was reached exactly at a record boundary.</summary>
    End,
    /// <summary>Fewer than 8 bytes remain before the limit.</summary>
    TornHeader,
    /// <summary>The header's length runs past the limit.</summary>
    TornPayload,
    /// <summary>The stored CRC does not match the length and payload.</summary>
    ChecksumMismatch,
    /// <summary>The record does not fit behind records the caller still holds; return them first.</summary>
    BufferFull,
}

/// <summary>
/// Sequential record parser over one segment file at a time, reading in large chunks through
/// one reusable buffer. Returned payloads are slices of that buffer: they stay valid until
/// <see cref="Compact"/> or a read with <c>mayCompact: true</c>. Reads never go past the caller's
/// limit, which is how consumers see only durable bytes. Not thread-safe.
/// </summary>
internal sealed class SegmentReader : IDisposable
{
    public const int HeaderSize = 8;

    private SafeFileHandle? _handle;
    private byte[] _buffer;
    private int _start;        // first unparsed byte in _buffer
    private int _end;          // end of valid bytes in _buffer
    private long _fileReadPos; // file offset that _buffer[_end] corresponds to

    public SegmentReader(int bufferSize) => _buffer = new byte[Math.Max(bufferSize, 4096)];

    /// <summary>File offset of the next unparsed record.</summary>
    public long Position => _fileReadPos - (_end - _start);

    public string? Path { get; private set; }

    /// <summary>
    /// Switches to another file. Only at a record boundary with nothing buffered, so payloads
    /// already handed out (earlier in the buffer) stay intact.
    /// </summary>
    public void Open(string path, long filePosition)
    {
        if (_start != _end)
        {
            throw new InvalidOperationException("Cannot switch segments with unparsed bytes buffered.");
        }
        _handle?.Dispose();
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        Path = path;
        _fileReadPos = filePosition;
    }

    /// <summary>Moves unparsed bytes to the front; invalidates every payload returned so far.</summary>
    public void Compact()
    {
        int pending = _end - _start;
        if (_start > 0 && pending > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
        }
        _start = 0;
        _end = pending;
    }

    public ReadStatus TryRead(long limit, bool mayCompact, out ReadOnlyMemory<byte> payload)
    {
        payload = default;
        long remaining = limit - Position;
        if (remaining <= 0)
        {
            return ReadStatus.End;
        }
        if (remaining < HeaderSize)
        {
            return ReadStatus.TornHeader;
        }
        if (!Ensure(HeaderSize, limit, mayCompact))
        {
            return ReadStatus.BufferFull;
        }
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_start));
        uint storedCrc = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_start + 4));
        if (length > remaining - HeaderSize || length > int.MaxValue - HeaderSize)
        {
            return ReadStatus.TornPayload;
        }
        int total = HeaderSize + (int)length;
        if (!Ensure(total, limit, mayCompact))
        {
            return ReadStatus.BufferFull;
        }
        var body = _buffer.AsMemory(_start + HeaderSize, (int)length);
        if (Crc32C.ForRecord(length, body.Span) != storedCrc)
        {
            return ReadStatus.ChecksumMismatch;
        }
        payload = body;
        _start += total;
        return ReadStatus.Record;
    }

    /// <summary>Makes at least <paramref name="count"/> unparsed bytes available.</summary>
    private bool Ensure(int count, long limit, bool mayCompact)
    {
        if (_end - _start >= count)
        {
            return true;
        }
        if (_buffer.Length - _start < count)
        {
            if (!mayCompact)
            {
                return false;
            }
            if (_buffer.Length < count)
            {
                // A record larger than the buffer: grow rather than fail. Not pooled, because
                // payload slices of the old array may still be referenced by the caller.
                var bigger = new byte[Math.Max(count, _buffer.Length * 2)];
                Buffer.BlockCopy(_buffer, _start, bigger, 0, _end - _start);
                _end -= _start;
                _start = 0;
                _buffer = bigger;
            }
            else
            {
                Compact();
            }
        }
        var handle = _handle ?? throw new InvalidOperationException("No segment open.");
        while (_end - _start < count)
        {
            // Read as far as the buffer and the limit allow: few large reads, not one per record.
            int toRead = (int)Math.Min(_buffer.Length - _end, limit - _fileReadPos);
            int read = toRead > 0 ? RandomAccess.Read(handle, _buffer.AsSpan(_end, toRead), _fileReadPos) : 0;
            if (read == 0)
            {
                throw new InvalidDataException(
                    $"Segment '{Path}' ends at byte {_fileReadPos}, before the {limit} bytes the log knows it holds.");
            }
            _end += read;
            _fileReadPos += read;
        }
        return true;
    }

    public void Dispose()
    {
        _handle?.Dispose();
        _handle = null;
    }
}
