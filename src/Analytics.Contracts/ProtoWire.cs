using System.Runtime.CompilerServices;

namespace Analytics.Contracts;

/// <summary>
/// Protocol-buffer wire primitives over a span. Written by hand because the hot path must read
/// fields as spans of the receive buffer (Google.Protobuf materialises every string and message
/// object). Behaviour follows Google.Protobuf's CodedInputStream, which the tests check it
/// against: truncated input, varints over 10 bytes, field number 0, wire types 6 and 7,
/// negative or overlong lengths and unbalanced groups are malformed; fields whose number or wire
/// type we do not know are skipped, as proto3 requires for forward compatibility.
/// Shared by every hand-written codec (FastIngest's readers and writers, the Kafka log's Avro
/// transcoder) so there is one wire reader to test and fuzz.
/// </summary>
public static class ProtoWire
{
    public const int WireVarint = 0;
    public const int WireFixed64 = 1;
    public const int WireLengthDelimited = 2;
    public const int WireStartGroup = 3;
    public const int WireEndGroup = 4;
    public const int WireFixed32 = 5;

    /// <summary>Google.Protobuf's default recursion limit, applied to nested unknown groups.</summary>
    private const int MaxGroupDepth = 100;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryReadVarint(ReadOnlySpan<byte> buffer, scoped ref int pos, out ulong value)
    {
        // Fast path: one-byte varints (tags, small lengths, small numbers) are the common case.
        if ((uint)pos < (uint)buffer.Length && buffer[pos] < 0x80)
        {
            value = buffer[pos++];
            return true;
        }
        return TryReadVarintSlow(buffer, ref pos, out value);
    }

    private static bool TryReadVarintSlow(ReadOnlySpan<byte> buffer, scoped ref int pos, out ulong value)
    {
        value = 0;
        int shift = 0;
        for (int i = 0; i < 10; i++)
        {
            if ((uint)pos >= (uint)buffer.Length) return false;
            byte b = buffer[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return true;
            shift += 7;
        }
        return false; // more than 10 bytes
    }

    /// <summary>Reads a tag; false on truncation, an overlong varint or field number 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryReadTag(ReadOnlySpan<byte> buffer, scoped ref int pos, out int fieldNumber, out int wireType)
    {
        fieldNumber = 0;
        wireType = 0;
        if (!TryReadVarint(buffer, ref pos, out ulong tag)) return false;
        // Google.Protobuf reads tags as 32-bit varints: upper bits beyond 32 are dropped.
        uint tag32 = (uint)tag;
        fieldNumber = (int)(tag32 >> 3);
        wireType = (int)(tag32 & 7);
        return fieldNumber != 0;
    }

    /// <summary>Reads a length-delimited payload as a slice of the buffer (no copy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryReadLengthDelimited(ReadOnlySpan<byte> buffer, scoped ref int pos, out ReadOnlySpan<byte> payload)
    {
        payload = default;
        if (!TryReadVarint(buffer, ref pos, out ulong length)) return false;
        // Lengths are 32-bit signed on the wire in Google.Protobuf: a "negative" length is malformed.
        if ((uint)length > int.MaxValue || length > (ulong)(buffer.Length - pos)) return false;
        payload = buffer.Slice(pos, (int)length);
        pos += (int)length;
        return true;
    }

    /// <summary>Skips a field whose tag was just read. False when the field is malformed.</summary>
    public static bool TrySkipField(ReadOnlySpan<byte> buffer, scoped ref int pos, int fieldNumber, int wireType)
    {
        switch (wireType)
        {
            case WireVarint:
                return TryReadVarint(buffer, ref pos, out _);
            case WireFixed64:
                if (buffer.Length - pos < 8) return false;
                pos += 8;
                return true;
            case WireLengthDelimited:
                return TryReadLengthDelimited(buffer, ref pos, out _);
            case WireFixed32:
                if (buffer.Length - pos < 4) return false;
                pos += 4;
                return true;
            case WireStartGroup:
                return TrySkipGroup(buffer, ref pos, fieldNumber);
            default:
                return false; // a stray end-group, or wire types 6 and 7
        }
    }

    private static bool TrySkipGroup(ReadOnlySpan<byte> buffer, scoped ref int pos, int groupFieldNumber)
    {
        // Iterative, with an explicit stack of open group numbers, so hostile nesting cannot
        // overflow the thread's stack.
        Span<int> open = stackalloc int[MaxGroupDepth];
        int depth = 0;
        open[depth++] = groupFieldNumber;
        while (depth > 0)
        {
            if (!TryReadTag(buffer, ref pos, out int field, out int wire)) return false;
            if (wire == WireEndGroup)
            {
                if (open[depth - 1] != field) return false;
                depth--;
            }
            else if (wire == WireStartGroup)
            {
                if (depth == MaxGroupDepth) return false;
                open[depth++] = field;
            }
            else if (!TrySkipField(buffer, ref pos, field, wire))
            {
                return false;
            }
        }
        return true;
    }

    public static int VarintSize(ulong value) => value < 0x80 ? 1 : (70 - System.Numerics.BitOperations.LeadingZeroCount(value | 1)) / 7;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int WriteVarint(Span<byte> destination, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }
        destination[i++] = (byte)value;
        return i;
    }
}
