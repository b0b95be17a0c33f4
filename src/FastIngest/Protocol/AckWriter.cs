using Analytics.Contracts;
using Analytics.Contracts.V1;

namespace Analytics.FastIngest.Protocol;

/// <summary>Encodes <c>analytics.v1.Ack</c> by hand into a reusable buffer (one per connection).</summary>
internal static class AckWriter
{
    /// <summary>Upper bound: fixed fields plus at most 14 bytes per rejection.</summary>
    public static int MaxEncodedSize(int rejectionCount) => 72 + rejectionCount * 14;

    public static int Write(Span<byte> destination, ulong seq, AckStatus status, int accepted, ReadOnlySpan<Rejected> rejections, uint retryAfterMs, RetryReason retryReason = RetryReason.Unspecified)
    {
        int p = 0;
        p += Varint(destination[p..], 1, seq);
        p += Varint(destination[p..], 2, (ulong)status);
        p += Varint(destination[p..], 3, (ulong)accepted);
        p += Varint(destination[p..], 4, (ulong)rejections.Length);
        foreach (var r in rejections)
        {
            int inner = (r.Index == 0 ? 0 : 1 + ProtoWire.VarintSize((ulong)r.Index)) + 1 + ProtoWire.VarintSize((ulong)r.Reason);
            destination[p++] = (5 << 3) | ProtoWire.WireLengthDelimited;
            p += ProtoWire.WriteVarint(destination[p..], (ulong)inner);
            p += Varint(destination[p..], 1, (ulong)r.Index);
            p += Varint(destination[p..], 2, (ulong)r.Reason);
        }
        p += Varint(destination[p..], 6, retryAfterMs);
        p += Varint(destination[p..], 7, (ulong)retryReason);
        return p;
    }

    private static int Varint(Span<byte> destination, int field, ulong value)
    {
        if (value == 0) return 0;
        destination[0] = (byte)((field << 3) | ProtoWire.WireVarint);
        return 1 + ProtoWire.WriteVarint(destination[1..], value);
    }
}

internal readonly record struct Rejected(int Index, RejectionReason Reason);
