namespace Analytics.Store.Tests;

public class SiteDayWritesTests
{
    private static readonly DateOnly Day = new(2026, 2, 10);

    private static long Version(SiteDayWrites writes, ulong site, DateOnly day)
    {
        Assert.True(writes.TryQuiet("db", 1, site, day, out long version));
        return version;
    }

    [Fact]
    public void A_write_moves_its_site_days_version_at_its_start_and_end_and_is_not_quiet_meanwhile()
    {
        var writes = new SiteDayWrites();
        long before = Version(writes, 10, Day);
        writes.Begin("db", [(1, 10, Day)]);
        Assert.False(writes.TryQuiet("db", 1, 10, Day, out long running));
        Assert.NotEqual(before, running);
        writes.Begin("db", [(1, 10, Day)]); // a second write of the same site-day (another Rollup)
        writes.End("db", [(1, 10, Day)]);
        Assert.False(writes.TryQuiet("db", 1, 10, Day, out _));
        writes.End("db", [(1, 10, Day)]);
        long after = Version(writes, 10, Day);
        Assert.NotEqual(running, after);
        Assert.Equal(after, Version(writes, 10, Day));
        // Other site-days, and the same site-day of another database, leave it as it is.
        writes.Begin("db", [(1, 11, Day), (1, 10, Day.AddDays(1))]);
        writes.Begin("other", [(1, 10, Day)]);
        Assert.Equal(after, Version(writes, 10, Day));
        Assert.Throws<InvalidOperationException>(() => writes.End("db", [(1, 12, Day)]));
    }

    [Fact]
    public void A_forgotten_site_day_never_reads_as_a_version_from_before_its_last_write()
    {
        var writes = new SiteDayWrites(maxSiteDays: 3);
        long never = Version(writes, 10, Day); // read before the site-day was ever written
        writes.Begin("db", [(1, 10, Day)]);
        writes.End("db", [(1, 10, Day)]);
        long written = Version(writes, 10, Day);
        Assert.NotEqual(never, written);

        // More site-days than the bound: the quiet ones are forgotten, the running one is not.
        writes.Begin("db", [(1, 20, Day)]);
        writes.Begin("db", [(1, 21, Day)]);
        writes.End("db", [(1, 21, Day)]);
        writes.Begin("db", [(1, 22, Day)]);
        writes.End("db", [(1, 22, Day)]);
        Assert.False(writes.TryQuiet("db", 1, 20, Day, out _));
        long forgotten = Version(writes, 10, Day);
        Assert.NotEqual(never, forgotten);
        // A version read while forgotten is not the version after the next write.
        writes.Begin("db", [(1, 10, Day)]);
        writes.End("db", [(1, 10, Day)]);
        Assert.NotEqual(forgotten, Version(writes, 10, Day));
        Assert.NotEqual(never, Version(writes, 10, Day));
    }
}
