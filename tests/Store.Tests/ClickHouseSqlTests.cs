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

    [Theory]
    [InlineData("SELECT 1", true)]
    [InlineData("  select count() FROM t", true)]
    [InlineData("WITH (SELECT 1) AS a SELECT a", true)]
    [InlineData("(SELECT 1) UNION ALL (SELECT 2)", true)]
    [InlineData("-- note\nSELECT 1", true)]
    [InlineData("/* a */ /* b */\n SELECT 1", true)]
    [InlineData("SHOW TABLES", true)]
    [InlineData("DESCRIBE TABLE t", true)]
    [InlineData("DESC t", true)]
    [InlineData("EXPLAIN indexes = 1 SELECT 1", true)]
    [InlineData("EXISTS TABLE t", true)]
    [InlineData("CREATE TABLE t (a UInt8) ENGINE = Memory", false)]
    [InlineData("INSERT INTO t SELECT 1", false)]
    [InlineData("ALTER TABLE t DROP PARTITION 1", false)]
    [InlineData("SET os_thread_priority = 1", false)]
    [InlineData("# note\nSELECT 1", true)]
    [InlineData("/* outer /* inner */ still a comment; CREATE */ SELECT 1", true)]
    [InlineData("/* outer /* inner */ SELECT 1 */ CREATE TABLE t (a UInt8) ENGINE = Memory", false)]
    [InlineData("FROM t SELECT a", true)]
    [InlineData("CHECK TABLE t", true)]
    [InlineData("CREATED 1", true)]
    [InlineData("SYSTEM STOP MERGES t", false)]
    [InlineData("OPTIMIZE TABLE t FINAL", false)]
    [InlineData("TRUNCATE TABLE t", false)]
    [InlineData("-- only a comment", false)]
    [InlineData("/* unterminated SELECT 1", false)]
    [InlineData("", false)]
    public void ReturnsResultSet_is_false_only_for_statements_that_never_answer_rows(string sql, bool expected)
    {
        Assert.Equal(expected, ClickHouseSql.ReturnsResultSet(sql));
    }
}
