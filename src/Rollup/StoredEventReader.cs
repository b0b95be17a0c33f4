using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;
using Analytics.Contracts;

namespace Analytics.Rollup;

/// <summary>
/// Reads a log record (<c>StoredEvent</c>, schemas/stored_event.proto) straight into the
/// <see cref="RawEvent"/> Rollup works with. Contract: the same event, field for field, as
/// <c>RawEvent.From(StoredEvent.Parser.ParseFrom(record), …)</c> (Google.Protobuf, which
/// EndToEnd's StoredEventReaderTests compare it with), and false exactly where that throws:
/// proto3 rules through ProtoWire (last occurrence of a field wins, unknown fields and known
/// numbers with another wire type are skipped, truncation and bad tags are malformed, and so is
/// a string that is not valid UTF-8). Why not Google.Protobuf: it
/// builds a message object, a string per field and a property list per event, which Rollup then
/// copied once more into a RawEvent; here the strings come from pools, since nearly every value
/// (user agent, name, prefix, country, URL) repeats from event to event. Not thread-safe: one
/// reader per Rollup loop.
/// </summary>
public sealed class StoredEventReader
{
    /// <summary>Longer strings are decoded without pooling, so the pools hold at most ~16 MB
    /// each whatever is sent (16,384 strings of at most 1 KB); user agents and URLs are shorter.</summary>
    private const int MaxPooledBytes = 512;

    private readonly StringPool _values = new(16_384);
    // URLs and referrers repeat less (query strings, click ids): a pool of their own, so they
    // never crowd the user agents out of the other one.
    private readonly StringPool _urls = new(16_384);

    /// <summary>Reads one record; false when it is malformed. <paramref name="traceContext"/> is
    /// the record's trace context bytes (empty when absent), a slice of <paramref name="record"/>.</summary>
    public bool TryRead(ReadOnlySpan<byte> record, string logSource, long logOffset, out RawEvent? e, out ReadOnlySpan<byte> traceContext)
    {
        e = null;
        traceContext = default;
        ReadOnlySpan<byte> id = default;
        ulong merchant = 0, site = 0, visitor = 0;
        long received = 0, clientTime = 0, revenue = 0;
        uint screenWidth = 0, engagement = 0;
        string name = "", url = "", referrer = "", currency = "", ipPrefix = "", userAgent = "", country = "";
        string chUaMobile = "", chUaPlatform = "", chUaModel = "", chUaFormFactors = "";
        List<KeyValuePair<string, string>>? props = null;
        int pos = 0;
        while (pos < record.Length)
        {
            if (!ProtoWire.TryReadTag(record, ref pos, out int field, out int wire)) return false;
            if (wire == ProtoWire.WireVarint && field is 2 or 3 or 4 or 5 or 10 or 12 or 13)
            {
                if (!ProtoWire.TryReadVarint(record, ref pos, out ulong v)) return false;
                switch (field)
                {
                    case 2: merchant = v; break;
                    case 3: site = v; break;
                    case 4: received = (long)v; break;
                    case 5: clientTime = (long)v; break;
                    case 10: revenue = (long)v; break;
                    case 12: screenWidth = (uint)v; break;
                    default: engagement = (uint)v; break;
                }
            }
            else if (wire == ProtoWire.WireFixed64 && field == 14)
            {
                if (record.Length - pos < 8) return false;
                visitor = BinaryPrimitives.ReadUInt64LittleEndian(record[pos..]);
                pos += 8;
            }
            else if (wire == ProtoWire.WireLengthDelimited && field is (>= 6 and <= 9) or 11 or (>= 15 and <= 22) or 1)
            {
                if (!ProtoWire.TryReadLengthDelimited(record, ref pos, out var bytes)) return false;
                switch (field)
                {
                    case 1: id = bytes; break;
                    case 6: if (!TryValue(bytes, out name)) return false; break;
                    case 7: if (!TryUrl(bytes, out url)) return false; break;
                    case 8: if (!TryUrl(bytes, out referrer)) return false; break;
                    case 9:
                        if (!TryReadProperty(bytes, out var property)) return false;
                        (props ??= []).Add(property);
                        break;
                    case 11: if (!TryValue(bytes, out currency)) return false; break;
                    case 15: if (!TryValue(bytes, out ipPrefix)) return false; break;
                    case 16: if (!TryValue(bytes, out userAgent)) return false; break;
                    case 17: if (!TryValue(bytes, out country)) return false; break;
                    case 18: if (!TryValue(bytes, out chUaMobile)) return false; break;
                    case 19: if (!TryValue(bytes, out chUaPlatform)) return false; break;
                    case 20: if (!TryValue(bytes, out chUaModel)) return false; break;
                    case 21: if (!TryValue(bytes, out chUaFormFactors)) return false; break;
                    default: traceContext = bytes; break;
                }
            }
            else if (!ProtoWire.TrySkipField(record, ref pos, field, wire))
            {
                return false;
            }
        }
        e = new RawEvent(merchant, site, id.ToArray(), received, clientTime, name, url, referrer, (IReadOnlyList<KeyValuePair<string, string>>?)props ?? [],
            revenue, currency, screenWidth, engagement, visitor, ipPrefix, userAgent, country, logSource, logOffset)
        {
            ChUaMobile = chUaMobile,
            ChUaPlatform = chUaPlatform,
            ChUaModel = chUaModel,
            ChUaFormFactors = chUaFormFactors,
        };
        return true;
    }

    private bool TryReadProperty(ReadOnlySpan<byte> message, out KeyValuePair<string, string> property)
    {
        property = default;
        string key = "", value = "";
        int pos = 0;
        while (pos < message.Length)
        {
            if (!ProtoWire.TryReadTag(message, ref pos, out int field, out int wire)) return false;
            if (wire == ProtoWire.WireLengthDelimited && field is 1 or 2)
            {
                if (!ProtoWire.TryReadLengthDelimited(message, ref pos, out var bytes)) return false;
                if (!TryValue(bytes, out var text)) return false;
                if (field == 1) key = text; else value = text;
            }
            else if (!ProtoWire.TrySkipField(message, ref pos, field, wire))
            {
                return false;
            }
        }
        property = KeyValuePair.Create(key, value);
        return true;
    }

    private bool TryValue(ReadOnlySpan<byte> utf8, out string text) => TryPooled(_values, utf8, out text);

    private bool TryUrl(ReadOnlySpan<byte> utf8, out string text) => TryPooled(_urls, utf8, out text);

    private static bool TryPooled(StringPool pool, ReadOnlySpan<byte> utf8, out string text)
    {
        text = "";
        if (utf8.IsEmpty) return true;
        // Google.Protobuf refuses a string that is not UTF-8 (the whole record with it).
        if (!Utf8.IsValid(utf8)) return false;
        if (utf8.Length > MaxPooledBytes)
        {
            text = Encoding.UTF8.GetString(utf8);
            return true;
        }
        // UTF-8 never takes fewer bytes than UTF-16 code units (one per byte at most).
        Span<char> chars = stackalloc char[utf8.Length];
        int length = Encoding.UTF8.GetChars(utf8, chars);
        text = pool.Get(chars[..length]);
        return true;
    }
}
