// Decodes rows in ClickHouse's RowBinary format (a query's output with FORMAT RowBinary), the
// mirror of RowBinaryWriter.
//
// Contract: the caller reads each row's columns in the order of the query's SELECT list with the
// method matching each column's type; RowBinary carries no schema, so a mismatch is not detected
// until the bytes run out: the reader then throws InvalidDataException, and never reads past its
// span. Numbers are little-endian fixed width; String, Array and Map lengths are
// LEB128 varints; a Map(String, String) is its pair count then key, value, key, value.
// Strings are decoded as UTF-8 (invalid sequences become U+FFFD, as System.Text.Json does for the
// JSON output of the same column), so text read here equals text read through QueryRowsAsync.
// Why it exists: reprocessing reads every raw row of a site-day back; as JSONCompact that cost
// ~15 % of a rebuild (the engine formats and escapes every string, .NET parses it into a
// document), RowBinary is a copy of the column bytes.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace Analytics.Store;

/// <summary>A forward-only cursor over RowBinary bytes; see the file header.</summary>
public ref struct RowBinaryReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    /// <summary>True once every byte has been read: no more rows.</summary>
    public readonly bool End => _position >= _data.Length;

    public byte ReadUInt8() => Take(1)[0];

    public bool ReadBool() => ReadUInt8() != 0;

    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(sizeof(ushort)));

    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(sizeof(uint)));

    public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(sizeof(ulong)));

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(sizeof(long)));

    /// <summary>DateTime64(3): milliseconds since the Unix epoch.</summary>
    public long ReadDateTime64Milliseconds() => ReadInt64();

    /// <summary>LEB128 unsigned varint: the length prefix of String, Array and Map.</summary>
    public ulong ReadVarUInt()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = ReadUInt8();
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new InvalidDataException("RowBinary: a varint longer than 10 bytes.");
    }

    /// <summary>A String column's bytes, without copying (valid as long as the data is).</summary>
    public ReadOnlySpan<byte> ReadStringBytes()
    {
        ulong length = ReadVarUInt();
        if (length > (ulong)(_data.Length - _position)) ThrowTruncated();
        return Take((int)length);
    }

    public string ReadString()
    {
        var bytes = ReadStringBytes();
        return bytes.IsEmpty ? "" : Encoding.UTF8.GetString(bytes);
    }

    /// <summary>A FixedString(<paramref name="length"/>) column as a new array.</summary>
    public byte[] ReadFixedString(int length) => Take(length).ToArray();

    /// <summary>A Map(String, String) column, pairs in the order the engine wrote them.</summary>
    public List<KeyValuePair<string, string>> ReadStringMap()
    {
        ulong count = ReadVarUInt();
        // Each pair takes at least two bytes (two empty strings): a count beyond that is corrupt
        // input, refused before it sizes a list.
        if (count > (ulong)(_data.Length - _position) / 2) ThrowTruncated();
        var pairs = new List<KeyValuePair<string, string>>((int)count);
        for (ulong i = 0; i < count; i++)
        {
            string key = ReadString();
            pairs.Add(KeyValuePair.Create(key, ReadString()));
        }
        return pairs;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position) ThrowTruncated();
        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }

    private static void ThrowTruncated() =>
        throw new InvalidDataException("RowBinary: the data ends inside a value (the columns read do not match the query's).");
}
