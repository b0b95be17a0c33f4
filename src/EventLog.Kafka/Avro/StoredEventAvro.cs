using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Unicode;
using Analytics.Contracts;
using Analytics.Contracts.Internal;
using Google.Protobuf;

namespace Analytics.EventLog.Kafka.Avro;

/// <summary>
/// The Kafka log's record codec: <c>analytics.internal.v1.StoredEvent</c> protobuf (what
/// FastIngest writes) to Avro binary for schemas/avro/stored_event.avsc (what Kafka Connect,
/// Spark and ksqlDB read), and back.
/// <para>
/// Contract: <see cref="Transcode"/> writes the fields in schema order whatever order the
/// protobuf has them in, applies proto3 rules (a missing field is its default, the last
/// occurrence of a scalar wins, unknown fields are skipped) and rejects what Google.Protobuf
/// would reject, plus two things the Avro schema cannot carry: an id that is neither absent nor
/// 16 bytes, and strings that are not UTF-8. <see cref="Decode"/> is its inverse; an absent id
/// travels as 16 zero bytes and comes back absent (a random 128-bit id is never all zeros).
/// </para>
/// <para>
/// Hand-written rather than Apache.Avro's <c>GenericDatumWriter</c> because Transcode runs once
/// per event on the produce path and must not allocate: the generic writer needs a parsed
/// StoredEvent plus a GenericRecord, boxed longs and a string per field for every event. Here
/// the protobuf is read as spans and its UTF-8 bytes are copied straight to the Avro output.
/// The tests check both directions against Apache.Avro's generic reader and writer.
/// </para>
/// </summary>
internal static class StoredEventAvro
{
    public const int IdBytes = 16;
    public const int VisitorIdBytes = 8;

    // Field numbers of schemas/stored_event.proto.
    private const int FieldId = 1;
    private const int FieldMerchantId = 2;
    private const int FieldSiteId = 3;
    private const int FieldReceivedMs = 4;
    private const int FieldClientTimeMs = 5;
    private const int FieldName = 6;
    private const int FieldUrl = 7;
    private const int FieldReferrer = 8;
    private const int FieldProps = 9;
    private const int FieldRevenueMicros = 10;
    private const int FieldCurrency = 11;
    private const int FieldScreenWidth = 12;
    private const int FieldEngagementMs = 13;
    private const int FieldVisitorId = 14;
    private const int FieldIpPrefix = 15;
    private const int FieldUserAgent = 16;
    private const int FieldCountry = 17;
    private const int FieldChUaMobile = 18;
    private const int FieldChUaPlatform = 19;
    private const int FieldChUaModel = 20;
    private const int FieldChUaFormFactors = 21;
    private const int PropertyFieldKey = 1;
    private const int PropertyFieldValue = 2;

    /// <summary>
    /// Avro bytes the record can need beyond the protobuf's own length. Field by field, with the
    /// protobuf bytes each field consumed (0 when absent; for repeated occurrences only the last
    /// one counts, earlier ones only add protobuf bytes):
    /// <list type="bullet">
    /// <item>id: fixed, always 16 Avro bytes (present, the protobuf spends 18).</item>
    /// <item>merchant_id, site_id, received_ms, client_time_ms, revenue_micros: a zigzag long
    /// takes at most 10 bytes: 5 × 10 = 50.</item>
    /// <item>screen_width, engagement_ms: a uint32 zigzags to below 2^33, at most 5 bytes:
    /// 2 × 5 = 10.</item>
    /// <item>visitor_id: fixed, always 8 (present, the protobuf spends 9).</item>
    /// <item>each of the 11 strings: absent, 1 byte (length 0). Present with n bytes, the Avro
    /// length is zigzag(n) = 2n, whose varint is at most one byte longer than n's, and the
    /// protobuf's tag (at least 1 byte) pays for that byte: Avro ≤ protobuf. So 11 × 1 = 11.</item>
    /// <item>props: each element costs the protobuf a tag, a length and the body, so at least
    /// 2 + body; its Avro key and value cost at most max(1, protobuf key field) + max(1,
    /// protobuf value field) ≤ 2 + body by the string rule above: Avro ≤ protobuf per element.
    /// Around them: a block count (zigzag of at most 2^31 elements, 5 bytes) and the 0 that ends
    /// the array (1 byte): 6.</item>
    /// </list>
    /// 16 + 50 + 10 + 8 + 11 + 6 = 101.
    /// </summary>
    private const int MaxOverhead = 101;

    /// <summary>
    /// An upper bound of the Avro size of any protobuf StoredEvent of
    /// <paramref name="protobufLength"/> bytes; size the destination of <see cref="Transcode"/> with it.
    /// </summary>
    public static int MaxEncodedSize(int protobufLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(protobufLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(protobufLength, int.MaxValue - MaxOverhead);
        return protobufLength + MaxOverhead;
    }

    /// <summary>
    /// Transcodes one protobuf StoredEvent to Avro binary (no wire-format header) without
    /// allocating. <paramref name="destination"/> must hold
    /// <see cref="MaxEncodedSize"/>(<paramref name="storedEventProtobuf"/>.Length) bytes: the
    /// limit is checked once, before parsing. Returns the bytes written.
    /// </summary>
    /// <exception cref="FormatException">The protobuf is malformed, or the record cannot be
    /// represented (id not 16 bytes, a string that is not UTF-8).</exception>
    public static int Transcode(ReadOnlySpan<byte> storedEventProtobuf, Span<byte> destination)
    {
        if (destination.Length < MaxEncodedSize(storedEventProtobuf.Length)) ThrowDestinationTooSmall();

        // Two passes, because Avro has no tags: the fields must come out in schema order and the
        // props array needs its element count first. The first pass keeps only slices and
        // numbers (last occurrence wins); the second writes.
        var f = default(Fields);
        Scan(storedEventProtobuf, ref f);
        if (f.Id.Length is not (0 or IdBytes)) ThrowMalformedProtobuf("id must be absent or 16 bytes");

        Span<byte> d = destination;
        int p = IdBytes;
        if (f.Id.IsEmpty) d[..IdBytes].Clear(); else f.Id.CopyTo(d);
        p += WriteLong(d[p..], (long)f.MerchantId);
        p += WriteLong(d[p..], (long)f.SiteId);
        p += WriteLong(d[p..], f.ReceivedMs);
        p += WriteLong(d[p..], f.ClientTimeMs);
        p += WriteString(d[p..], f.Name);
        p += WriteString(d[p..], f.Url);
        p += WriteString(d[p..], f.Referrer);
        p += WriteProps(storedEventProtobuf, f.FirstPropAt, f.PropCount, d[p..]);
        p += WriteLong(d[p..], f.RevenueMicros);
        p += WriteString(d[p..], f.Currency);
        p += WriteLong(d[p..], f.ScreenWidth);
        p += WriteLong(d[p..], f.EngagementMs);
        BinaryPrimitives.WriteUInt64LittleEndian(d[p..], f.VisitorId);
        p += VisitorIdBytes;
        p += WriteString(d[p..], f.IpPrefix);
        p += WriteString(d[p..], f.UserAgent);
        p += WriteString(d[p..], f.Country);
        p += WriteString(d[p..], f.ChUaMobile);
        p += WriteString(d[p..], f.ChUaPlatform);
        p += WriteString(d[p..], f.ChUaModel);
        p += WriteString(d[p..], f.ChUaFormFactors);
        return p;
    }

    /// <summary>Avro binary (no wire-format header) to a StoredEvent: the consumer side.</summary>
    /// <exception cref="FormatException">The input is truncated, malformed or has trailing bytes.</exception>
    public static StoredEvent Decode(ReadOnlySpan<byte> avro)
    {
        var r = new AvroReader(avro);
        var e = new StoredEvent();
        var id = r.ReadFixed(IdBytes);
        e.Id = id.ContainsAnyExcept((byte)0) ? ByteString.CopyFrom(id) : ByteString.Empty;
        e.MerchantId = (ulong)r.ReadLong();
        e.SiteId = (ulong)r.ReadLong();
        e.ReceivedMs = r.ReadLong();
        e.ClientTimeMs = r.ReadLong();
        e.Name = r.ReadString();
        e.Url = r.ReadString();
        e.Referrer = r.ReadString();
        for (long count = r.ReadBlockCount(); count != 0; count = r.ReadBlockCount())
        {
            for (long i = 0; i < count; i++)
                e.Props.Add(new StoredProperty { Key = r.ReadString(), Value = r.ReadString() });
        }
        e.RevenueMicros = r.ReadLong();
        e.Currency = r.ReadString();
        e.ScreenWidth = r.ReadUInt32();
        e.EngagementMs = r.ReadUInt32();
        e.VisitorId = BinaryPrimitives.ReadUInt64LittleEndian(r.ReadFixed(VisitorIdBytes));
        e.IpPrefix = r.ReadString();
        e.UserAgent = r.ReadString();
        e.Country = r.ReadString();
        e.ChUaMobile = r.ReadString();
        e.ChUaPlatform = r.ReadString();
        e.ChUaModel = r.ReadString();
        e.ChUaFormFactors = r.ReadString();
        if (!r.AtEnd) ThrowMalformedAvro("trailing bytes after the record");
        return e;
    }

    /// <summary>Avro binary back to the protobuf record the rest of the pipeline reads.</summary>
    public static byte[] ToProtobuf(ReadOnlySpan<byte> avro) => Decode(avro).ToByteArray();

    /// <summary>The schema text (schemas/avro/stored_event.avsc, embedded in this assembly).</summary>
    public static string Schema => SchemaText.Value;

    // A holder class so the resource is read on first use of Schema, once, and never by Transcode.
    private static class SchemaText
    {
        public static readonly string Value = Load();

        private static string Load()
        {
            using var stream = typeof(StoredEventAvro).Assembly.GetManifestResourceStream("stored_event.avsc")
                ?? throw new InvalidOperationException("Embedded resource stored_event.avsc is missing.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }
    }

    private ref struct Fields
    {
        public ReadOnlySpan<byte> Id, Name, Url, Referrer, Currency, IpPrefix, UserAgent, Country, ChUaMobile, ChUaPlatform, ChUaModel, ChUaFormFactors;
        public ulong MerchantId, SiteId, VisitorId;
        public long ReceivedMs, ClientTimeMs, RevenueMicros;
        public uint ScreenWidth, EngagementMs;
        public int PropCount;
        public int FirstPropAt;
    }

    private static void Scan(ReadOnlySpan<byte> pb, ref Fields f)
    {
        int pos = 0;
        while (pos < pb.Length)
        {
            int tagAt = pos;
            if (!ProtoWire.TryReadTag(pb, ref pos, out int field, out int wire)) ThrowMalformedProtobuf("bad tag");
            // Like Google.Protobuf's generated parser: a known field number with another wire
            // type is an unknown field and is skipped.
            bool ok;
            ulong v;
            switch (field)
            {
                case FieldId when wire == ProtoWire.WireLengthDelimited: ok = ProtoWire.TryReadLengthDelimited(pb, ref pos, out f.Id); break;
                case FieldMerchantId when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out f.MerchantId); break;
                case FieldSiteId when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out f.SiteId); break;
                case FieldReceivedMs when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out v); f.ReceivedMs = (long)v; break;
                case FieldClientTimeMs when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out v); f.ClientTimeMs = (long)v; break;
                case FieldName when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.Name); break;
                case FieldUrl when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.Url); break;
                case FieldReferrer when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.Referrer); break;
                case FieldProps when wire == ProtoWire.WireLengthDelimited:
                    // Elements are parsed when written; here they are only counted.
                    ok = ProtoWire.TryReadLengthDelimited(pb, ref pos, out _);
                    if (f.PropCount++ == 0) f.FirstPropAt = tagAt;
                    break;
                case FieldRevenueMicros when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out v); f.RevenueMicros = (long)v; break;
                case FieldCurrency when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.Currency); break;
                // uint32 read from a wider varint keeps the low 32 bits, as Google.Protobuf does.
                case FieldScreenWidth when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out v); f.ScreenWidth = (uint)v; break;
                case FieldEngagementMs when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(pb, ref pos, out v); f.EngagementMs = (uint)v; break;
                case FieldVisitorId when wire == ProtoWire.WireFixed64:
                    ok = pb.Length - pos >= VisitorIdBytes;
                    if (ok)
                    {
                        f.VisitorId = BinaryPrimitives.ReadUInt64LittleEndian(pb[pos..]);
                        pos += VisitorIdBytes;
                    }
                    break;
                case FieldIpPrefix when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.IpPrefix); break;
                case FieldUserAgent when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.UserAgent); break;
                case FieldCountry when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.Country); break;
                case FieldChUaMobile when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.ChUaMobile); break;
                case FieldChUaPlatform when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.ChUaPlatform); break;
                case FieldChUaModel when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.ChUaModel); break;
                case FieldChUaFormFactors when wire == ProtoWire.WireLengthDelimited: ok = ReadString(pb, ref pos, ref f.ChUaFormFactors); break;
                default: ok = ProtoWire.TrySkipField(pb, ref pos, field, wire); break;
            }
            if (!ok) ThrowMalformedProtobuf("truncated or malformed field");
        }
    }

    /// <summary>
    /// Writes the props array: one block with the count from the scan, then 0. Re-reads the
    /// protobuf from the first element; the scan already checked the structure around them.
    /// </summary>
    private static int WriteProps(ReadOnlySpan<byte> pb, int pos, int count, Span<byte> d)
    {
        int p = 0;
        if (count > 0)
        {
            p += WriteLong(d, count);
            for (int written = 0; written < count;)
            {
                ProtoWire.TryReadTag(pb, ref pos, out int field, out int wire);
                if (field != FieldProps || wire != ProtoWire.WireLengthDelimited)
                {
                    ProtoWire.TrySkipField(pb, ref pos, field, wire);
                    continue;
                }
                ProtoWire.TryReadLengthDelimited(pb, ref pos, out var prop);
                ReadProperty(prop, out var key, out var value);
                p += WriteString(d[p..], key);
                p += WriteString(d[p..], value);
                written++;
            }
        }
        d[p++] = 0; // end of array
        return p;
    }

    private static void ReadProperty(ReadOnlySpan<byte> prop, out ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        key = default;
        value = default;
        int pos = 0;
        while (pos < prop.Length)
        {
            if (!ProtoWire.TryReadTag(prop, ref pos, out int field, out int wire)) ThrowMalformedProtobuf("bad tag in props");
            bool ok = field switch
            {
                PropertyFieldKey when wire == ProtoWire.WireLengthDelimited => ReadString(prop, ref pos, ref key),
                PropertyFieldValue when wire == ProtoWire.WireLengthDelimited => ReadString(prop, ref pos, ref value),
                _ => ProtoWire.TrySkipField(prop, ref pos, field, wire),
            };
            if (!ok) ThrowMalformedProtobuf("truncated or malformed props element");
        }
    }

    /// <summary>
    /// Reads a string field's next occurrence. proto3 keeps the last occurrence, but
    /// Google.Protobuf rejects the record if an earlier one is not UTF-8, so an occurrence that is
    /// replaced is checked here; the last one is checked when written (WriteString).
    /// </summary>
    private static bool ReadString(ReadOnlySpan<byte> pb, ref int pos, scoped ref ReadOnlySpan<byte> field)
    {
        if (!field.IsEmpty && !Utf8.IsValid(field)) ThrowMalformedProtobuf("string is not UTF-8");
        return ProtoWire.TryReadLengthDelimited(pb, ref pos, out field);
    }

    /// <summary>Avro long: zigzag, then the same base-128 varint as protobuf.</summary>
    private static int WriteLong(Span<byte> destination, long value) =>
        ProtoWire.WriteVarint(destination, (ulong)((value << 1) ^ (value >> 63)));

    /// <summary>Avro string: long length, UTF-8 bytes. Validated: Avro readers expect UTF-8.</summary>
    private static int WriteString(Span<byte> destination, ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8)) ThrowMalformedProtobuf("string is not UTF-8");
        int n = WriteLong(destination, utf8.Length);
        utf8.CopyTo(destination[n..]);
        return n + utf8.Length;
    }

    /// <summary>Reads Avro binary values from a span; every read checks bounds and throws FormatException.</summary>
    private ref struct AvroReader(ReadOnlySpan<byte> buffer)
    {
        private readonly ReadOnlySpan<byte> _buffer = buffer;
        private int _pos;

        public readonly bool AtEnd => _pos == _buffer.Length;

        public long ReadLong()
        {
            if (!ProtoWire.TryReadVarint(_buffer, ref _pos, out ulong v)) ThrowMalformedAvro("truncated or overlong long");
            return (long)(v >> 1) ^ -(long)(v & 1);
        }

        public uint ReadUInt32()
        {
            long v = ReadLong();
            if ((ulong)v > uint.MaxValue) ThrowMalformedAvro("uint32 field out of range");
            return (uint)v;
        }

        public ReadOnlySpan<byte> ReadFixed(int size)
        {
            if (_buffer.Length - _pos < size) ThrowMalformedAvro("truncated fixed");
            var bytes = _buffer.Slice(_pos, size);
            _pos += size;
            return bytes;
        }

        public string ReadString()
        {
            long length = ReadLong();
            if ((ulong)length > (ulong)(_buffer.Length - _pos)) ThrowMalformedAvro("string length out of range");
            var utf8 = ReadFixed((int)length);
            if (!Utf8.IsValid(utf8)) ThrowMalformedAvro("string is not UTF-8");
            return Encoding.UTF8.GetString(utf8);
        }

        /// <summary>
        /// An array block's item count, 0 at the end of the array. A negative count is followed
        /// by the block's byte size (the spec lets writers add it so readers can skip blocks).
        /// </summary>
        public long ReadBlockCount()
        {
            long count = ReadLong();
            if (count < 0)
            {
                if (count == long.MinValue) ThrowMalformedAvro("array block count out of range");
                count = -count;
                if (ReadLong() < 0) ThrowMalformedAvro("negative array block size");
            }
            // Each StoredProperty takes at least 2 bytes (two string lengths): a larger count
            // cannot be honest, so refuse it before looping.
            if (count > (_buffer.Length - _pos) / 2) ThrowMalformedAvro("array block count out of range");
            return count;
        }
    }

    [DoesNotReturn]
    private static void ThrowMalformedProtobuf(string what) =>
        throw new FormatException($"Malformed StoredEvent protobuf record: {what}.");

    [DoesNotReturn]
    private static void ThrowMalformedAvro(string what) =>
        throw new FormatException($"Malformed or truncated StoredEvent Avro record: {what}.");

    [DoesNotReturn]
    private static void ThrowDestinationTooSmall() =>
        throw new ArgumentException("The destination is smaller than MaxEncodedSize(source length).", "destination");
}
