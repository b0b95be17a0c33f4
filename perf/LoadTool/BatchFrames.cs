using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.LoadTool;

/// <summary>
/// One encoded EventBatch and where to patch it: the 16 bytes of every event id and the 5 bytes
/// of the seq varint. Encoded once with Google.Protobuf (the reference encoder), so the bytes on
/// the wire are exactly what a real client sends; each send then only overwrites ids and seq.
/// </summary>
internal sealed class BatchTemplate
{
    /// <summary>
    /// Every seq is <c>SeqBase + n</c> with n below 2^35 - 2^28, so its varint is always exactly
    /// 5 bytes and can be patched in place without re-encoding the frame.
    /// </summary>
    public const ulong SeqBase = 1UL << 28;
    public const int SeqBytes = 5;

    private BatchTemplate(byte[] frame, int seqOffset, int[] idOffsets)
    {
        Frame = frame;
        SeqOffset = seqOffset;
        IdOffsets = idOffsets;
    }

    public byte[] Frame { get; }
    public int SeqOffset { get; }
    public int[] IdOffsets { get; }
    public int EventCount => IdOffsets.Length;

    private static readonly string[] Pages = ["/", "/pricing", "/docs", "/docs/getting-started", "/blog/fast-ingest", "/blog/cookieless-analytics", "/signup", "/about"];
    private static readonly string[] Referrers = ["", "", "", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x1y2z3"];
    private static readonly uint[] ScreenWidths = [390, 414, 1280, 1440, 1920];

    /// <summary>
    /// <paramref name="count"/> different batches of <paramref name="events"/> realistic events
    /// (mostly pageviews, every tenth a custom event with properties), about 100-150 bytes each.
    /// </summary>
    public static BatchTemplate[] Build(string siteKey, int events, int count)
    {
        var random = new Random(42);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var templates = new BatchTemplate[count];
        for (int t = 0; t < count; t++)
        {
            var batch = new EventBatch { SiteKey = siteKey, Seq = SeqBase };
            var sentinels = new byte[events][];
            for (int i = 0; i < events; i++)
            {
                sentinels[i] = new byte[16];
                random.NextBytes(sentinels[i]);
                string page = Pages[random.Next(Pages.Length)];
                var e = new Event
                {
                    Id = ByteString.CopyFrom(sentinels[i]),
                    Name = "pageview",
                    Url = "https://demo.localhost" + page + (random.Next(4) == 0 ? "?utm_source=newsletter&utm_medium=email" : ""),
                    Referrer = Referrers[random.Next(Referrers.Length)],
                    ClientTimeMs = now - random.Next(60_000),
                    ScreenWidth = ScreenWidths[random.Next(ScreenWidths.Length)],
                    EngagementMs = (uint)random.Next(500, 60_000),
                };
                if (i % 10 == 9)
                {
                    e.Name = "signup";
                    e.Referrer = "";
                    e.Props.Add(new Property { Key = "plan", Value = random.Next(2) == 0 ? "free" : "pro" });
                    e.Props.Add(new Property { Key = "source", Value = "pricing-page" });
                }
                batch.Events.Add(e);
            }
            templates[t] = Locate(batch.ToByteArray(), siteKey, sentinels);
        }
        return templates;
    }

    private static BatchTemplate Locate(byte[] frame, string siteKey, byte[][] sentinels)
    {
        // Google.Protobuf writes fields in number order: site_key (1), seq (2), then events (3).
        int keyBytes = System.Text.Encoding.UTF8.GetByteCount(siteKey);
        int seqOffset = keyBytes == 0 ? 1 : 1 + VarintSize((ulong)keyBytes) + keyBytes + 1;
        if (frame[seqOffset - 1] != 0x10 || ReadSeq(frame, seqOffset) != SeqBase)
        {
            throw new InvalidOperationException("unexpected EventBatch layout: seq not where expected");
        }
        var idOffsets = new int[sentinels.Length];
        int from = seqOffset + SeqBytes;
        for (int i = 0; i < sentinels.Length; i++)
        {
            int at = frame.AsSpan(from).IndexOf(sentinels[i]);
            if (at < 0) throw new InvalidOperationException($"event id {i} not found in the encoded batch");
            idOffsets[i] = from + at;
            from += at + 16;
        }
        return new BatchTemplate(frame, seqOffset, idOffsets);
    }

    private static int VarintSize(ulong value)
    {
        int size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }
        return size;
    }

    public static void WriteSeq(Span<byte> destination, ulong seq)
    {
        for (int i = 0; i < SeqBytes - 1; i++)
        {
            destination[i] = (byte)(seq | 0x80);
            seq >>= 7;
        }
        destination[SeqBytes - 1] = (byte)seq;
    }

    public static ulong ReadSeq(ReadOnlySpan<byte> source, int offset)
    {
        ulong value = 0;
        for (int i = 0; i < SeqBytes; i++) value |= (ulong)(source[offset + i] & 0x7F) << (7 * i);
        return value;
    }

    /// <summary>
    /// Overwrites an id with a UUIDv7 (RFC 9562: 48-bit Unix milliseconds, then random; version
    /// and variant bits set), as the browser agent generates them: time-ordered ids keep Rollup's
    /// duplicate lookup on the recent end of event_ids' primary index.
    /// </summary>
    public static void WriteTimeOrderedId(Span<byte> id, long unixMs, Random random)
    {
        random.NextBytes(id[6..]);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(id, unixMs << 16 | (long)(id[6] & 0x0F | 0x70) << 8 | id[7]);
        id[8] = (byte)((id[8] & 0x3F) | 0x80);
    }
}

/// <summary>
/// A connection's private copies of a few templates, cycled per send. Private because patching
/// happens in place; reuse after an awaited send is safe because the client WebSocket has copied
/// (and masked) the payload by the time SendAsync completes.
/// </summary>
internal sealed class ConnectionFrames
{
    private const int FramesPerConnection = 4;

    private readonly BatchTemplate[] _templates;
    private readonly byte[][] _frames;
    // Seeded from the OS: ids must differ across connections, phases and runs (the server and
    // Rollup deduplicate by id). Xoshiro256** underneath: a few ns per id.
    private readonly Random _random = new();
    private ulong _seq;
    private int _next;

    public ConnectionFrames(BatchTemplate[] pool, int connectionIndex)
    {
        _templates = new BatchTemplate[Math.Min(FramesPerConnection, pool.Length)];
        _frames = new byte[_templates.Length][];
        for (int i = 0; i < _templates.Length; i++)
        {
            _templates[i] = pool[(connectionIndex * FramesPerConnection + i) % pool.Length];
            _frames[i] = (byte[])_templates[i].Frame.Clone();
        }
    }

    /// <summary>Patches the next frame with a new seq and fresh ids and returns it.</summary>
    public (ReadOnlyMemory<byte> Frame, ulong Seq, int SeqOffset, int Events) Next()
    {
        var template = _templates[_next];
        byte[] frame = _frames[_next];
        _next = (_next + 1) % _frames.Length;
        ulong seq = BatchTemplate.SeqBase + ++_seq;
        BatchTemplate.WriteSeq(frame.AsSpan(template.SeqOffset, BatchTemplate.SeqBytes), seq);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (int offset in template.IdOffsets)
        {
            BatchTemplate.WriteTimeOrderedId(frame.AsSpan(offset, 16), now, _random);
        }
        return (frame, seq, template.SeqOffset, template.EventCount);
    }

    public static int MaxFrameBytes(BatchTemplate[] pool) => pool.Max(t => t.Frame.Length);
}
