using System.Text;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Protocol;
using Google.Protobuf;

namespace Analytics.FastIngest.Tests;

/// <summary>The zero-copy reader against Google.Protobuf, the reference implementation.</summary>
public class EventBatchReaderTests
{
    [Fact]
    public void Random_valid_batches_read_exactly_as_Google_Protobuf_reads_them()
    {
        var r = new Random(42);
        for (int i = 0; i < 2000; i++)
        {
            var expected = Samples.RandomBatch(r);
            AssertSame(expected, expected.ToByteArray());
        }
    }

    [Fact]
    public void Unknown_fields_are_skipped_like_Google_Protobuf_skips_them()
    {
        var r = new Random(7);
        for (int i = 0; i < 300; i++)
        {
            var expected = Samples.RandomBatch(r, 3);
            // Append unknown fields of every wire type at the top level and inside events.
            var bytes = new List<byte>(expected.ToByteArray());
            bytes.AddRange(UnknownFields(r));
            var parsed = EventBatch.Parser.ParseFrom(bytes.ToArray());
            AssertSame(parsed, bytes.ToArray());
        }
    }

    [Fact]
    public void Fields_with_an_unexpected_wire_type_are_skipped_as_unknown()
    {
        // site_key (field 1) sent as a varint: Google.Protobuf treats it as an unknown field.
        byte[] message = [0x08, 0x05, 0x10, 0x07];
        var parsed = EventBatch.Parser.ParseFrom(message);
        Assert.True(BatchView.TryParse(message, out var view));
        Assert.Equal(parsed.Seq, view.Seq);
        Assert.True(view.SiteKey.IsEmpty);
    }

    [Fact]
    public void Every_strict_prefix_of_a_valid_batch_is_either_malformed_or_a_shorter_valid_message()
    {
        var r = new Random(3);
        var batch = Samples.RandomBatch(r, 4);
        batch.Events.Add(Samples.ValidPageview());
        var bytes = batch.ToByteArray();
        for (int length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes.AsSpan(0, length);
            bool googleOk = TryGoogle(prefix.ToArray(), out var google);
            bool oursOk = BatchView.TryParse(prefix, out var view);
            // A prefix that ends between fields is a valid, shorter message for both; anywhere
            // else both must call it malformed. Never accepted as the whole batch.
            Assert.Equal(googleOk, oursOk);
            if (oursOk) Assert.True(view.EventCount <= batch.Events.Count);
            if (googleOk && oursOk) AssertSame(google!, prefix.ToArray());
        }
    }

    [Fact]
    public void Malformed_input_is_rejected_where_Google_Protobuf_rejects_it()
    {
        // Truncated varint, length past the end, field number 0, wire types 6 and 7, a stray
        // end-group, an unterminated group, an overlong varint.
        byte[][] cases =
        [
            [0x10, 0x80],
            [0x0A, 0x05, 0x61],
            [0x00, 0x01],
            [0x0E, 0x00],
            [0x0F, 0x00],
            [0x0C],
            [0x2B, 0x08, 0x01],
            [0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            [0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
        ];
        foreach (var bytes in cases)
        {
            Assert.False(TryGoogle(bytes, out _), Convert.ToHexString(bytes));
            Assert.False(BatchView.TryParse(bytes, out _), Convert.ToHexString(bytes));
        }
    }

    [Fact]
    public void Random_bytes_never_crash_and_agree_with_Google_Protobuf_at_the_top_level()
    {
        var r = new Random(11);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] bytes;
            if (i % 2 == 0)
            {
                bytes = Samples.RandomBytes(r, r.Next(0, 64));
            }
            else
            {
                // Mutations of valid batches reach deeper than pure noise.
                bytes = Samples.RandomBatch(r, 3).ToByteArray();
                if (bytes.Length > 0)
                {
                    for (int m = 0; m < 1 + r.Next(3); m++) bytes[r.Next(bytes.Length)] = (byte)r.Next(256);
                }
            }
            bool googleOk = TryGoogle(bytes, out var google);
            bool oursOk = BatchView.TryParse(bytes, out var view);
            if (googleOk)
            {
                // Google accepted the whole message, so its structure is sound for us too.
                Assert.True(oursOk, Convert.ToHexString(bytes));
                AssertSame(google!, bytes);
            }
            else if (oursOk)
            {
                // We read events one by one: Google rejects the whole batch when one event is
                // malformed or holds invalid UTF-8; we reject only that event (UTF-8 is the
                // validator's job). Some event, or the site key, must then be bad.
                bool anyBad = !System.Text.Unicode.Utf8.IsValid(view.SiteKey);
                foreach (var raw in view.GetEvents())
                {
                    if (!EventView.TryParse(raw, out var e)) { anyBad = true; continue; }
                    anyBad |= !System.Text.Unicode.Utf8.IsValid(e.Name) || !System.Text.Unicode.Utf8.IsValid(e.Url) ||
                              !System.Text.Unicode.Utf8.IsValid(e.Referrer) || !System.Text.Unicode.Utf8.IsValid(e.Currency);
                    foreach (var prop in e.GetProperties())
                        anyBad |= !System.Text.Unicode.Utf8.IsValid(prop.Key) || !System.Text.Unicode.Utf8.IsValid(prop.Value);
                }
                Assert.True(anyBad || !TryGoogleTopLevelOnly(bytes), Convert.ToHexString(bytes));
            }
        }
    }

    [Fact]
    public void Nested_unknown_groups_are_skipped_and_deep_nesting_is_refused()
    {
        // field 9 start-group, field 10 start-group, varint, end 10, end 9, then seq = 5
        byte[] ok = [0x4B, 0x53, 0x08, 0x01, 0x54, 0x4C, 0x10, 0x05];
        Assert.True(TryGoogle(ok, out var g));
        Assert.True(BatchView.TryParse(ok, out var view));
        Assert.Equal(g!.Seq, view.Seq);

        var deep = new List<byte>();
        for (int i = 0; i < 1000; i++) deep.Add(0x4B);
        for (int i = 0; i < 1000; i++) deep.Add(0x4C);
        Assert.False(BatchView.TryParse(deep.ToArray(), out _));
    }

    private static IEnumerable<byte> UnknownFields(Random r)
    {
        var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(50, WireFormat.WireType.Varint); output.WriteUInt64((ulong)r.NextInt64());
        output.WriteTag(51, WireFormat.WireType.Fixed64); output.WriteFixed64(7);
        output.WriteTag(52, WireFormat.WireType.Fixed32); output.WriteFixed32(9);
        output.WriteTag(53, WireFormat.WireType.LengthDelimited); output.WriteString("future");
        output.WriteTag(54, WireFormat.WireType.StartGroup); output.WriteTag(1, WireFormat.WireType.Varint); output.WriteInt32(1); output.WriteTag(54, WireFormat.WireType.EndGroup);
        // An event with an unknown field inside it.
        var inner = new MemoryStream();
        var innerOut = new CodedOutputStream(inner);
        innerOut.WriteTag(1, WireFormat.WireType.LengthDelimited); innerOut.WriteBytes(ByteString.CopyFrom(new byte[16]));
        innerOut.WriteTag(2, WireFormat.WireType.LengthDelimited); innerOut.WriteString("custom");
        innerOut.WriteTag(99, WireFormat.WireType.LengthDelimited); innerOut.WriteString("from the future");
        innerOut.Flush();
        output.WriteTag(3, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(inner.ToArray()));
        output.Flush();
        return stream.ToArray();
    }

    internal static bool TryGoogle(byte[] bytes, out EventBatch? batch)
    {
        try
        {
            batch = EventBatch.Parser.ParseFrom(bytes);
            return true;
        }
        catch (InvalidProtocolBufferException)
        {
            batch = null;
            return false;
        }
    }

    /// <summary>Whether Google accepts the top level when events are treated as opaque bytes.</summary>
    private static bool TryGoogleTopLevelOnly(byte[] bytes)
    {
        try
        {
            var input = new CodedInputStream(bytes);
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                input.SkipLastField();
            }
            return true;
        }
        catch (InvalidProtocolBufferException)
        {
            return false;
        }
    }

    internal static void AssertSame(EventBatch expected, byte[] bytes)
    {
        Assert.True(BatchView.TryParse(bytes, out var view));
        Assert.Equal(expected.SiteKey, Encoding.UTF8.GetString(view.SiteKey));
        Assert.Equal(expected.Seq, view.Seq);
        Assert.Equal(expected.Events.Count, view.EventCount);
        int i = 0;
        foreach (var raw in view.GetEvents())
        {
            var e = expected.Events[i++];
            Assert.True(EventView.TryParse(raw, out var v));
            Assert.Equal(e.Id.ToByteArray(), v.Id.ToArray());
            Assert.Equal(e.Name, Encoding.UTF8.GetString(v.Name));
            Assert.Equal(e.ClientTimeMs, v.ClientTimeMs);
            Assert.Equal(e.Url, Encoding.UTF8.GetString(v.Url));
            Assert.Equal(e.Referrer, Encoding.UTF8.GetString(v.Referrer));
            Assert.Equal(e.RevenueMicros, v.RevenueMicros);
            Assert.Equal(e.Currency, Encoding.UTF8.GetString(v.Currency));
            Assert.Equal(e.ScreenWidth, v.ScreenWidth);
            Assert.Equal(e.EngagementMs, v.EngagementMs);
            Assert.Equal(e.Props.Count, v.PropertyCount);
            int p = 0;
            foreach (var prop in v.GetProperties())
            {
                Assert.Equal(e.Props[p].Key, Encoding.UTF8.GetString(prop.Key));
                Assert.Equal(e.Props[p].Value, Encoding.UTF8.GetString(prop.Value));
                p++;
            }
        }
    }
}
