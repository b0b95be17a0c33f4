using System.Buffers.Binary;
using Analytics.Contracts.Internal;
using Analytics.EventLog.Kafka.Avro;
using Avro;
using Avro.Generic;
using Avro.IO;
using Google.Protobuf;

namespace Analytics.EventLog.Kafka.Tests;

/// <summary>
/// The hand-written protobuf → Avro transcoder against the reference implementations on both
/// sides: Google.Protobuf encodes and parses the protobuf, Apache.Avro's generic reader and
/// writer read and write the Avro. Random events are seeded, so a failure reproduces.
/// </summary>
public sealed class StoredEventAvroTests
{
    private static readonly RecordSchema AvroSchema = (RecordSchema)Schema.Parse(StoredEventAvro.Schema);

    // What Google.Protobuf parses, minus unknown fields (which take part in Equals but have no
    // place in the Avro record).
    private static readonly MessageParser<StoredEvent> ProtobufParser = StoredEvent.Parser.WithDiscardUnknownFields(true);

    [Fact]
    public void Schema_HasTheProtoFieldsInTheProtoOrder()
    {
        Assert.Equal("analytics.internal.v1.StoredEvent", AvroSchema.Fullname);
        // Every proto field but trace_context, which Kafka records carry as a traceparent header.
        Assert.Equal(
            StoredEvent.Descriptor.Fields.InFieldNumberOrder().Select(f => f.Name).Where(n => n != "trace_context"),
            AvroSchema.Fields.Select(f => f.Name));
        var property = (RecordSchema)((ArraySchema)AvroSchema["props"].Schema).ItemSchema;
        Assert.Equal("analytics.internal.v1.StoredProperty", property.Fullname);
        Assert.Equal(
            StoredProperty.Descriptor.Fields.InFieldNumberOrder().Select(f => f.Name),
            property.Fields.Select(f => f.Name));
        Assert.All(AvroSchema.Fields, f => Assert.False(string.IsNullOrWhiteSpace(f.Documentation)));
    }

    [Fact]
    public void Transcode_RandomEvents_ApacheAvroGenericReaderSeesTheOriginalFields()
    {
        var rng = new Random(20261101);
        var reader = new GenericDatumReader<GenericRecord>(AvroSchema, AvroSchema);
        for (int i = 0; i < 2_000; i++)
        {
            var original = RandomEvent(rng, i, TimestampRange.ApacheReader);
            byte[] avro = Transcode(original.ToByteArray());

            using var stream = new MemoryStream(avro);
            var record = reader.Read(null!, new BinaryDecoder(stream));
            Assert.Equal(avro.Length, stream.Position); // the reader consumed exactly our record
            AssertSameFields(original, record);
        }
    }

    [Fact]
    public void Decode_RecordsWrittenByApacheAvroGenericWriter_EqualTheOriginal()
    {
        var rng = new Random(7);
        var writer = new GenericDatumWriter<GenericRecord>(AvroSchema);
        for (int i = 0; i < 2_000; i++)
        {
            var original = RandomEvent(rng, i, TimestampRange.ApacheWriter);
            using var stream = new MemoryStream();
            writer.Write(ToGenericRecord(original, AvroSchema), new BinaryEncoder(stream));
            byte[] apache = stream.ToArray();

            Assert.Equal(original, StoredEventAvro.Decode(apache));
            // Both encodings are canonical (one array block), so they agree to the byte.
            Assert.Equal(apache, Transcode(original.ToByteArray()));
        }
    }

    [Fact]
    public void TranscodeThenDecode_RandomEvents_RoundTrip()
    {
        var rng = new Random(42);
        for (int i = 0; i < 2_000; i++)
        {
            // Full long range here: only Apache.Avro's DateTime conversion needs narrower ones.
            var original = RandomEvent(rng, i, TimestampRange.Full);
            byte[] protobuf = original.ToByteArray();
            byte[] avro = Transcode(protobuf);

            Assert.Equal(original, StoredEventAvro.Decode(avro));
            Assert.Equal(protobuf, StoredEventAvro.ToProtobuf(avro));
        }
    }

    [Fact]
    public void Transcode_FieldsInAnyOrderWithUnknownAndRepeatedFields_AgreesWithGoogleProtobuf()
    {
        var rng = new Random(99);
        for (int i = 0; i < 1_000; i++)
        {
            byte[] scrambled = Scramble(RandomEvent(rng, i, TimestampRange.Full), rng);
            var expected = ProtobufParser.ParseFrom(scrambled);

            Assert.Equal(expected, StoredEventAvro.Decode(Transcode(scrambled)));
        }
    }

    [Fact]
    public void Transcode_EveryPrefixOfARecord_FailsExactlyWhereGoogleProtobufFails()
    {
        var rng = new Random(3);
        int checkedRecords = 0;
        for (int i = 0; checkedRecords < 40; i++)
        {
            byte[] protobuf = Scramble(RandomEvent(rng, i, TimestampRange.Full), rng);
            if (protobuf.Length > 3_000) continue;
            checkedRecords++;
            for (int length = 0; length < protobuf.Length; length++)
            {
                byte[] prefix = protobuf[..length];
                StoredEvent? expected;
                try { expected = ProtobufParser.ParseFrom(prefix); }
                catch (InvalidProtocolBufferException) { expected = null; }

                if (expected is null) Assert.Throws<FormatException>(() => Transcode(prefix));
                else Assert.Equal(expected, StoredEventAvro.Decode(Transcode(prefix)));
            }
        }
    }

    [Theory]
    [InlineData("08")]                             // varint field without its value
    [InlineData("08FFFFFFFFFFFFFFFFFFFF01")]       // varint longer than 10 bytes
    [InlineData("0A1000")]                         // id length past the end
    [InlineData("0AFFFFFFFF0F")]                   // negative length
    [InlineData("00")]                             // field number 0
    [InlineData("0E")]                             // wire type 6
    [InlineData("0F")]                             // wire type 7
    [InlineData("0C")]                             // end-group without a start
    [InlineData("9B06")]                           // group 99 never closed
    [InlineData("9B06A406")]                       // group 99 closed by 100
    [InlineData("7101020304")]                     // visitor_id fixed64 cut short
    [InlineData("4A02FFFF")]                       // props element that is not a message
    [InlineData("4A020A05")]                       // props key past the element's end
    public void Transcode_MalformedProtobuf_ThrowsFormatException(string hex)
    {
        byte[] protobuf = Convert.FromHexString(hex);
        Assert.Throws<InvalidProtocolBufferException>(() => StoredEvent.Parser.ParseFrom(protobuf));
        Assert.Throws<FormatException>(() => Transcode(protobuf));
    }

    [Fact]
    public void Transcode_IdThatIsNot16Bytes_ThrowsFormatException()
    {
        foreach (int length in new[] { 1, 15, 17, 32 })
        {
            byte[] protobuf = new StoredEvent { Id = ByteString.CopyFrom(new byte[length]) }.ToByteArray();
            Assert.Throws<FormatException>(() => Transcode(protobuf));
        }
    }

    [Theory]
    [InlineData("3A01FF")]                         // url: a lone 0xFF
    [InlineData("3A02C328")]                       // url: a broken two-byte sequence
    [InlineData("8201 03EDA080")]                  // user_agent (field 16): an encoded surrogate
    [InlineData("4A040A02E282")]                   // props key: a truncated three-byte sequence
    [InlineData("3A01FF 3A016F")]                  // url twice: the earlier occurrence is not UTF-8 (Google.Protobuf rejects it too)
    [InlineData("4A060A01FF0A016B")]               // props key twice in one element, the earlier not UTF-8
    [InlineData("9201 01FF")]                      // ch_ua_mobile (field 18): a lone 0xFF
    public void Transcode_StringThatIsNotUtf8_ThrowsFormatException(string hex)
    {
        byte[] protobuf = Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));
        Assert.Throws<FormatException>(() => Transcode(protobuf));
    }

    [Fact]
    public void Transcode_DestinationSmallerThanTheBound_ThrowsArgumentException()
    {
        byte[] protobuf = RandomEvent(new Random(1), 2, TimestampRange.Full).ToByteArray();
        byte[] tooSmall = new byte[StoredEventAvro.MaxEncodedSize(protobuf.Length) - 1];
        Assert.Throws<ArgumentException>(() => StoredEventAvro.Transcode(protobuf, tooSmall));
        Assert.Throws<ArgumentOutOfRangeException>(() => StoredEventAvro.MaxEncodedSize(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => StoredEventAvro.MaxEncodedSize(int.MaxValue));
    }

    [Fact]
    public void Decode_EveryStrictPrefixOfARecord_ThrowsFormatException()
    {
        var rng = new Random(11);
        for (int i = 0; i < 40; i++)
        {
            byte[] avro = Transcode(RandomEvent(rng, i, TimestampRange.Full).ToByteArray());
            for (int length = 0; length < Math.Min(avro.Length, 2_000); length++)
            {
                byte[] prefix = avro[..length];
                Assert.Throws<FormatException>(() => StoredEventAvro.Decode(prefix));
            }
            byte[] cutAtTheEnd = avro[..^1];
            Assert.Throws<FormatException>(() => StoredEventAvro.Decode(cutAtTheEnd));
        }
    }

    [Fact]
    public void Decode_MalformedValues_ThrowFormatException()
    {
        List<byte[]> cases =
        [
            [.. MinimalAvro(), 0], // trailing byte
            MinimalAvro(name: [0x01]), // negative string length (zigzag 1 = -1)
            MinimalAvro(name: [0x7E, 0x61]), // 63 bytes announced, fewer left
            MinimalAvro(name: [0x02, 0xFF]), // not UTF-8
            MinimalAvro(props: [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), // 2^31 - 1 elements announced
            MinimalAvro(props: [0x01, 0x01, 0x00, 0x00, 0x00]), // block of 1 element with size -1
            MinimalAvro(screenWidth: [0x80, 0x80, 0x80, 0x80, 0x20]), // 2^32: over uint32
            MinimalAvro(screenWidth: [0x01]), // -1
            MinimalAvro(screenWidth: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), // 11-byte long
        ];
        foreach (byte[] avro in cases) Assert.Throws<FormatException>(() => StoredEventAvro.Decode(avro));

        // A negative block count followed by the block's byte size is valid Avro (writers may
        // add the size so readers can skip blocks).
        var blocked = StoredEventAvro.Decode(MinimalAvro(props: [0x01, 0x08, 0x02, 0x6B, 0x02, 0x76, 0x00]));
        Assert.Equal(new StoredProperty { Key = "k", Value = "v" }, Assert.Single(blocked.Props));
        Assert.Equal(new StoredEvent(), StoredEventAvro.Decode(MinimalAvro()));
    }

    [Fact]
    public void TranscodeAndDecode_MutatedInputs_ThrowOnlyFormatException()
    {
        var rng = new Random(5);
        var protobufs = Enumerable.Range(0, 50).Select(i => RandomEvent(rng, i, TimestampRange.Full).ToByteArray()).Where(b => b.Length is > 0 and < 5_000).ToArray();
        var avros = protobufs.Select(Transcode).ToArray();
        int transcoded = 0, decoded = 0;
        for (int i = 0; i < 20_000; i++)
        {
            byte[] protobuf = Mutate(protobufs[i % protobufs.Length], rng);
            try
            {
                byte[] avro = Transcode(protobuf);
                transcoded++;
                Assert.True(avro.Length <= StoredEventAvro.MaxEncodedSize(protobuf.Length));
                // What we accept, Google.Protobuf accepts, and reads the same (but trace_context,
                // which the Avro record leaves to the Kafka header).
                var expected = ProtobufParser.ParseFrom(protobuf);
                expected.TraceContext = Google.Protobuf.ByteString.Empty;
                Assert.Equal(expected, StoredEventAvro.Decode(avro));
            }
            catch (FormatException)
            {
            }

            try
            {
                StoredEventAvro.Decode(Mutate(avros[i % avros.Length], rng));
                decoded++;
            }
            catch (FormatException)
            {
            }
        }
        // The mutations must not all be rejected, or the accepting path went unchecked.
        Assert.InRange(transcoded, 100, 19_900);
        Assert.InRange(decoded, 100, 19_900);
    }

    [Fact]
    public void MaxEncodedSize_HoldsForAdversarialInputs()
    {
        List<byte[]> cases =
        [
            [], // every field missing: the fixed-size fields and 1-byte defaults only
            new StoredEvent { MerchantId = 64, SiteId = 64, ReceivedMs = 64, ClientTimeMs = 64, RevenueMicros = 64, ScreenWidth = 64, EngagementMs = 64 }.ToByteArray(),
            new StoredEvent { MerchantId = ulong.MaxValue >> 1, SiteId = 1UL << 62, ReceivedMs = long.MinValue, ClientTimeMs = long.MaxValue, RevenueMicros = long.MinValue, ScreenWidth = uint.MaxValue, EngagementMs = uint.MaxValue, VisitorId = ulong.MaxValue }.ToByteArray(),
            Repeat([0x4A, 0x00], 10_000), // 10,000 empty props elements: 2 protobuf bytes each
            Repeat([0x4A, 0x02, 0x12, 0x00], 5_000), // props with a present but empty value
            Repeat([0x10, 0x40], 1_000), // merchant_id = 64 over and over: last wins
        ];
        var sixtyFour = new StoredEvent { Name = new string('n', 64), Url = new string('u', 64), Referrer = new string('r', 64), Currency = new string('c', 64), IpPrefix = new string('i', 64), UserAgent = new string('a', 64), Country = new string('o', 64), ChUaMobile = new string('m', 64), ChUaPlatform = new string('p', 64), ChUaModel = new string('d', 64), ChUaFormFactors = new string('f', 64) };
        for (int i = 0; i < 1_000; i++) sixtyFour.Props.Add(new StoredProperty { Key = new string('k', 64), Value = "" });
        cases.Add(sixtyFour.ToByteArray()); // lengths whose zigzag needs one byte more than the varint

        foreach (byte[] protobuf in cases)
        {
            int bound = StoredEventAvro.MaxEncodedSize(protobuf.Length);
            byte[] destination = new byte[bound];
            int written = StoredEventAvro.Transcode(protobuf, destination);
            Assert.InRange(written, 1, bound);
        }
    }

    [Fact]
    public void Transcode_AllocatesNothing()
    {
        // Random events (long and non-ASCII strings, 30 props, extreme numbers, missing fields),
        // each also scrambled with unknown fields and groups: every path of the transcoder.
        var rng = new Random(1);
        var events = Enumerable.Range(0, 50).Select(i => RandomEvent(rng, i, TimestampRange.Full)).ToList();
        var records = events.Select(e => e.ToByteArray()).Concat(events.Select(e => Scramble(e, rng))).ToList();
        byte[] destination = new byte[records.Max(r => StoredEventAvro.MaxEncodedSize(r.Length))];

        long total = 0;
        for (int i = 0; i < 1_000; i++) total += StoredEventAvro.Transcode(records[i % records.Count], destination); // JIT, tiering
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1_000; i++) total += StoredEventAvro.Transcode(records[i % records.Count], destination);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // Control: the counter does see allocations on this thread (Decode builds objects).
        before = GC.GetAllocatedBytesForCurrentThread();
        var decoded = StoredEventAvro.Decode(destination.AsSpan(0, StoredEventAvro.Transcode(records[2], destination)));
        long control = GC.GetAllocatedBytesForCurrentThread() - before;

        TestContext.Current.TestOutputHelper?.WriteLine($"Transcode x1000: {allocated} bytes allocated, {total} bytes written; one Decode: {control} bytes");
        Assert.Equal(0, allocated);
        Assert.True(control > 0);
        Assert.Equal(events[2], decoded);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(255)]
    [InlineData(256)]
    [InlineData(0x01020304)]
    [InlineData(int.MaxValue)]
    public void WireFormatHeader_RoundTripsWithTheAvroPayload(int schemaId)
    {
        var original = RandomEvent(new Random(schemaId), 2, TimestampRange.Full);
        byte[] avro = Transcode(original.ToByteArray());
        byte[] value = new byte[ConfluentWireFormat.HeaderSize + avro.Length];
        ConfluentWireFormat.WriteHeader(value, schemaId);
        avro.CopyTo(value.AsSpan(ConfluentWireFormat.HeaderSize));

        Assert.Equal(0, value[0]);
        Assert.Equal(schemaId, BinaryPrimitives.ReadInt32BigEndian(value.AsSpan(1)));
        Assert.True(ConfluentWireFormat.TryReadHeader(value, out int readId, out var payload));
        Assert.Equal(schemaId, readId);
        Assert.True(payload.SequenceEqual(avro));
        Assert.Equal(original, StoredEventAvro.Decode(payload));
    }

    [Fact]
    public void WireFormatHeader_IsMagicZeroThenBigEndianId()
    {
        byte[] header = new byte[ConfluentWireFormat.HeaderSize];
        ConfluentWireFormat.WriteHeader(header, 0x01020304);
        Assert.Equal(new byte[] { 0, 1, 2, 3, 4 }, header);

        Assert.True(ConfluentWireFormat.TryReadHeader(header, out int id, out var payload));
        Assert.Equal(0x01020304, id);
        Assert.True(payload.IsEmpty);
    }

    [Theory]
    [InlineData("")]
    [InlineData("00000001")]          // one byte short
    [InlineData("0100000001AA")]      // magic byte 1
    [InlineData("7B22696422")]        // JSON text, not the wire format
    public void WireFormatHeader_NotThisFormat_ReturnsFalse(string hex)
    {
        Assert.False(ConfluentWireFormat.TryReadHeader(Convert.FromHexString(hex), out int id, out var payload));
        Assert.Equal(0, id);
        Assert.True(payload.IsEmpty);
    }

    [Fact]
    public void WireFormatHeader_DestinationTooSmall_Throws()
    {
        byte[] four = new byte[4];
        Assert.Throws<ArgumentOutOfRangeException>(() => ConfluentWireFormat.WriteHeader(four, 1));
    }

    // ---- helpers ----

    /// <summary>
    /// Transcodes into a destination of exactly MaxEncodedSize bytes, so every call in these
    /// tests also checks the bound: writing past it would throw.
    /// </summary>
    private static byte[] Transcode(byte[] protobuf)
    {
        byte[] destination = new byte[StoredEventAvro.MaxEncodedSize(protobuf.Length)];
        int written = StoredEventAvro.Transcode(protobuf, destination);
        return destination[..written];
    }

    internal static void AssertSameFields(StoredEvent expected, GenericRecord actual)
    {
        Assert.Equal(expected.Id.IsEmpty ? new byte[16] : expected.Id.ToByteArray(), ((GenericFixed)actual["id"]).Value);
        Assert.Equal(expected.MerchantId, (ulong)(long)actual["merchant_id"]);
        Assert.Equal(expected.SiteId, (ulong)(long)actual["site_id"]);
        Assert.Equal(expected.ReceivedMs, Millis(actual["received_ms"]));
        Assert.Equal(expected.ClientTimeMs, Millis(actual["client_time_ms"]));
        Assert.Equal(expected.Name, (string)actual["name"]);
        Assert.Equal(expected.Url, (string)actual["url"]);
        Assert.Equal(expected.Referrer, (string)actual["referrer"]);
        var props = (object[])actual["props"];
        Assert.Equal(expected.Props.Count, props.Length);
        for (int i = 0; i < props.Length; i++)
        {
            var prop = (GenericRecord)props[i];
            Assert.Equal(expected.Props[i].Key, (string)prop["key"]);
            Assert.Equal(expected.Props[i].Value, (string)prop["value"]);
        }
        Assert.Equal(expected.RevenueMicros, (long)actual["revenue_micros"]);
        Assert.Equal(expected.Currency, (string)actual["currency"]);
        Assert.Equal(expected.ScreenWidth, (long)actual["screen_width"]);
        Assert.Equal(expected.EngagementMs, (long)actual["engagement_ms"]);
        Assert.Equal(expected.VisitorId, BinaryPrimitives.ReadUInt64LittleEndian(((GenericFixed)actual["visitor_id"]).Value));
        Assert.Equal(expected.IpPrefix, (string)actual["ip_prefix"]);
        Assert.Equal(expected.UserAgent, (string)actual["user_agent"]);
        Assert.Equal(expected.Country, (string)actual["country"]);
        Assert.Equal(expected.ChUaMobile, (string)actual["ch_ua_mobile"]);
        Assert.Equal(expected.ChUaPlatform, (string)actual["ch_ua_platform"]);
        Assert.Equal(expected.ChUaModel, (string)actual["ch_ua_model"]);
        Assert.Equal(expected.ChUaFormFactors, (string)actual["ch_ua_form_factors"]);
    }

    /// <summary>Apache.Avro maps timestamp-millis to DateTime (UTC); back to Unix milliseconds.</summary>
    private static long Millis(object value) => value switch
    {
        DateTime t => (t - DateTime.UnixEpoch).Ticks / TimeSpan.TicksPerMillisecond,
        long l => l,
        _ => throw new InvalidOperationException($"Unexpected {value.GetType()}"),
    };

    private static DateTime Timestamp(long ms) => DateTime.UnixEpoch.AddTicks(ms * TimeSpan.TicksPerMillisecond);

    /// <summary>
    /// A GenericRecord for Apache.Avro's writer, filled field by field through the protobuf
    /// descriptor by Avro field name (so an Avro field without a proto field of that name fails
    /// here), converting each value the way the schema's docs say.
    /// </summary>
    private static GenericRecord ToGenericRecord(IMessage message, RecordSchema schema)
    {
        var record = new GenericRecord(schema);
        foreach (var field in schema.Fields)
        {
            var protoField = message.Descriptor.FindFieldByName(field.Name)
                ?? throw new InvalidOperationException($"No proto field {field.Name}");
            record.Add(field.Name, ToAvroValue(field.Schema, protoField.Accessor.GetValue(message)));
        }
        return record;
    }

    private static object ToAvroValue(Schema schema, object value) => (schema, value) switch
    {
        (FixedSchema f, ByteString id) => new GenericFixed(f, id.IsEmpty ? new byte[f.Size] : id.ToByteArray()),
        (FixedSchema f, ulong fixed64) => new GenericFixed(f, LittleEndian(fixed64)), // the proto's wire bytes
        (LogicalSchema, long ms) => Timestamp(ms),
        (ArraySchema a, System.Collections.IList items) =>
            items.Cast<IMessage>().Select(m => (object)ToGenericRecord(m, (RecordSchema)a.ItemSchema)).ToArray(),
        (_, ulong u) => (long)u, // same 64 bits
        (_, uint u) => (long)u,
        (_, long or string) => value,
        _ => throw new InvalidOperationException($"No mapping for {value.GetType()} to {schema}"),
    };

    private static byte[] LittleEndian(ulong value)
    {
        byte[] bytes = new byte[sizeof(ulong)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return bytes;
    }

    // Pieces of text that cover 1- to 4-byte UTF-8, combining marks, NUL and the top code point.
    private static readonly string[] TextPieces =
        ["a", "Z", "0", " ", "/", "?", "&", "=", "%20", "é", "ß", "Ж", "中", "文", "😀", "🇫🇷", "\u0301", "\0", "\t", "\u2028", "\uFFFD", "\U0010FFFF"];

    private static string RandomText(Random rng)
    {
        int pieces = rng.Next(10) switch
        {
            0 or 1 => 0,
            2 => rng.Next(100, 3_000), // lengths past 64, 128 and 8,192 bytes: 2- and 3-byte varints
            _ => rng.Next(1, 40),
        };
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < pieces; i++) text.Append(TextPieces[rng.Next(TextPieces.Length)]);
        return text.ToString();
    }

    private static ulong RandomUInt64(Random rng) => rng.Next(6) switch
    {
        0 => 0,
        1 => ulong.MaxValue,
        2 => long.MaxValue,
        3 => 1UL << 63,
        4 => (ulong)rng.Next(1, 200),
        _ => RandomBits(rng),
    };

    private static ulong RandomBits(Random rng)
    {
        Span<byte> bytes = stackalloc byte[8];
        rng.NextBytes(bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    private static uint RandomUInt32(Random rng) => rng.Next(4) switch
    {
        0 => 0,
        1 => uint.MaxValue,
        2 => (uint)rng.Next(1, 200),
        _ => (uint)rng.NextInt64(0, 1L << 32),
    };

    /// <summary>
    /// Timestamps the test can hand to a peer. Ours take any long. Apache.Avro maps
    /// timestamp-millis to DateTime, which spans years 1 to 9999, and its writer converts back
    /// through a double (<c>(long)TimeSpan.TotalMilliseconds</c>), which is exact only while the
    /// ticks fit 57 bits (about ±456 years around 1970) and loses a millisecond beyond.
    /// </summary>
    internal readonly record struct TimestampRange(long Min, long Max)
    {
        public static readonly TimestampRange Full = new(long.MinValue, long.MaxValue);
        public static readonly TimestampRange ApacheReader = new(-62_135_596_800_000, 253_402_300_799_999);
        public static readonly TimestampRange ApacheWriter = new(-14_000_000_000_000, 14_000_000_000_000);
    }

    private static long RandomTimestamp(Random rng, TimestampRange range) => rng.Next(7) switch
    {
        0 => 0,
        1 => -1,
        2 => -1_500_000_000_000, // 1922: a client clock far in the past
        3 => 1_764_000_000_000 + rng.Next(-86_400_000, 86_400_000),
        4 => range.Min,
        5 => range.Max,
        _ => range == TimestampRange.Full ? (long)RandomUInt64(rng) : rng.NextInt64(range.Min, range.Max),
    };

    /// <summary>Event 0 has every field missing, event 1 every number at its maximum; the rest are random.</summary>
    internal static StoredEvent RandomEvent(Random rng, int index, TimestampRange timestamps)
    {
        if (index == 0) return new StoredEvent();
        if (index == 1)
        {
            var max = new StoredEvent
            {
                Id = ByteString.CopyFrom(Enumerable.Repeat((byte)0xFF, 16).ToArray()),
                MerchantId = ulong.MaxValue,
                SiteId = ulong.MaxValue,
                ReceivedMs = timestamps.Max,
                ClientTimeMs = timestamps.Min,
                RevenueMicros = long.MinValue,
                ScreenWidth = uint.MaxValue,
                EngagementMs = uint.MaxValue,
                VisitorId = ulong.MaxValue,
            };
            for (int i = 0; i < 30; i++) max.Props.Add(new StoredProperty { Key = "k" + i, Value = "v" });
            return max;
        }

        byte[] id = new byte[16];
        rng.NextBytes(id);
        id[0] |= 1; // never the nil id, which stands for "absent"
        var e = new StoredEvent
        {
            Id = rng.Next(8) == 0 ? ByteString.Empty : ByteString.CopyFrom(id),
            MerchantId = RandomUInt64(rng),
            SiteId = RandomUInt64(rng),
            ReceivedMs = RandomTimestamp(rng, timestamps),
            ClientTimeMs = RandomTimestamp(rng, timestamps),
            Name = RandomText(rng),
            Url = RandomText(rng),
            Referrer = RandomText(rng),
            RevenueMicros = (long)RandomUInt64(rng),
            Currency = RandomText(rng),
            ScreenWidth = RandomUInt32(rng),
            EngagementMs = RandomUInt32(rng),
            VisitorId = RandomUInt64(rng),
            IpPrefix = RandomText(rng),
            UserAgent = RandomText(rng),
            Country = RandomText(rng),
            ChUaMobile = RandomText(rng),
            ChUaPlatform = RandomText(rng),
            ChUaModel = RandomText(rng),
            ChUaFormFactors = RandomText(rng),
        };
        int props = rng.Next(4) == 0 ? 30 : rng.Next(0, 4);
        for (int i = 0; i < props; i++) e.Props.Add(new StoredProperty { Key = RandomText(rng), Value = RandomText(rng) });
        return e;
    }

    /// <summary>
    /// The same event encoded the way another writer might: fields in random order, unknown
    /// fields of every wire type, known numbers with the wrong wire type, stale values that a
    /// later occurrence overrides, props elements with unknown and repeated inner fields, and a
    /// uint32 sent as a 64-bit varint.
    /// </summary>
    private static byte[] Scramble(StoredEvent e, Random rng)
    {
        var chunks = new List<byte[]>();
        foreach (var field in StoredEvent.Descriptor.Fields.InFieldNumberOrder())
        {
            if (field.IsRepeated) continue;
            var single = new StoredEvent();
            field.Accessor.SetValue(single, field.Accessor.GetValue(e));
            byte[] bytes = single.ToByteArray();
            if (bytes.Length > 0) chunks.Add(bytes);
        }
        for (int i = 0; i < chunks.Count; i++)
        {
            int j = rng.Next(i, chunks.Count);
            (chunks[i], chunks[j]) = (chunks[j], chunks[i]);
        }
        // Props land anywhere among the other fields (the expected value is Google.Protobuf's
        // parse of these bytes, so any order is fine).
        foreach (var prop in e.Props)
        {
            var element = Encode(o =>
            {
                if (rng.Next(3) == 0) { o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("stale key"); }
                if (rng.Next(3) == 0) { o.WriteTag(7, WireFormat.WireType.Fixed32); o.WriteFixed32(7); }
                o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString(prop.Key);
                o.WriteTag(2, WireFormat.WireType.LengthDelimited); o.WriteString(prop.Value);
            });
            var chunk = Encode(o => { o.WriteTag(9, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(element)); });
            chunks.Insert(rng.Next(chunks.Count + 1), chunk);
        }
        var stale = new List<byte[]>
        {
            new StoredEvent { Name = "stale", MerchantId = 12345, VisitorId = 99 }.ToByteArray(),
            Encode(o => { o.WriteTag(99, WireFormat.WireType.Varint); o.WriteUInt64(ulong.MaxValue); }),
            Encode(o => { o.WriteTag(100, WireFormat.WireType.LengthDelimited); o.WriteString("unknown"); }),
            Encode(o => { o.WriteTag(101, WireFormat.WireType.Fixed32); o.WriteFixed32(1); }),
            Encode(o => { o.WriteTag(102, WireFormat.WireType.Fixed64); o.WriteFixed64(2); }),
            Encode(o =>
            {
                o.WriteTag(103, WireFormat.WireType.StartGroup);
                o.WriteTag(1, WireFormat.WireType.Varint); o.WriteUInt32(5);
                o.WriteTag(2, WireFormat.WireType.StartGroup); o.WriteTag(2, WireFormat.WireType.EndGroup);
                o.WriteTag(103, WireFormat.WireType.EndGroup);
            }),
            Encode(o => { o.WriteTag(2, WireFormat.WireType.Fixed32); o.WriteFixed32(3); }), // merchant_id, wrong wire type
            Encode(o => { o.WriteTag(9, WireFormat.WireType.Varint); o.WriteUInt32(3); }), // props, wrong wire type
            Encode(o => { o.WriteTag(14, WireFormat.WireType.Varint); o.WriteUInt64(5); }), // visitor_id, wrong wire type
        };
        foreach (var chunk in stale) chunks.Insert(rng.Next(0, Math.Min(chunks.Count, 2) + 1), chunk); // early: most real values come later and win
        if (rng.Next(2) == 0)
        {
            // A uint32 sent as a wider varint keeps its low 32 bits.
            chunks.Add(Encode(o => { o.WriteTag(12, WireFormat.WireType.Varint); o.WriteUInt64((1UL << 40) + e.ScreenWidth); }));
        }
        return chunks.SelectMany(c => c).ToArray();
    }

    private static byte[] Encode(Action<CodedOutputStream> write)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        write(output);
        output.Flush();
        return stream.ToArray();
    }

    private static byte[] Mutate(byte[] input, Random rng)
    {
        byte[] bytes = (byte[])input.Clone();
        switch (rng.Next(4))
        {
            case 0: // flip bits
                for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                return bytes;
            case 1: // random bytes
                for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                return bytes;
            case 2: // cut
                return bytes[..rng.Next(bytes.Length)];
            default: // insert a byte
                int at = rng.Next(bytes.Length + 1);
                return [.. bytes[..at], (byte)rng.Next(256), .. bytes[at..]];
        }
    }

    private static byte[] Repeat(byte[] unit, int times) => Enumerable.Repeat(unit, times).SelectMany(u => u).ToArray();

    /// <summary>A record with every field at its default, except the raw bytes given for name, props or screen_width.</summary>
    private static byte[] MinimalAvro(byte[]? name = null, byte[]? props = null, byte[]? screenWidth = null)
    {
        var bytes = new List<byte>();
        bytes.AddRange(new byte[16]); // id
        bytes.AddRange(new byte[] { 0, 0, 0, 0 }); // merchant_id, site_id, received_ms, client_time_ms
        bytes.AddRange(name ?? [0]);
        bytes.AddRange(new byte[] { 0, 0 }); // url, referrer
        bytes.AddRange(props ?? [0]);
        bytes.AddRange(new byte[] { 0, 0 }); // revenue_micros, currency
        bytes.AddRange(screenWidth ?? [0]);
        bytes.Add(0); // engagement_ms
        bytes.AddRange(new byte[8]); // visitor_id
        bytes.AddRange(new byte[] { 0, 0, 0 }); // ip_prefix, user_agent, country
        bytes.AddRange(new byte[] { 0, 0, 0, 0 }); // ch_ua_mobile, ch_ua_platform, ch_ua_model, ch_ua_form_factors
        return [.. bytes];
    }
}
