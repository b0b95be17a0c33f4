using System.Globalization;
using System.Text;
using Analytics.QueryService.Goals;
using Analytics.QueryService.PreAggregates;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// FunnelLevels computes in memory the level FunnelReader's statements compute in the engine (for
/// a busy site's day kept per visitor): the engine is the reference. Random visitors, many events
/// in the same millisecond (a batch), events that complete several steps, chains at the window's
/// edge; every visitor's level from FunnelLevels equals the one from each statement form.
/// </summary>
public class FunnelLevelsTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(2, 20, 1)]
    [InlineData(4, 15, 2)]
    [InlineData(4, 1000, 3)]
    [InlineData(8, 40, 4)]
    public async Task Every_visitors_level_equals_the_engines(int steps, long windowMs, int seed)
    {
        var random = new Random(seed);
        var visitors = new List<FunnelEvent[]>();
        for (int v = 0; v < 400; v++)
        {
            // Times over a few windows, drawn from few milliseconds so that batches share one; log
            // offsets unique per visitor (one log source), masks of any steps (0: another event).
            int count = random.Next(1, 16);
            var offsets = Enumerable.Range(0, 64).OrderBy(_ => random.Next()).Take(count).ToArray();
            visitors.Add([.. Enumerable.Range(0, count).Select(i => new FunnelEvent(
                (ulong)(1_000_000 + random.Next(0, (int)(windowMs * 3 / 5 + 1)) * 5), (ulong)offsets[i],
                (ushort)(random.Next(3) == 0 ? 0 : random.Next(1, 1 << steps))))]);
        }
        // Each visitor its own "day" (the statements' by-day form groups by visitor and day).
        var values = new StringBuilder();
        for (int v = 0; v < visitors.Count; v++)
            foreach (var e in visitors[v])
                values.Append(CultureInfo.InvariantCulture, $"{(values.Length == 0 ? "" : ", ")}(7, {v}, {e.T}, {e.LogOffset}, {e.Mask})");
        string events = $"SELECT visitor_id, toDate(day) AS day, t, log_offset, mask FROM values('visitor_id UInt64, day UInt16, t UInt64, log_offset UInt64, mask UInt16', {values})";

        foreach (var (form, sql) in new[]
        {
            ("sequential, small-site form", FunnelReader.SequentialLevels(events, steps, windowMs, largeSite: false, byDay: true)),
            ("sequential, large-site form", FunnelReader.SequentialLevels(events, steps, windowMs, largeSite: true, byDay: true)),
            ("strict", FunnelReader.StrictLevels(events, steps, windowMs, byDay: true)),
        })
        {
            var rows = await engine.Store.QueryRowsAsync($"SELECT toUInt16(day), level FROM ({sql}) ORDER BY 1", Ct);
            var fromEngine = rows.Select(r => (int)r[1].GetInt64()).ToArray();
            bool strict = form == "strict";
            var inMemory = visitors.Select(events =>
            {
                var sorted = events.Where(e => strict || e.Mask != 0).Order().ToArray();
                return strict ? FunnelLevels.Strict(sorted, steps, windowMs) : FunnelLevels.Sequential(sorted, steps, windowMs);
            });
            // Visitors without any step event have no row in the sequential forms: level 0.
            var expected = rows.Count == visitors.Count ? fromEngine
                : Enumerable.Range(0, visitors.Count).Select(v => rows.FirstOrDefault(r => r[0].GetInt64() == v) is { } r ? (int)r[1].GetInt64() : 0).ToArray();
            Assert.Equal(expected, inMemory);
            // The random visitors reach far, not only the first step (all four of four).
            Assert.True(expected.Max() >= Math.Min(steps, 4), $"{form}: at most {expected.Max()}");
            Assert.True(expected.Distinct().Count() >= Math.Min(steps, 3), $"{form}: levels {string.Join(",", expected.Distinct())}");
        }
    }

    [Fact]
    public void A_visitor_with_thirty_thousand_events_reaches_the_last_step()
    {
        // As FunnelStatementTests: a step-1 event per millisecond, then the four steps in one
        // batch in log order; and the same four in reverse log order, which reaches step 1 only.
        var first = Enumerable.Range(0, 30_000 - 4).Select(i => new FunnelEvent((ulong)(1000 + i), (ulong)i, 1))
            .Concat(Enumerable.Range(0, 4).Select(k => new FunnelEvent(1000 + 30_000 - 4, (ulong)(30_000 - 4 + k), (ushort)(1 << k)))).ToArray();
        var reversed = Enumerable.Range(0, 4).Select(k => new FunnelEvent(5000, (ulong)k, (ushort)(1 << (3 - k)))).ToArray();
        Assert.Equal((4, 4), (FunnelLevels.Sequential(first, 4, 1_800_000), FunnelLevels.Strict(first, 4, 1_800_000)));
        Assert.Equal((1, 1), (FunnelLevels.Sequential(reversed, 4, 1_800_000), FunnelLevels.Strict(reversed, 4, 1_800_000)));
    }
}
