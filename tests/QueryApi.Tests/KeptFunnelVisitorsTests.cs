using Analytics.QueryService.PreAggregates;
using Analytics.Store;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// How a large site's day is kept between rounds (KeptDays, behind KeptFunnelVisitors and
/// KeptVisits), without an engine: what each read is asked (the whole day, or what was written
/// since the version kept), that nothing is kept across a write or an activation, and the bound
/// on what is kept.
/// </summary>
public class KeptFunnelVisitorsTests
{
    private const string Db = "db";
    private static readonly DateOnly Day = new(2026, 1, 15);
    private const string Shape = "funnel: any page then signup";

    private readonly SiteDayWrites _writes = new();
    private readonly GenerationActivations _activations = new();
    /// <summary>What each read was asked: null for the whole day, else the version kept.</summary>
    private readonly List<long?> _asked = [];

    /// <summary>Visitor v's events: a pageview (step 1) and, for an even v, a signup 10 ms later (step 2).</summary>
    private static List<(ulong, FunnelEvent)> Visitors(params ulong[] visitors) =>
        [.. visitors.SelectMany(v => v % 2 == 0
            ? new[] { (v, new FunnelEvent(1000 + v, v * 2, 1)), (v, new FunnelEvent(1010 + v, v * 2 + 1, 2)) }
            : [(v, new FunnelEvent(1000 + v, v * 2, 1))])];

    private Task<List<DayRow>?> AskAsync(KeptFunnelVisitors kept, long site, List<(ulong, FunnelEvent)> written, Action? duringRead = null) =>
        kept.ReadAsync(1, site, Shape, 2, Day, 0, _activations.Started, since =>
        {
            _asked.Add(since);
            duringRead?.Invoke();
            return Task.FromResult(written);
        }, events => events.Any(e => e.Mask == 1) ? events.Any(e => e.Mask == 2) ? 2 : 1 : 0);

    private static string Levels(List<DayRow>? rows) => rows is null ? "null" : string.Join(" ", rows.Select(r => $"{r.Value}:{r.Counts[0]}"));

    private long Round(long site)
    {
        (ulong, ulong, DateOnly)[] siteDay = [(1, (ulong)site, Day)];
        long version = _writes.Begin(Db, siteDay);
        _writes.End(Db, siteDay);
        return version;
    }

    [Fact]
    public async Task A_round_is_read_by_what_it_wrote_and_nothing_is_kept_across_a_write_or_an_activation()
    {
        var kept = new KeptFunnelVisitors(Db, _writes, _activations);
        Assert.Equal("1:2 2:1", Levels(await AskAsync(kept, 1, Visitors(1, 2, 3))));
        _writes.TryQuiet(Db, 1, 1, Day, out long version);
        // A round: visitor 1 reaches step 2, visitor 4 is new.
        Round(1);
        Assert.Equal("1:1 2:3", Levels(await AskAsync(kept, 1, [(1, new FunnelEvent(1020, 100, 2)), .. Visitors(4)])));
        Assert.Equal([null, version], _asked);
        Assert.Equal((1, 1), (kept.DaysRead, kept.DaysUpdated));

        // A write begun during the read: what was read is answered, not kept.
        _writes.TryQuiet(Db, 1, 1, Day, out version);
        Round(1);
        Assert.Equal("1:1 2:3", Levels(await AskAsync(kept, 1, [], duringRead: () => Round(1))));
        Assert.Equal(version, _asked[^1]);
        Assert.Equal("1:1 2:3", Levels(await AskAsync(kept, 1, [(1, new FunnelEvent(1020, 100, 2)), .. Visitors(1, 2, 3, 4)])));
        Assert.Null(_asked[^1]);

        // An activation started during the read: not answered, not kept.
        Assert.Null(await AskAsync(kept, 1, [], duringRead: () => _activations.Starting()));
        Assert.NotNull(_asked[^1]);
        _activations.Finished();
        Assert.Equal("1:2 2:1", Levels(await AskAsync(kept, 1, Visitors(1, 2, 3))));
        Assert.Null(_asked[^1]);
        Assert.Equal((3, 2), (kept.DaysRead, kept.DaysUpdated)); // the read dropped counts neither
    }

    [Fact]
    public async Task Past_the_bound_the_least_recently_used_days_go_until_half_is_left()
    {
        // At most 10 events: sites 1 and 2 keep 4 each; site 3's 4 more drop 1 and 2, oldest first,
        // until at most 5 are left.
        var kept = new KeptFunnelVisitors(Db, _writes, _activations, maxEvents: 10);
        foreach (long site in new[] { 1L, 2, 3 })
            await AskAsync(kept, site, Visitors(2, 4));
        Assert.Equal([null, null, null], _asked);
        foreach (long site in new[] { 3L, 1, 2 })
        {
            Round(site);
            await AskAsync(kept, site, []);
        }
        // Site 3 brought up to date from its version; 1 and 2 read whole again.
        Assert.Equal([true, false, false], _asked.Skip(3).Select(v => v is not null));
    }
}
