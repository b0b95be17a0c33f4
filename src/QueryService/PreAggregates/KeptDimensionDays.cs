using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// A large site's day of one dimension's questions kept between Rollup rounds (KeptDays) in a
/// form that rows read again add to: KeptVisits (per visit, for the visit rollup) and
/// KeptEventValues (per value from the events, for the dimension rollup's).
/// DailyRowsCache asks it for the one day it reads of such a question, which on a busy site is
/// today after each round: whole (<see cref="ReadAsync"/>) or only the values that changed since
/// the version DailyRowsCache kept the day at (<see cref="ReadWrittenAsync"/>).
/// </summary>
/// <typeparam name="TRow">What a read gives: the day's rows, or with a version those written since.</typeparam>
public abstract class KeptDimensionDays<TRow>
{
    private readonly KeptDays<(long Merchant, long Site, string Dimension, DateOnly Date), KeptDay> _days;

    private protected KeptDimensionDays(string database, SiteDayWrites writes, GenerationActivations activations, long max) =>
        _days = new(database, writes, activations, max);

    /// <summary>Days read whole, and days brought up to date by the rows written since (tests and docs).</summary>
    public long DaysRead => _days.DaysRead;
    public long DaysUpdated => _days.DaysUpdated;

    /// <summary>
    /// The day's rows per value of <paramref name="dimension"/> (DailyRowsCache's DayRow): from
    /// the kept day brought up to date by the rows written since, or from all of the day's rows.
    /// Null when an activation started meanwhile.
    /// </summary>
    /// <param name="read">Reads the day's rows, or with a version only those written since.</param>
    public Task<List<DayRow>?> ReadAsync(long merchantId, long siteId, string dimension, DateOnly date, ulong generation, long started,
        Func<long?, Task<TRow>> read)
    {
        var key = (merchantId, siteId, dimension, date);
        return UpdateAsync(key, _days.Take(key, generation), generation, started, read, whole: true);
    }

    /// <summary>
    /// The rows of the values that changed since the day was kept at <paramref name="since"/>, each
    /// value's numbers over the whole day (a row of zeros for a value left with none), as
    /// DailyRowsCache's readWritten gives them. Null when the day is not kept at that version
    /// (the caller reads it whole) or an activation started.
    /// </summary>
    public async Task<List<DayRow>?> ReadWrittenAsync(long merchantId, long siteId, string dimension, DateOnly date, ulong generation, long since,
        long started, Func<long?, Task<TRow>> read)
    {
        var key = (merchantId, siteId, dimension, date);
        return _days.TakeAt(key, generation, since) is { } day ? await UpdateAsync(key, day, generation, started, read, whole: false) : null;
    }

    private Task<List<DayRow>?> UpdateAsync((long Merchant, long Site, string Dimension, DateOnly Date) key, KeptDay? day, ulong generation,
        long started, Func<long?, Task<TRow>> read, bool whole) =>
        _days.UpdateAsync(key, key.Merchant, key.Site, key.Date, day, () => NewDay(generation), started, read, (day, rows) => Apply(day, rows, key.Dimension, key.Date, whole));

    /// <summary>An empty day of <paramref name="generation"/>.</summary>
    private protected abstract KeptDay NewDay(ulong generation);

    /// <summary>Adds <paramref name="rows"/> to <paramref name="day"/> (one of <see cref="NewDay"/>'s,
    /// of <paramref name="dimension"/>) and gives its rows: every value's with <paramref name="whole"/>,
    /// else those the rows changed.</summary>
    private protected abstract List<DayRow> Apply(KeptDay day, TRow rows, string dimension, DateOnly date, bool whole);
}
