using System.Buffers.Binary;
using Analytics.Contracts;
using Analytics.FastIngest.Enrichment;

namespace Analytics.FastIngest.Protocol;

/// <summary>
/// Encodes <c>analytics.internal.v1.StoredEvent</c> (schemas/stored_event.proto) straight from
/// the received event's spans into a reusable buffer: the bytes of url, referrer, properties
/// and so on are copied once, from the socket buffer to the log record, and never become
/// strings. Tests decode the output with the Google.Protobuf-generated type.
/// </summary>
internal static class StoredEventWriter
{
    /// <summary>Upper bound of the encoded size, to size the buffer before writing.</summary>
    public static int MaxEncodedSize(int eventBytes, ClientInfo client) =>
        eventBytes + client.UserAgentUtf8.Length + client.IpPrefixUtf8.Length + client.ClientHintBytes + 96 + TraceFieldBytes;

    // Field 22's two-byte tag, a one-byte length and the 25-byte binary trace context.
    private const int TraceFieldBytes = 2 + 1 + IngestTelemetry.TraceContextBytes;

    public readonly record struct Enrichment(ulong MerchantId, ulong SiteId, long ReceivedMs, ulong VisitorId, ClientInfo Client)
    {
        /// <summary>The batch span's context (25 bytes) when the batch is traced; empty otherwise.</summary>
        public ReadOnlyMemory<byte> TraceContext { get; init; }
    }

    /// <summary>Writes the record into <paramref name="destination"/>; returns the bytes written.</summary>
    public static int Write(Span<byte> destination, in EventView e, in Enrichment x)
    {
        int p = 0;
        p += WriteBytes(destination[p..], 1, e.Id);
        p += WriteVarintField(destination[p..], 2, x.MerchantId);
        p += WriteVarintField(destination[p..], 3, x.SiteId);
        p += WriteVarintField(destination[p..], 4, (ulong)x.ReceivedMs);
        p += WriteVarintField(destination[p..], 5, (ulong)e.ClientTimeMs);
        p += WriteBytes(destination[p..], 6, e.Name);
        p += WriteBytes(destination[p..], 7, e.Url);
        p += WriteBytes(destination[p..], 8, e.Referrer);
        if (e.PropertyCount > 0)
        {
            foreach (var prop in e.GetProperties())
            {
                int inner = FieldSize(prop.Key) + FieldSize(prop.Value);
                destination[p++] = (9 << 3) | ProtoWire.WireLengthDelimited;
                p += ProtoWire.WriteVarint(destination[p..], (ulong)inner);
                p += WriteBytes(destination[p..], 1, prop.Key);
                p += WriteBytes(destination[p..], 2, prop.Value);
            }
        }
        p += WriteVarintField(destination[p..], 10, (ulong)e.RevenueMicros);
        p += WriteBytes(destination[p..], 11, e.Currency);
        p += WriteVarintField(destination[p..], 12, e.ScreenWidth);
        p += WriteVarintField(destination[p..], 13, e.EngagementMs);
        destination[p++] = (14 << 3) | ProtoWire.WireFixed64;
        BinaryPrimitives.WriteUInt64LittleEndian(destination[p..], x.VisitorId);
        p += 8;
        p += WriteBytes(destination[p..], 15, x.Client.IpPrefixUtf8);
        p += WriteBytes(destination[p..], 16, x.Client.UserAgentUtf8);
        p += WriteBytes(destination[p..], 18, x.Client.ChUaMobileUtf8);
        p += WriteBytes(destination[p..], 19, x.Client.ChUaPlatformUtf8);
        p += WriteBytes(destination[p..], 20, x.Client.ChUaModelUtf8);
        p += WriteBytes(destination[p..], 21, x.Client.ChUaFormFactorsUtf8);
        p += WriteBytes(destination[p..], 22, x.TraceContext.Span);
        return p;
    }

    // Property fields are 1 and 2: one-byte tags.
    private static int FieldSize(ReadOnlySpan<byte> value) =>
        value.IsEmpty ? 0 : 1 + ProtoWire.VarintSize((ulong)value.Length) + value.Length;

    private static int WriteBytes(Span<byte> destination, int field, ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty) return 0; // proto3: empty strings are not written
        // Tags of fields 16 and up take two bytes.
        int n = ProtoWire.WriteVarint(destination, (ulong)((field << 3) | ProtoWire.WireLengthDelimited));
        n += ProtoWire.WriteVarint(destination[n..], (ulong)value.Length);
        value.CopyTo(destination[n..]);
        return n + value.Length;
    }

    private static int WriteVarintField(Span<byte> destination, int field, ulong value)
    {
        if (value == 0) return 0;
        destination[0] = (byte)((field << 3) | ProtoWire.WireVarint);
        return 1 + ProtoWire.WriteVarint(destination[1..], value);
    }
}
