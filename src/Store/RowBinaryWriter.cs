// Encodes rows in ClickHouse's RowBinary format into one pooled, growable buffer.
//
// Contract: the caller writes each row's columns in the order of the structure string given to
// IColumnStore.InsertRowBinaryAsync, using the method matching each column's type; the writer
// does not know the schema and cannot detect a mismatch (the engine then fails the INSERT or,
// when sizes happen to line up, stores garbage; tests round-trip every type). Encoding is
// little-endian fixed width for numbers, LEB128 length prefixes for String, Array and Map.
// The buffer is rented from ArrayPool and returned on Dispose; WrittenMemory is valid until the
// next write, Reset or Dispose. Not thread-safe.
using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Analytics.Store;

public sealed class RowBinaryWriter : IBufferWriter<byte>, IDisposable
{
    // Strings up to this many chars are encoded in one pass into a worst-case reservation; longer
    // ones are measured first so one huge string cannot reserve 3x its size.
    private const int OnePassStringChars = 16 * 1024;

    private static readonly int UnixEpochDayNumber = DateOnly.FromDateTime(DateTime.UnixEpoch).DayNumber;

    private byte[] _buffer;
    private int _written;

    /// <param name="initialCapacity">Bytes rented up front; 64 KiB holds a few hundred events, and
    /// the pool hands back the same array batch after batch.</param>
    public RowBinaryWriter(int initialCapacity = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(initialCapacity);
        _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);
    }

    public int WrittenCount => _written;
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _written);

    /// <summary>Forgets the written bytes and keeps the buffer for the next batch.</summary>
    public void Reset() => _written = 0;

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        _written = 0;
        if (buffer.Length > 0)
            ArrayPool<byte>.Shared.Return(buffer);
    }

    // ---- IBufferWriter<byte>: lets serializers write straight into the batch ----

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _buffer.Length - _written)
            throw new InvalidOperationException("Advanced past the end of the buffer.");
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(Math.Max(sizeHint, 1));
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(Math.Max(sizeHint, 1));
        return _buffer.AsSpan(_written);
    }

    // ---- numbers ----

    public void WriteUInt8(byte value)
    {
        Ensure(1);
        _buffer[_written++] = value;
    }

    /// <summary>Bool is stored as one byte, 0 or 1.</summary>
    public void WriteBool(bool value) => WriteUInt8(value ? (byte)1 : (byte)0);

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(Reserve(sizeof(ushort)), value);
    }

    public void WriteUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(Reserve(sizeof(uint)), value);
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(Reserve(sizeof(ulong)), value);
    }

    /// <summary>Overwrites the 8 bytes at <paramref name="offset"/> of what was written (a column
    /// whose value is known only once the rows are built, such as a round's write_version).</summary>
    public void OverwriteUInt64(int offset, ulong value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, _written - sizeof(ulong));
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(offset, sizeof(ulong)), value);
    }

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(Reserve(sizeof(int)), value);
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(Reserve(sizeof(long)), value);
    }

    public void WriteFloat64(double value)
    {
        BinaryPrimitives.WriteDoubleLittleEndian(Reserve(sizeof(double)), value);
    }

    /// <summary>LEB128 unsigned varint: the length prefix of String, Array and Map.</summary>
    public void WriteVarUInt(ulong value)
    {
        Ensure(10);
        _written += WriteVarUInt(_buffer.AsSpan(_written), value);
    }

    // ---- strings ----

    /// <summary>String from bytes written as they are (ClickHouse strings are arbitrary bytes).</summary>
    public void WriteString(ReadOnlySpan<byte> value)
    {
        Ensure(10 + value.Length);
        _written += WriteVarUInt(_buffer.AsSpan(_written), (ulong)value.Length);
        value.CopyTo(_buffer.AsSpan(_written));
        _written += value.Length;
    }

    /// <summary>String encoded as UTF-8 straight into the buffer. A null string is written as
    /// the empty string, ClickHouse's convention for an absent value in a non-Nullable column.</summary>
    public void WriteString(string? value) => WriteString(value.AsSpan());

    /// <inheritdoc cref="WriteString(string?)"/>
    public void WriteString(ReadOnlySpan<char> value)
    {
        // Most of a row's strings are short and ASCII (or empty): one length byte, one
        // vectorised narrowing copy. Anything else falls through to the UTF-8 encoder.
        if (value.Length < 0x80)
        {
            Ensure(1 + value.Length);
            if (Ascii.FromUtf16(value, _buffer.AsSpan(_written + 1, value.Length), out _) == OperationStatus.Done)
            {
                _buffer[_written] = (byte)value.Length;
                _written += 1 + value.Length;
                return;
            }
        }
        if (value.Length > OnePassStringChars)
        {
            var exact = Encoding.UTF8.GetByteCount(value);
            Ensure(10 + exact);
            _written += WriteVarUInt(_buffer.AsSpan(_written), (ulong)exact);
            _written += Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_written));
            return;
        }

        // One pass: reserve the varint for the worst case, encode after it, then shift the bytes
        // left if the real length needs a shorter varint. Strings under 42 chars never shift;
        // longer ones shift by one byte at most when they are mostly ASCII.
        var maxBytes = Encoding.UTF8.GetMaxByteCount(value.Length);
        var reservedPrefix = VarUIntLength((ulong)maxBytes);
        Ensure(reservedPrefix + maxBytes);
        var start = _written;
        var length = Encoding.UTF8.GetBytes(value, _buffer.AsSpan(start + reservedPrefix));
        var prefix = VarUIntLength((ulong)length);
        if (prefix != reservedPrefix)
            _buffer.AsSpan(start + reservedPrefix, length).CopyTo(_buffer.AsSpan(start + prefix));
        WriteVarUInt(_buffer.AsSpan(start), (ulong)length);
        _written = start + prefix + length;
    }

    /// <summary>FixedString(N): exactly <paramref name="length"/> bytes, zero-padded.</summary>
    /// <exception cref="ArgumentException">The value is longer than N bytes.</exception>
    public void WriteFixedString(ReadOnlySpan<byte> value, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (value.Length > length)
            throw new ArgumentException($"Value of {value.Length} bytes does not fit FixedString({length}).", nameof(value));
        var span = Reserve(length);
        value.CopyTo(span);
        span[value.Length..].Clear();
    }

    /// <summary>FixedString(N) from text encoded as UTF-8, zero-padded.</summary>
    public void WriteFixedString(ReadOnlySpan<char> value, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        Ensure(length);
        var span = _buffer.AsSpan(_written, length);
        if (!Encoding.UTF8.TryGetBytes(value, span, out var written))
            throw new ArgumentException($"Value does not fit FixedString({length}) as UTF-8.", nameof(value));
        span[written..].Clear();
        _written += length;
    }

    // ---- dates and ids ----

    /// <summary>DateTime64(3): milliseconds since the Unix epoch (UTC).</summary>
    public void WriteDateTime64Milliseconds(long unixMilliseconds) => WriteInt64(unixMilliseconds);

    /// <summary>DateTime64(3) from an instant; sub-millisecond ticks are truncated.</summary>
    public void WriteDateTime64Milliseconds(DateTimeOffset value) => WriteInt64(value.ToUnixTimeMilliseconds());

    /// <summary>DateTime: seconds since the Unix epoch as UInt32 (1970 … 2106).</summary>
    public void WriteDateTime(DateTimeOffset value)
    {
        var seconds = value.ToUnixTimeSeconds();
        if ((ulong)seconds > uint.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(value), value, "DateTime holds 1970-01-01 … 2106-02-07 UTC.");
        WriteUInt32((uint)seconds);
    }

    /// <summary>Date: days since 1970-01-01 as UInt16 (1970-01-01 … 2149-06-06).</summary>
    public void WriteDate(DateOnly value)
    {
        var days = value.DayNumber - UnixEpochDayNumber;
        if ((uint)days > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(value), value, "Date holds 1970-01-01 … 2149-06-06.");
        WriteUInt16((ushort)days);
    }

    /// <summary>UUID: ClickHouse stores it as two little-endian UInt64 halves, the half holding
    /// the first 8 bytes of the canonical text form first.</summary>
    public void WriteUuid(Guid value)
    {
        Span<byte> canonical = stackalloc byte[16];
        value.TryWriteBytes(canonical, bigEndian: true, out _);
        var span = Reserve(16);
        BinaryPrimitives.WriteUInt64LittleEndian(span, BinaryPrimitives.ReadUInt64BigEndian(canonical));
        BinaryPrimitives.WriteUInt64LittleEndian(span[8..], BinaryPrimitives.ReadUInt64BigEndian(canonical[8..]));
    }

    // ---- containers ----

    /// <summary>Array(T) header: the element count; write the elements after it.</summary>
    public void WriteArrayHeader(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        WriteVarUInt((ulong)count);
    }

    /// <summary>Array(String).</summary>
    public void WriteStringArray(ReadOnlySpan<string> values)
    {
        WriteVarUInt((ulong)values.Length);
        foreach (var value in values)
            WriteString(value);
    }

    /// <summary>Map(K, V) header: the pair count; write key, value, key, value… after it.</summary>
    public void WriteMapHeader(int count) => WriteArrayHeader(count);

    /// <summary>Map(String, String).</summary>
    public void WriteStringMap(ReadOnlySpan<KeyValuePair<string, string>> pairs)
    {
        WriteVarUInt((ulong)pairs.Length);
        foreach (var (key, value) in pairs)
        {
            WriteString(key);
            WriteString(value);
        }
    }

    /// <summary>Map(String, String) from a dictionary (its struct enumerator does not allocate).</summary>
    public void WriteStringMap(Dictionary<string, string> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        WriteVarUInt((ulong)pairs.Count);
        foreach (var (key, value) in pairs)
        {
            WriteString(key);
            WriteString(value);
        }
    }

    // ---- buffer management ----

    public static int VarUIntLength(ulong value)
    {
        // 7 payload bits per byte; value | 1 keeps LeadingZeroCount below 64 for value 0.
        var bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(value | 1);
        return (bits + 6) / 7;
    }

    private static int WriteVarUInt(Span<byte> destination, ulong value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }
        destination[i++] = (byte)value;
        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Span<byte> Reserve(int size)
    {
        Ensure(size);
        var span = _buffer.AsSpan(_written, size);
        _written += size;
        return span;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Ensure(int size)
    {
        if (_buffer.Length - _written < size)
            Grow(size);
    }

    private void Grow(int size)
    {
        var needed = (long)_written + size;
        if (needed > Array.MaxLength)
            throw new InvalidOperationException($"RowBinary batch would exceed {Array.MaxLength} bytes; flush smaller batches.");
        var newSize = (int)Math.Min(Math.Max(needed, (long)_buffer.Length * 2), Array.MaxLength);
        var bigger = ArrayPool<byte>.Shared.Rent(newSize);
        _buffer.AsSpan(0, _written).CopyTo(bigger);
        var old = _buffer;
        _buffer = bigger;
        if (old.Length > 0)
            ArrayPool<byte>.Shared.Return(old);
    }
}
