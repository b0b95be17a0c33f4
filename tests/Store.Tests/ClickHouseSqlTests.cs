namespace Analytics.Store.Tests;

public class ClickHouseSqlTests(ChDbFixture fixture)
{
    [Theory]
    [InlineData("plain")]
    [InlineData("it's")]
    [InlineData(@"back\slash \' mixed")]
    [InlineData("new\nline\ttab\rcr")]
    [InlineData("nul\0byte")]
    [InlineData("ünïcødé 🌍")]
    [InlineData("")]
    public void StringLiteral_round_trips_through_the_engine(string value)
    {
        var hex = fixture.Engine.Query($"SELECT hex({ClickHouseSql.StringLiteral(value)})").TrimEnd('\n');
        Assert.Equal(Convert.ToHexString(System.Text.Encoding.UTF8.GetBytes(value)), hex);
    }

    [Fact]
    public void ColumnNames_splits_at_top_level_commas_only()
    {
        Assert.Equal(["id", "tags", "`odd, name`", "m", "e"],
            ClickHouseSql.ColumnNames("id UInt64, tags Array(String),`odd, name` String,\n m Map(String, Tuple(a UInt8, b String)), e Enum8('a,b' = 1, 'c' = 2)"));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("a UInt64, (b String")]
    [InlineData("1a UInt64")]
    [InlineData("a UInt64,, b String")]
    public void ColumnNames_rejects_malformed_structures(string structure)
    {
        Assert.Throws<ArgumentException>(() => ClickHouseSql.ColumnNames(structure));
    }

    [Theory]
    [InlineData("events", true)]
    [InlineData("_x9", true)]
    [InlineData("9x", false)]
    [InlineData("a-b", false)]
    [InlineData("a b", false)]
    [InlineData("", false)]
    public void IsPlainIdentifier_accepts_only_ascii_word_names(string name, bool expected)
    {
        Assert.Equal(expected, ClickHouseSql.IsPlainIdentifier(name));
    }
}
