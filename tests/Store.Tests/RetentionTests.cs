using System.Globalization;

namespace Analytics.Store.Tests;

/// <summary>
/// Retention periods: parsing, and the horizon the readers plan with against ClickHouse's own
/// evaluation of the TTL expression (the engine is the reference: it is what deletes the rows).
/// </summary>
public class RetentionTests(ChDbFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("forever", null)]
    [InlineData("90d", "90d")]
    [InlineData(" 12W ", "12w")]
    [InlineData("13m", "13m")]
    [InlineData("10y", "10y")]
    [InlineData("50y", "50y")]
    public void Periods_parse_as_written(string text, string? expected) =>
        Assert.Equal(expected, RetentionPeriod.Parse(text)?.ToString());

    [Theory]
    [InlineData("")]
    [InlineData("10")]
    [InlineData("10x")]
    [InlineData("0d")]
    [InlineData("-1d")]
    [InlineData("1.5y")]
    [InlineData("51y")]
    [InlineData("700m")]
    [InlineData("never")]
    public void Anything_else_is_refused_with_a_sentence(string text)
    {
        var e = Assert.Throws<FormatException>(() => RetentionPeriod.Parse(text));
        Assert.Contains($"'{text}'", e.Message);
    }

    [Theory]
    [InlineData("2026-11-30T17:00:00Z", "1d")]
    [InlineData("2026-11-30T00:00:00Z", "1d")]
    [InlineData("2026-11-30T23:59:59Z", "30d")]
    [InlineData("2026-03-30T12:00:00Z", "1m")]
    [InlineData("2026-03-01T00:00:01Z", "1m")]
    [InlineData("2024-02-29T08:00:00Z", "1y")]
    [InlineData("2025-03-01T00:00:00Z", "1y")]
    [InlineData("2026-11-30T17:00:00Z", "2w")]
    [InlineData("2026-11-30T17:00:00Z", "10y")]
    [InlineData("2026-05-31T17:00:00Z", "3m")]
    public async Task The_horizon_is_the_first_day_ClickHouse_keeps_under_the_same_TTL_expression(string nowText, string periodText)
    {
        var now = DateTimeOffset.Parse(nowText, CultureInfo.InvariantCulture);
        var period = RetentionPeriod.Parse(periodText)!.Value;
        // The TTL expression the tables get, evaluated by the engine for each day around the horizon.
        string ttl = new RetentionPolicy { Day = period }.TtlExpression(RetentionPolicy.RollupDay)!;
        var rows = await fixture.Store.QueryRowsAsync(string.Create(CultureInfo.InvariantCulture,
            $"SELECT toString(min(bucket)) FROM (SELECT toDate('{now.UtcDateTime.AddYears(-11):yyyy-MM-dd}') + number AS bucket FROM numbers(4200)) " +
            $"WHERE {ttl} > toDateTime({now.ToUnixTimeSeconds()}, 'UTC')"), Ct);
        Assert.Equal(rows[0][0].GetString(), period.KeptFrom(now).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Applying_a_policy_sets_changes_and_removes_TTLs_only_where_they_differ()
    {
        var db = await fixture.NewDatabaseAsync("retention");
        foreach (var table in RetentionPolicy.Tables)
        {
            await fixture.Store.ExecuteAsync(
                $"CREATE TABLE {db}.{table.Name} (merchant_id UInt64, {table.TimeColumn} DateTime('UTC')) ENGINE = MergeTree ORDER BY merchant_id", Ct);
        }
        var policy = new RetentionPolicy { Raw = new(400, RetentionUnit.Day), Minute = new(5, RetentionUnit.Week) };
        var changes = await RetentionApplier.ApplyAsync(fixture.Store, db, policy, cancellationToken: Ct);
        Assert.Equal(["events_raw", "rollup_minute"], changes.Select(c => c.Table));
        var ttls = await RetentionApplier.CurrentAsync(fixture.Store, db, cancellationToken: Ct);
        Assert.Equal("toDateTime(toDate(received_at), 'UTC') + toIntervalDay(400)", ttls["events_raw"]);
        Assert.Equal("toDateTime(toDate(bucket), 'UTC') + toIntervalDay(35)", ttls["rollup_minute"]);

        Assert.Empty(await RetentionApplier.ApplyAsync(fixture.Store, db, policy, cancellationToken: Ct));

        changes = await RetentionApplier.ApplyAsync(fixture.Store, db, policy with { Minute = null, Day = new(10, RetentionUnit.Year) }, cancellationToken: Ct);
        Assert.Equal(["rollup_minute", "rollup_day"], changes.Select(c => c.Table));
        ttls = await RetentionApplier.CurrentAsync(fixture.Store, db, cancellationToken: Ct);
        Assert.Equal(["events_raw", "rollup_day"], ttls.Keys.Order());
    }
}
