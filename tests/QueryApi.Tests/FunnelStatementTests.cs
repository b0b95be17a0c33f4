using System.Globalization;
using Analytics.QueryService.Goals;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// The funnel statements (FunnelReader) on one visitor with 30,000 events, as a shared address
/// (a NAT, one browser) gives on a large site: every form answers, and answers what the
/// definitions say. A form whose lambdas read the visitor's array by index copies the array per
/// element (quadratic: 16 s at 10,000 events, gigabytes at 30,000).
/// </summary>
public class FunnelStatementTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const int Events = 30_000;
    private const long WindowMs = 1_800_000;

    /// <summary>
    /// Visitor 1: a step-1 event per millisecond, then
    /// the four steps in order as one batch (one millisecond, in log order). Visitor 2: the same
    /// four steps in one millisecond in reverse log order.
    /// </summary>
    private static string EventsSql() => string.Create(CultureInfo.InvariantCulture, $"""
        SELECT toUInt64(1) AS visitor_id, toUInt64(1000 + least(number, {Events - 4})) AS t, number AS log_offset,
          toUInt16(multiIf(number >= {Events - 4}, bitShiftLeft(1, greatest(number, {Events - 4}) - {Events - 4}), 1)) AS mask
        FROM numbers({Events})
        UNION ALL
        SELECT toUInt64(2), toUInt64(5000), number, toUInt16(bitShiftLeft(1, 3 - number)) FROM numbers(4)
        """);

    [Theory]
    [InlineData("sequential, small-site form")]
    [InlineData("sequential, large-site form")]
    [InlineData("strict")]
    public async Task A_visitor_with_thirty_thousand_events_is_counted_by_every_form(string form)
    {
        string perVisitor = form switch
        {
            "strict" => FunnelReader.StrictLevels(EventsSql(), 4, WindowMs),
            _ => FunnelReader.SequentialLevels(EventsSql(), 4, WindowMs, largeSite: form.Contains("large", StringComparison.Ordinal)),
        };
        var rows = await engine.Store.QueryRowsAsync($"SELECT toString(arraySort(groupArray(level))) FROM ({perVisitor})", Ct);
        // Visitor 1 reaches step 4 by its last batch (sequential and strict alike: its steps are
        // back to back). Visitor 2's steps come in reverse order within their millisecond: step 1
        // is its last event, so it reaches 1.
        Assert.Equal("[1,4]", rows[0][0].GetString());
    }
}
