using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Analytics.Store.Tests;

public class RowBinaryWriterTests(ChDbFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // ---- encoding, checked byte for byte ----

    [Theory]
    [InlineData(0UL, "00")]
    [InlineData(1UL, "01")]
    [InlineData(127UL, "7F")]
    [InlineData(128UL, "8001")]
    [InlineData(300UL, "AC02")]
    [InlineData(16383UL, "FF7F")]
    [InlineData(16384UL, "808001")]
    [InlineData(ulong.MaxValue, "FFFFFFFFFFFFFFFFFF01")]
    public void WriteVarUInt_is_LEB128(ulong value, string hex)
    {
        using var writer = new RowBinaryWriter(1);
        writer.WriteVarUInt(value);
        Assert.Equal(hex, Convert.ToHexString(writer.WrittenSpan));
        Assert.Equal(hex.Length / 2, RowBinaryWriter.VarUIntLength(value));
    }

    public static TheoryData<int, char> StringLengths()
    {
        var data = new TheoryData<int, char>();
        // Around every varint boundary of both the worst-case reservation and the real length,
        // for 1-, 2- and 3-byte UTF-8 characters; and past the one-pass limit.
        int[] lengths = [0, 1, 40, 41, 42, 43, 63, 64, 127, 128, 129, 5460, 5461, 5462, 16383, 16384, 16385, 20000];
        foreach (var length in lengths)
        {
            data.Add(length, 'a');
            data.Add(length, 'é');
            data.Add(length, '日');
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(StringLengths))]
    public void WriteString_writes_the_utf8_byte_length_then_the_bytes(int length, char c)
    {
        var value = new string(c, length);
        var utf8 = Encoding.UTF8.GetBytes(value);
        using var writer = new RowBinaryWriter(8);
        writer.WriteUInt8(0xAB); // something before, so an offset start is covered
        writer.WriteString(value);
        writer.WriteUInt8(0xCD); // and after, so an over-long write would show

        using var expected = new RowBinaryWriter(8);
        expected.WriteUInt8(0xAB);
        expected.WriteVarUInt((ulong)utf8.Length);
        foreach (var b in utf8)
            expected.WriteUInt8(b);
        expected.WriteUInt8(0xCD);
        Assert.True(expected.WrittenSpan.SequenceEqual(writer.WrittenSpan));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(127)]
    [InlineData(128)]
    public void WriteString_of_ascii_ending_in_another_character_is_utf8(int length)
    {
        // Short strings are tried as ASCII first; one that is not must come out as UTF-8 whole.
        var value = new string('a', length - 1) + "é";
        using var writer = new RowBinaryWriter(8);
        writer.WriteString(value);
        using var expected = new RowBinaryWriter(8);
        expected.WriteVarUInt((ulong)(length + 1));
        foreach (var b in Encoding.UTF8.GetBytes(value))
            expected.WriteUInt8(b);
        Assert.True(expected.WrittenSpan.SequenceEqual(writer.WrittenSpan));
    }

    [Fact]
    public void Numbers_are_little_endian_fixed_width()
    {
        using var writer = new RowBinaryWriter(1);
        writer.WriteUInt16(0x0102);
        writer.WriteUInt32(0x01020304);
        writer.WriteInt64(-2);
        writer.WriteBool(true);
        Assert.Equal("0201" + "04030201" + "FEFFFFFFFFFFFFFF" + "01", Convert.ToHexString(writer.WrittenSpan));
    }

    [Fact]
    public void Growing_keeps_earlier_bytes_and_Reset_reuses_the_buffer()
    {
        using var writer = new RowBinaryWriter(1);
        for (var i = 0; i < 10_000; i++)
            writer.WriteUInt32((uint)i);
        Assert.Equal(40_000, writer.WrittenCount);
        Assert.Equal(9_999u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(writer.WrittenSpan[^4..]));
        Assert.Equal(1234u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(writer.WrittenSpan[(1234 * 4)..]));
        writer.Reset();
        Assert.Equal(0, writer.WrittenCount);
        writer.WriteUInt8(5);
        Assert.Equal([5], writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void IBufferWriter_lets_other_serializers_append()
    {
        using var writer = new RowBinaryWriter(4);
        writer.WriteUInt8(1);
        IBufferWriter<byte> bufferWriter = writer;
        var span = bufferWriter.GetSpan(100);
        Assert.True(span.Length >= 100);
        span[0] = 2;
        span[1] = 3;
        bufferWriter.Advance(2);
        Assert.Equal([1, 2, 3], writer.WrittenSpan.ToArray());
        Assert.Throws<InvalidOperationException>(() => bufferWriter.Advance(1_000_000));
    }

    [Fact]
    public void Values_that_do_not_fit_their_type_are_refused()
    {
        using var writer = new RowBinaryWriter();
        Assert.Throws<ArgumentException>(() => writer.WriteFixedString("12345"u8, 4));
        Assert.Throws<ArgumentException>(() => writer.WriteFixedString("ééé".AsSpan(), 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.WriteDate(new DateOnly(1969, 12, 31)));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.WriteDate(new DateOnly(2149, 6, 7)));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.WriteDateTime(new DateTimeOffset(1969, 12, 31, 0, 0, 0, TimeSpan.Zero)));
        Assert.Equal(0, writer.WrittenCount);
    }

    // ---- round trip through the engine: write, InsertRowBinaryAsync, read back ----

    private sealed record Row(
        uint Seq, byte U8, ushort U16, uint U32, ulong U64, int I32, long I64, double F64, bool B,
        string S, byte[] Sb, byte[] Fs, string Fss, long TsMs, DateTimeOffset Dt, DateOnly D, Guid Id,
        string[] Arr, KeyValuePair<string, string>[] M);

    private const string Structure =
        "seq UInt32, u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64, i32 Int32, i64 Int64, f64 Float64, b Bool, " +
        "s String, sb String, fs FixedString(16), fss FixedString(8), ts DateTime64(3), dt DateTime, d Date, id UUID, " +
        "arr Array(String), m Map(String, String)";

    private static Row[] SampleRows() =>
    [
        new(0, 0, 0, 0, 0, 0, 0, 0.0, false,
            "", [], [], "", 0, DateTimeOffset.UnixEpoch, new DateOnly(1970, 1, 1), Guid.Empty,
            [], []),
        new(1, byte.MaxValue, ushort.MaxValue, uint.MaxValue, ulong.MaxValue, int.MinValue, long.MinValue, double.MaxValue, true,
            "héllo 🌍 日本 \t\n\\'\"", [0x00, 0xFF, 0xFE, 0x80], [.. Enumerable.Range(1, 16).Select(i => (byte)i)], "abcdefgh",
            -1, new DateTimeOffset(2106, 2, 7, 6, 28, 15, TimeSpan.Zero), new DateOnly(2149, 6, 6),
            Guid.Parse("01234567-89ab-cdef-0123-456789abcdef"),
            ["one"], [new("k", "v")]),
        new(2, 7, 300, 70_000, 1UL << 40, -1, long.MaxValue, double.NaN, false,
            new string('x', 200) + "\uD800", [0x41], [0xDE, 0xAD, 0xBE, 0xEF], "é",
            1_732_617_296_789, new DateTimeOffset(2024, 11, 26, 10, 34, 56, TimeSpan.Zero), new DateOnly(2024, 2, 29),
            Guid.NewGuid(),
            ["a", "", "ünï", new string('z', 300)], [new("utm_source", "news"), new("", ""), new("ключ", "значение")]),
        new(3, 1, 1, 1, 1, 1, 1, double.NegativeInfinity, true,
            new string('日', 6000), [], [], "12345678",
            4_102_444_800_000, DateTimeOffset.FromUnixTimeSeconds(1), new DateOnly(2000, 1, 1),
            Guid.NewGuid(),
            [], [new("only", "pair")]),
        new(4, 2, 2, 2, 2, 2, 2, double.Epsilon, false,
            "x", [], [], "", 1, DateTimeOffset.UnixEpoch, new DateOnly(1999, 12, 31), Guid.NewGuid(),
            ["x"], []),
        new(5, 3, 3, 3, 3, 3, 3, -0.0, true,
            "y", [], [], "", 2, DateTimeOffset.UnixEpoch, new DateOnly(1999, 12, 31), Guid.NewGuid(),
            ["y"], []),
    ];

    private static void Write(RowBinaryWriter w, Row r, bool mapAsDictionary)
    {
        w.WriteUInt32(r.Seq);
        w.WriteUInt8(r.U8);
        w.WriteUInt16(r.U16);
        w.WriteUInt32(r.U32);
        w.WriteUInt64(r.U64);
        w.WriteInt32(r.I32);
        w.WriteInt64(r.I64);
        w.WriteFloat64(r.F64);
        w.WriteBool(r.B);
        w.WriteString(r.S);
        w.WriteString(r.Sb.AsSpan());
        w.WriteFixedString(r.Fs, 16);
        w.WriteFixedString(r.Fss.AsSpan(), 8);
        w.WriteDateTime64Milliseconds(r.TsMs);
        w.WriteDateTime(r.Dt);
        w.WriteDate(r.D);
        w.WriteUuid(r.Id);
        w.WriteStringArray(r.Arr);
        if (mapAsDictionary && r.M.Select(p => p.Key).Distinct().Count() == r.M.Length)
            w.WriteStringMap(new Dictionary<string, string>(r.M));
        else
            w.WriteStringMap(r.M);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_type_round_trips_through_InsertRowBinaryAsync(bool mapAsDictionary)
    {
        var db = await fixture.NewDatabaseAsync("rb");
        await fixture.Store.ExecuteAsync($"CREATE TABLE {db}.t ({Structure}) ENGINE = MergeTree ORDER BY seq", Ct);
        var rows = SampleRows();
        using var writer = new RowBinaryWriter(32); // small, so growing is exercised too
        foreach (var row in rows)
            Write(writer, row, mapAsDictionary);

        Assert.Equal(rows.Length, await fixture.Store.InsertRowBinaryAsync($"{db}.t", Structure, writer.WrittenMemory, cancellationToken: Ct));

        var back = await fixture.Store.QueryRowsAsync(
            "SELECT seq, u8, u16, u32, u64, i32, i64, reinterpretAsUInt64(f64), b, hex(s), hex(sb), hex(fs), hex(fss), " +
            "toUnixTimestamp64Milli(ts), toUnixTimestamp(dt), toString(d), toString(id), arr, mapKeys(m), mapValues(m) " +
            $"FROM {db}.t ORDER BY seq", Ct);

        Assert.Equal(rows.Length, back.Count);
        for (var i = 0; i < rows.Length; i++)
        {
            var (r, c) = (rows[i], back[i]);
            Assert.Equal(r.Seq, c[0].GetUInt32());
            Assert.Equal(r.U8, c[1].GetByte());
            Assert.Equal(r.U16, c[2].GetUInt16());
            Assert.Equal(r.U32, c[3].GetUInt32());
            Assert.Equal(r.U64, c[4].GetUInt64());
            Assert.Equal(r.I32, c[5].GetInt32());
            Assert.Equal(r.I64, c[6].GetInt64());
            Assert.Equal(BitConverter.DoubleToUInt64Bits(r.F64), c[7].GetUInt64());
            Assert.Equal(r.B, c[8].GetBoolean());
            Assert.Equal(Convert.ToHexString(Encoding.UTF8.GetBytes(r.S)), c[9].GetString());
            Assert.Equal(Convert.ToHexString(r.Sb), c[10].GetString());
            Assert.Equal(Convert.ToHexString([.. r.Fs, .. new byte[16 - r.Fs.Length]]), c[11].GetString());
            var fss = Encoding.UTF8.GetBytes(r.Fss);
            Assert.Equal(Convert.ToHexString([.. fss, .. new byte[8 - fss.Length]]), c[12].GetString());
            Assert.Equal(r.TsMs, c[13].GetInt64());
            Assert.Equal(r.Dt.ToUnixTimeSeconds(), c[14].GetInt64());
            Assert.Equal(r.D.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), c[15].GetString());
            Assert.Equal(r.Id.ToString(), c[16].GetString());
            Assert.Equal(r.Arr, c[17].EnumerateArray().Select(e => e.GetString()!));
            Assert.Equal(r.M.Select(p => p.Key), c[18].EnumerateArray().Select(e => e.GetString()!));
            Assert.Equal(r.M.Select(p => p.Value), c[19].EnumerateArray().Select(e => e.GetString()!));
        }
    }

    [Fact]
    public async Task Array_and_map_headers_compose_with_element_writers()
    {
        var db = await fixture.NewDatabaseAsync("hdr");
        const string structure = "nums Array(UInt64), attrs Map(String, UInt32)";
        await fixture.Store.ExecuteAsync($"CREATE TABLE {db}.t ({structure}) ENGINE = Memory", Ct);
        using var writer = new RowBinaryWriter();
        writer.WriteArrayHeader(3);
        writer.WriteUInt64(1);
        writer.WriteUInt64(2);
        writer.WriteUInt64(ulong.MaxValue);
        writer.WriteMapHeader(2);
        writer.WriteString("a");
        writer.WriteUInt32(10);
        writer.WriteString("b");
        writer.WriteUInt32(20);

        Assert.Equal(1, await fixture.Store.InsertRowBinaryAsync($"{db}.t", structure, writer.WrittenMemory, cancellationToken: Ct));
        var row = Assert.Single(await fixture.Store.QueryRowsAsync($"SELECT nums, attrs FROM {db}.t", Ct));
        Assert.Equal([1UL, 2UL, ulong.MaxValue], row[0].EnumerateArray().Select(e => e.GetUInt64()));
        Assert.Equal(10, row[1].GetProperty("a").GetInt32());
        Assert.Equal(20, row[1].GetProperty("b").GetInt32());
        Assert.Equal(JsonValueKind.Object, row[1].ValueKind);
    }
}
