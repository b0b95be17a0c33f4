namespace Analytics.Store.Tests;

/// <summary>
/// QueryRowBinaryAsync with RowBinaryReader against QueryRowsAsync (JSON) on the same rows: the
/// binary path reprocessing reads raw events through must give exactly what the JSON path gives,
/// for every type reprocessing reads (LowCardinality strings, maps, fixed strings, extremes).
/// </summary>
public class RowBinaryReaderTests(ChDbFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Columns = "id, site, hex(event), toUnixTimestamp64Milli(at), name, url, props, revenue, width, country";

    [Fact]
    public async Task The_binary_read_of_a_table_equals_its_JSON_read_value_for_value()
    {
        var db = await fixture.NewDatabaseAsync("rbr");
        await fixture.Store.ExecuteAsync(
            $"CREATE TABLE {db}.t (id UInt64, site UInt64, event FixedString(16), at DateTime64(3, 'UTC'), name LowCardinality(String), url String, " +
            "props Map(String, String), revenue Int64, width UInt32, country LowCardinality(String)) ENGINE = MergeTree ORDER BY id", Ct);
        await fixture.Store.ExecuteAsync(
            $"INSERT INTO {db}.t SELECT number, 18446744073709551615 - number, unhex(concat(hex(cityHash64(number)), hex(cityHash64(number + 1)))), " +
            "fromUnixTimestamp64Milli(toInt64(1767225600123 + number * 7919), 'UTC'), ['pageview', 'signup', ''][number % 3 + 1], " +
            "concat('https://ex.ample/p?q=', toString(number), if(number % 5 = 0, ' \"quoted\" \\\\ tab\\t ümlaut 日本 😀', '')), " +
            "if(number % 4 = 0, map(), map('k', toString(number), 'x\"y', '\\n')), toInt64(number) * -1000003, toUInt32(4294967295 - number), ['DE', '', 'FR'][number % 3 + 1] " +
            "FROM numbers(2000)", Ct);

        string sql = $"SELECT {Columns} FROM {db}.t ORDER BY id";
        var json = await fixture.Store.QueryRowsAsync(sql, Ct);
        var binary = await fixture.Store.QueryRowBinaryAsync(sql.Replace("hex(event)", "event", StringComparison.Ordinal), static data =>
        {
            var rows = new List<string>();
            var r = new RowBinaryReader(data);
            while (!r.End)
            {
                rows.Add(string.Join(" | ", r.ReadUInt64(), r.ReadUInt64(), Convert.ToHexString(r.ReadFixedString(16)), r.ReadInt64(),
                    r.ReadString(), r.ReadString(), string.Join(",", r.ReadStringMap().Select(p => p.Key + "=" + p.Value)),
                    r.ReadInt64(), r.ReadUInt32(), r.ReadString()));
            }
            return rows;
        }, Ct);

        var expected = json.Select(c => string.Join(" | ", c[0].GetUInt64(), c[1].GetUInt64(), c[2].GetString(), c[3].GetInt64(),
            c[4].GetString(), c[5].GetString(), string.Join(",", c[6].EnumerateObject().Select(p => p.Name + "=" + p.Value.GetString())),
            c[7].GetInt64(), c[8].GetUInt32(), c[9].GetString())).ToList();
        Assert.Equal(2000, expected.Count);
        Assert.Equal(expected, binary);
        Assert.Contains(binary, r => r.Contains("ümlaut 日本 😀", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_empty_result_reads_as_no_rows()
    {
        int rows = await fixture.Store.QueryRowBinaryAsync("SELECT number FROM numbers(0)", static data =>
        {
            var r = new RowBinaryReader(data);
            int n = 0;
            while (!r.End) { r.ReadUInt64(); n++; }
            return n;
        }, Ct);
        Assert.Equal(0, rows);
    }

    [Fact]
    public void Reading_past_the_end_or_a_length_beyond_the_data_is_refused_without_reading_outside()
    {
        byte[] truncatedNumber = [1, 2, 3];
        Assert.Throws<InvalidDataException>(() => new RowBinaryReader(truncatedNumber).ReadUInt64());
        byte[] stringLongerThanData = [5, (byte)'a', (byte)'b'];
        Assert.Throws<InvalidDataException>(() => new RowBinaryReader(stringLongerThanData).ReadString());
        byte[] hugeMapCount = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0];
        Assert.Throws<InvalidDataException>(() => new RowBinaryReader(hugeMapCount).ReadStringMap());
        byte[] endlessVarint = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        Assert.Throws<InvalidDataException>(() => new RowBinaryReader(endlessVarint).ReadVarUInt());
    }
}
