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
    : KeptDimensionDays<List<VisitRow>>(database, writes, activations, maxVisits)
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

    private protected override KeptDay NewDay(ulong generation) => new Day(generation);

    private protected override List<DayRow> Apply(KeptDay kept, List<VisitRow> visits, DateOnly date, bool whole)
    {
        var day = (Day)kept;
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
        // The raw columns of VisitRollupPlanner.ReadDaily; a row of zeros for a value no visit has any more.
        var rows = new List<DayRow>(whole ? day.Values.Count : changed.Count);
        foreach (var sums in whole ? day.Values.Values : (IEnumerable<Sums>)changed)
            if (!whole || sums.Visits > 0)
                rows.Add(new DayRow(date, sums.Value, sums.Visits == 0 ? new long[11] :
                    [sums.Visitors.Count, sums.Visits, sums.Pageviews, sums.Events, sums.EngagementMs, 0, sums.Pageviews, sums.Bounces, sums.DurationMs, 0, 0]));
        foreach (var value in gone)
            if (day.Values.TryGetValue(value, out var sums) && sums.Visits == 0) day.Values.Remove(value);
        return rows;
    }

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
