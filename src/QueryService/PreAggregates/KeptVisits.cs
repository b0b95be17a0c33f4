using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// A large site's day for the visit rollup's questions (entry and exit pages, the main graph's
/// bounce rate and visit duration, a visit dimension's top list), kept one row per visit, so that
/// after a Rollup round only the visits the round wrote are read again (their rows carry the
/// round's write_version, schemas/clickhouse/015). DailyRowsCache asks it for the one day it reads
/// of such a question, which on a busy site is today after each round.
/// <para>
/// Why per visit: the dimension rollup's kept day is brought up to date by reading again the values
/// a round wrote (DailyRowsCache's readWritten), but the visit rollup's cannot be: a visit's exit
/// page, and its entry page when it began without a pageview, move from one value to another, and
/// the value a visit left is not among the round's rows. Kept per visit, it is known. Reading the
/// largest test merchant's today whole (13,929 visits, 7,547 entry pages) took 28-44 ms of engine
/// time a question; its written visits are a few.
/// </para>
/// <para>
/// Exact because a day's visits are kept only at a site-day version (SiteDayWrites) read while no
/// write of it ran and unchanged after the statement, as DailyRowsCache keeps a day: they are then
/// exactly the rounds up to that version. A round that began after it has a higher version, on
/// every row it writes; so the visits with a row of a higher version are the ones changed since,
/// and each is read over all its rows and replaces the visit kept. Days are kept per active
/// generation (reprocessing writes a new one, with version 0, which is read whole once active); a
/// read during which an activation started is not used at all.
/// </para>
/// <para>
/// The per-visit rows are the engine's (VisitRollupPlanner.VisitsStatement merges each visit's
/// rows as the grouped statement does); what is done here is that statement's last step, per
/// value: count() of visits, the sums, countIf(pv &lt;= 1 AND ia = 0) bounces and
/// uniqExact(visitor_id), the last as a count of visits per visitor and value.
/// </para>
/// </summary>
/// <param name="maxVisits">Visits kept at most (<see cref="MaxVisits"/>; smaller in tests).</param>
public sealed class KeptVisits(string database, SiteDayWrites writes, GenerationActivations activations, int maxVisits = KeptVisits.MaxVisits)
{
    /// <summary>Visits kept at most: past it the least recently used days go until half is left.
    /// A visit costs an estimated 100-250 bytes (its row, its visitor's entry in its value's
    /// visitors, the dictionaries' spare room; the values' own sums come on top, one per value).
    /// The largest test merchant's today is 13,929 visits per dimension asked.</summary>
    public const int MaxVisits = 500_000;

    private sealed class Sums(string value)
    {
        public readonly string Value = value;
        public long Visits, Pageviews, Events, EngagementMs, Bounces, DurationMs;
        /// <summary>The value's visits per visitor: its visitors are the keys.</summary>
        public readonly Dictionary<ulong, int> Visitors = [];
    }

    private sealed class Day(ulong generation) : KeptDay(generation)
    {
        public readonly Dictionary<ulong, VisitRow> Visits = [];
        public readonly Dictionary<string, Sums> Values = new(StringComparer.Ordinal);
        public override long Size => Visits.Count;
    }

    private readonly KeptDays<(long Merchant, long Site, string Dimension, DateOnly Date), Day> _days = new(database, writes, activations, maxVisits);

    /// <summary>Days read whole, and days brought up to date by the visits written since (tests and docs).</summary>
    public long DaysRead => _days.DaysRead;
    public long DaysUpdated => _days.DaysUpdated;

    /// <summary>
    /// The day's rows per value of <paramref name="dimension"/> (DailyRowsCache's DayRow, the raw
    /// columns of VisitRollupPlanner.ReadDaily): from the kept visits brought up to date, or from
    /// all of the day's visits. Null when an activation started meanwhile.
    /// </summary>
    /// <param name="read">Reads the day's visits (VisitRollupPlanner.VisitsStatement), or with a
    /// version only those written since.</param>
    public Task<List<DayRow>?> ReadAsync(long merchantId, long siteId, string dimension, DateOnly date, ulong generation, long started,
        Func<long?, Task<List<VisitRow>>> read)
    {
        var key = (merchantId, siteId, dimension, date);
        return UpdateAsync(key, _days.Take(key, generation), generation, started, read, whole: true);
    }

    /// <summary>
    /// The rows of the values that changed since the day was kept at <paramref name="since"/>: each
    /// value's numbers over the whole day, a row of zeros for a value no visit has any more. Null
    /// when the day is not kept at that version (the caller reads it whole) or an activation started.
    /// </summary>
    public async Task<List<DayRow>?> ReadWrittenAsync(long merchantId, long siteId, string dimension, DateOnly date, ulong generation, long since,
        long started, Func<long?, Task<List<VisitRow>>> read)
    {
        var key = (merchantId, siteId, dimension, date);
        if (_days.Take(key, generation) is not { } day) return null;
        if (day.Version != since)
        {
            // Kept at another version (a read whose numbers DailyRowsCache did not keep): left for
            // the whole read, which brings it up to date from there.
            _days.PutBack(key, day);
            return null;
        }
        return await UpdateAsync(key, day, generation, started, read, whole: false);
    }

    private Task<List<DayRow>?> UpdateAsync((long Merchant, long Site, string Dimension, DateOnly Date) key, Day? day, ulong generation,
        long started, Func<long?, Task<List<VisitRow>>> read, bool whole) =>
        _days.UpdateAsync(key, key.Merchant, key.Site, key.Date, day, () => new Day(generation), started, read, (day, visits) =>
        {
            var changed = new HashSet<Sums>();
            var gone = new List<string>();
            foreach (var visit in visits)
            {
                if (day.Visits.TryGetValue(visit.Id, out var old) && Remove(day, old) is { } left)
                {
                    changed.Add(left);
                    if (left.Visits == 0) gone.Add(left.Value);
                }
                changed.Add(Add(day, visit));
            }
            var rows = new List<DayRow>(whole ? day.Values.Count : changed.Count);
            foreach (var sums in whole ? day.Values.Values : (IEnumerable<Sums>)changed)
                if (!whole || sums.Visits > 0)
                    rows.Add(new DayRow(key.Date, sums.Value, sums.Visits == 0 ? new long[11] :
                        [sums.Visitors.Count, sums.Visits, sums.Pageviews, sums.Events, sums.EngagementMs, 0, sums.Pageviews, sums.Bounces, sums.DurationMs, 0, 0]));
            foreach (var value in gone)
                if (day.Values.TryGetValue(value, out var sums) && sums.Visits == 0) day.Values.Remove(value);
            return rows;
        });

    private static Sums Add(Day day, VisitRow visit)
    {
        if (!day.Values.TryGetValue(visit.Value, out var sums)) day.Values[visit.Value] = sums = new Sums(visit.Value);
        day.Visits[visit.Id] = visit with { Value = sums.Value }; // the value's one string, not one per visit
        sums.Visits++;
        sums.Pageviews += visit.Pageviews;
        sums.Events += visit.Events;
        sums.EngagementMs += visit.EngagementMs;
        sums.DurationMs += visit.DurationMs;
        if (visit.Pageviews <= 1 && visit.Interactions == 0) sums.Bounces++;
        sums.Visitors[visit.Visitor] = sums.Visitors.GetValueOrDefault(visit.Visitor) + 1;
        return sums;
    }

    private static Sums? Remove(Day day, VisitRow visit)
    {
        if (!day.Values.TryGetValue(visit.Value, out var sums)) return null;
        sums.Visits--;
        sums.Pageviews -= visit.Pageviews;
        sums.Events -= visit.Events;
        sums.EngagementMs -= visit.EngagementMs;
        sums.DurationMs -= visit.DurationMs;
        if (visit.Pageviews <= 1 && visit.Interactions == 0) sums.Bounces--;
        if (sums.Visitors[visit.Visitor] == 1) sums.Visitors.Remove(visit.Visitor);
        else sums.Visitors[visit.Visitor]--;
        return sums;
    }
}

/// <summary>One visit of a day as VisitRollupPlanner.VisitsStatement reads it: its rows merged, and
/// the value of the dimension asked.</summary>
public readonly record struct VisitRow(ulong Id, ulong Visitor, long Pageviews, long Interactions, long Events, long EngagementMs, long DurationMs, string Value);
