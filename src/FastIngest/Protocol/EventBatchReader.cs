using Analytics.Contracts;

namespace Analytics.FastIngest.Protocol;

/// <summary>
/// Zero-copy view of one <c>analytics.v1.EventBatch</c> (schemas/events.proto) in a contiguous
/// buffer. Parsing the batch checks its top-level structure only; each event is parsed on its
/// own by <see cref="EventView.TryParse"/>, so one malformed event is rejected alone while the
/// rest of the batch is kept (Google.Protobuf would throw for the whole message).
/// </summary>
internal readonly ref struct BatchView
{
    private const int FieldSiteKey = 1;
    private const int FieldSeq = 2;
    private const int FieldEvents = 3;

    private readonly ReadOnlySpan<byte> _message;

    private BatchView(ReadOnlySpan<byte> message, ReadOnlySpan<byte> siteKey, ulong seq, int eventCount)
    {
        _message = message;
        SiteKey = siteKey;
        Seq = seq;
        EventCount = eventCount;
    }

    /// <summary>UTF-8 bytes of site_key (last occurrence wins, as in proto3).</summary>
    public ReadOnlySpan<byte> SiteKey { get; }
    public ulong Seq { get; }
    public int EventCount { get; }

    /// <summary>False when the message is not a well-formed protobuf message at the top level.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out BatchView batch)
    {
        batch = default;
        ReadOnlySpan<byte> siteKey = default;
        ulong seq = 0;
        int events = 0;
        int pos = 0;
        while (pos < message.Length)
        {
            if (!ProtoWire.TryReadTag(message, ref pos, out int field, out int wire)) return false;
            if (field == FieldSiteKey && wire == ProtoWire.WireLengthDelimited)
            {
                if (!ProtoWire.TryReadLengthDelimited(message, ref pos, out siteKey)) return false;
            }
            else if (field == FieldSeq && wire == ProtoWire.WireVarint)
            {
                if (!ProtoWire.TryReadVarint(message, ref pos, out seq)) return false;
            }
            else if (field == FieldEvents && wire == ProtoWire.WireLengthDelimited)
            {
                if (!ProtoWire.TryReadLengthDelimited(message, ref pos, out _)) return false;
                events++;
            }
            else if (!ProtoWire.TrySkipField(message, ref pos, field, wire))
            {
                return false;
            }
        }
        batch = new BatchView(message, siteKey, seq, events);
        return true;
    }

    public EventEnumerator GetEvents() => new(_message);

    /// <summary>Enumerates the raw bytes of each event, in order.</summary>
    public ref struct EventEnumerator(ReadOnlySpan<byte> message)
    {
        private readonly ReadOnlySpan<byte> _message = message;
        private int _pos;

        public ReadOnlySpan<byte> Current { get; private set; }

        public readonly EventEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            // The message was validated by TryParse, so every read here succeeds.
            while (_pos < _message.Length)
            {
                ProtoWire.TryReadTag(_message, ref _pos, out int field, out int wire);
                if (field == FieldEvents && wire == ProtoWire.WireLengthDelimited)
                {
                    ProtoWire.TryReadLengthDelimited(_message, ref _pos, out var payload);
                    Current = payload;
                    return true;
                }
                ProtoWire.TrySkipField(_message, ref _pos, field, wire);
            }
            return false;
        }
    }
}

/// <summary>Zero-copy view of one <c>analytics.v1.Event</c>: strings stay UTF-8 spans.</summary>
internal ref struct EventView
{
    public ReadOnlySpan<byte> Id;
    public ReadOnlySpan<byte> Name;
    public long ClientTimeMs;
    public ReadOnlySpan<byte> Url;
    public ReadOnlySpan<byte> Referrer;
    public long RevenueMicros;
    public ReadOnlySpan<byte> Currency;
    public uint ScreenWidth;
    public uint EngagementMs;
    public int PropertyCount;

    /// <summary>The whole event, re-scanned by <see cref="GetProperties"/>.</summary>
    private ReadOnlySpan<byte> _event;

    public static bool TryParse(ReadOnlySpan<byte> evt, out EventView view)
    {
        view = default;
        view._event = evt;
        int pos = 0;
        while (pos < evt.Length)
        {
            if (!ProtoWire.TryReadTag(evt, ref pos, out int field, out int wire)) return false;
            bool ok;
            ulong v;
            switch (field)
            {
                case 1 when wire == ProtoWire.WireLengthDelimited: ok = ProtoWire.TryReadLengthDelimited(evt, ref pos, out view.Id); break;
                case 2 when wire == ProtoWire.WireLengthDelimited: ok = ProtoWire.TryReadLengthDelimited(evt, ref pos, out view.Name); break;
                case 3 when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(evt, ref pos, out v); view.ClientTimeMs = (long)v; break;
                case 4 when wire == ProtoWire.WireLengthDelimited: ok = ProtoWire.TryReadLengthDelimited(evt, ref pos, out view.Url); break;
                case 5 when wire == ProtoWire.WireLengthDelimited: ok = ProtoWire.TryReadLengthDelimited(evt, ref pos, out view.Referrer); break;
                case 6 when wire == ProtoWire.WireLengthDelimited:
                    ok = ProtoWire.TryReadLengthDelimited(evt, ref pos, out var prop) && PropertyView.TryParse(prop, out _);
                    view.PropertyCount++;
                    break;
                case 7 when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(evt, ref pos, out v); view.RevenueMicros = (long)v; break;
                case 8 when wire == ProtoWire.WireLengthDelimited: ok = ProtoWire.TryReadLengthDelimited(evt, ref pos, out view.Currency); break;
                // uint32 fields: Google.Protobuf keeps the low 32 bits of a longer varint.
                case 9 when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(evt, ref pos, out v); view.ScreenWidth = (uint)v; break;
                case 10 when wire == ProtoWire.WireVarint: ok = ProtoWire.TryReadVarint(evt, ref pos, out v); view.EngagementMs = (uint)v; break;
                default: ok = ProtoWire.TrySkipField(evt, ref pos, field, wire); break;
            }
            if (!ok) return false;
        }
        return true;
    }

    /// <summary>Enumerates the properties in order (already validated by TryParse).</summary>
    public readonly PropertyEnumerator GetProperties() => new(_event);

    public ref struct PropertyEnumerator(ReadOnlySpan<byte> evt)
    {
        private readonly ReadOnlySpan<byte> _event = evt;
        private int _pos;

        public PropertyView Current { get; private set; }

        public readonly PropertyEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (_pos < _event.Length)
            {
                ProtoWire.TryReadTag(_event, ref _pos, out int field, out int wire);
                if (field == 6 && wire == ProtoWire.WireLengthDelimited)
                {
                    ProtoWire.TryReadLengthDelimited(_event, ref _pos, out var payload);
                    PropertyView.TryParse(payload, out var prop);
                    Current = prop;
                    return true;
                }
                ProtoWire.TrySkipField(_event, ref _pos, field, wire);
            }
            return false;
        }
    }
}

internal readonly ref struct PropertyView(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
{
    public ReadOnlySpan<byte> Key { get; } = key;
    public ReadOnlySpan<byte> Value { get; } = value;

    public static bool TryParse(ReadOnlySpan<byte> prop, out PropertyView view)
    {
        view = default;
        ReadOnlySpan<byte> key = default, value = default;
        int pos = 0;
        while (pos < prop.Length)
        {
            if (!ProtoWire.TryReadTag(prop, ref pos, out int field, out int wire)) return false;
            bool ok = field switch
            {
                1 when wire == ProtoWire.WireLengthDelimited => ProtoWire.TryReadLengthDelimited(prop, ref pos, out key),
                2 when wire == ProtoWire.WireLengthDelimited => ProtoWire.TryReadLengthDelimited(prop, ref pos, out value),
                _ => ProtoWire.TrySkipField(prop, ref pos, field, wire),
            };
            if (!ok) return false;
        }
        view = new PropertyView(key, value);
        return true;
    }
}
