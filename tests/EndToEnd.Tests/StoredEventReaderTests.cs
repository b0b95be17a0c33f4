using Analytics.Contracts.Internal;
using Analytics.Rollup;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Rollup's log-record reader against Google.Protobuf, the reference it replaces: for generated
/// records (every field, Unicode, properties, repeated fields, unknown fields,
/// known numbers with another wire type) the same RawEvent field for field as
/// RawEvent.From(StoredEvent.Parser.ParseFrom(…)), and for every prefix and corrupted copy of
/// them, and for strings that are not UTF-8, refused exactly where ParseFrom throws.
/// </summary>
public class StoredEventReaderTests
{
    [Fact]
    public void Generated_records_read_as_Google_Protobuf_reads_them()
    {
        var random = new Random(1201);
        var reader = new StoredEventReader();
        for (int i = 0; i < 3_000; i++)
        {
            var bytes = Record(random);
            AssertSameAsProtobuf(reader, bytes, i);
        }
    }

    [Fact]
    public void Truncated_and_corrupted_records_are_refused_exactly_where_Google_Protobuf_throws()
    {
        var random = new Random(1202);
        var reader = new StoredEventReader();
        int refused = 0, read = 0;
        for (int i = 0; i < 300; i++)
        {
            var bytes = Record(random);
            for (int cut = 0; cut < bytes.Length; cut++)
                if (AssertSameAsProtobuf(reader, bytes[..cut], cut)) read++; else refused++;
            for (int flip = 0; flip < 20; flip++)
            {
                var corrupted = (byte[])bytes.Clone();
                corrupted[random.Next(corrupted.Length)] = (byte)random.Next(256);
                if (AssertSameAsProtobuf(reader, corrupted, flip)) read++; else refused++;
            }
        }
        // Both outcomes are exercised.
        Assert.True(refused > 1_000 && read > 1_000, $"{refused} refused, {read} read");
    }

    /// <summary>True when both read the record, false when both refuse it.</summary>
    private static bool AssertSameAsProtobuf(StoredEventReader reader, byte[] bytes, long offset)
    {
        RawEvent? expected;
        try { expected = RawEvent.From(StoredEvent.Parser.ParseFrom(bytes), "local", offset); }
        catch (InvalidProtocolBufferException) { expected = null; }
        bool ok = reader.TryRead(bytes, "local", offset, out var got, out var traceContext);
        Assert.True(ok == (expected is not null), $"reader {(ok ? "read" : "refused")} {Convert.ToHexString(bytes)}, Google.Protobuf {(expected is null ? "refused" : "read")} it");
        if (expected is null) return false;
        Assert.Equal(Describe(expected), Describe(got!));
        Assert.Equal(StoredEvent.Parser.ParseFrom(bytes).TraceContext.ToByteArray(), traceContext.ToArray());
        return true;
    }

    /// <summary>Every field (not the record's ToString: its Day throws on times out of DateTime's range).</summary>
    private static string Describe(RawEvent e) => string.Join(" | ", new object[]
    {
        e.MerchantId, e.SiteId, Convert.ToHexString(e.Id), e.ReceivedMs, e.ClientTimeMs, e.Name, e.Url, e.Referrer, string.Join(", ", e.Props),
        e.RevenueMicros, e.Currency, e.ScreenWidth, e.EngagementMs, e.VisitorId, e.IpPrefix, e.UserAgent, e.Country, e.LogSource, e.LogOffset,
        e.ChUaMobile, e.ChUaPlatform, e.ChUaModel, e.ChUaFormFactors,
    });

    private static readonly string[] Texts =
    [
        "", "pageview", "signup", "https://shop.example/p/1?utm_source=x", "https://www.google.com/", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
        "203.0.113.0/24", "2001:db8:1::/48", "DE", "EUR", "?1", "\"Android\"", "Grüße, 東京 🎉", new string('x', 1500),
    ];

    private static byte[] Record(Random random)
    {
        var e = new StoredEvent
        {
            Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
            MerchantId = (ulong)random.NextInt64(),
            SiteId = (ulong)random.Next(3),
            ReceivedMs = random.NextInt64(-1, long.MaxValue),
            ClientTimeMs = random.Next(2) == 0 ? -random.NextInt64() : random.NextInt64(),
            Name = Text(random), Url = Text(random), Referrer = Text(random),
            RevenueMicros = random.NextInt64(-1_000_000, 1_000_000), Currency = Text(random),
            ScreenWidth = (uint)random.Next(), EngagementMs = (uint)random.Next(), VisitorId = (ulong)random.NextInt64(),
            IpPrefix = Text(random), UserAgent = Text(random), Country = Text(random),
            ChUaMobile = Text(random), ChUaPlatform = Text(random), ChUaModel = Text(random), ChUaFormFactors = Text(random),
        };
        for (int p = random.Next(4); p > 0; p--) e.Props.Add(new StoredProperty { Key = Text(random), Value = Text(random) });
        if (random.Next(3) == 0) e.TraceContext = ByteString.CopyFrom(Enumerable.Range(0, 25).Select(i => (byte)random.Next(256)).ToArray());
        using var stream = new MemoryStream();
        e.WriteTo(stream);
        // Extras protobuf allows: a later occurrence of a field (it wins), an unknown field, a
        // known number with another wire type (skipped as unknown), invalid UTF-8 in a string.
        switch (random.Next(6))
        {
            case 0: stream.Write([0x32, 0x03, (byte)'n', (byte)'e', (byte)'w']); break;     // name = "new"
            case 1: stream.Write([0xC8, 0x3E, 0x96, 0x01]); break;                          // field 1001, varint 150
            case 2: stream.Write([0x30, 0x05]); break;                                      // field 6 (name) as a varint
            case 3: stream.Write([0x3A, 0x03, 0xFF, (byte)'a', 0xC3]); break;               // url = invalid UTF-8 (refused)
            case 4: stream.Write([0x4A, 0x04, 0x0A, 0x00, 0x18, 0x01]); break;              // a property with an unknown field 3
            default: break;
        }
        return stream.ToArray();
    }

    private static string Text(Random random) => Texts[random.Next(Texts.Length)];
}
