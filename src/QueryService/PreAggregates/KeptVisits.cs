using System.Globalization;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// A large site's day for the visit rollup's questions (entry and exit pages, the main graph's
/// bounce rate and visit duration, a visit dimension's top list), kept one visit each, built from
/// the day's events as Rollup builds the visit rollup's rows (DerivedRows.VisitRollUpStatement),
/// so that after a Rollup round only the events the round wrote are read (they carry the round's
/// write_version, schemas/clickhouse/016). DailyRowsCache asks it for the one day it reads of such
/// a question, which on a busy site is today after each round.
/// <para>
/// Why per visit: the dimension rollup's kept day is brought up to date by reading again the values
/// a round wrote (DailyRowsCache's readWritten), but the visit rollup's cannot be: a visit's exit
/// page, and its entry page when it began without a pageview, move from one value to another, and
/// the value a visit left is not among the round's rows. Kept per visit, it is known. Reading the
/// largest test merchant's today whole (13,929 visits, 7,547 entry pages) took 28-44 ms of engine
/// time a question; its written visits are a few. Why from the events: the visit rollup's rows of
/// the visits a round wrote, each read over all its rows, are found by a read of the day's rows
/// first (20-26 ms a statement on that merchant), where the round's events are one read (about 10).
/// </para>
/// <para>
/// Exact because every number of a visit's row is a union of its events' (min and max of the
/// time, counts and sums, the entry and exit page as the pageview of the least and greatest
/// (time, log offset), the entry's attributes stamped on every event of the visit), so a round's
/// events add to the visit kept, and an event is written once, under its UTC day, people's only.
/// Kept as KeptDays keeps a day: its events are exactly the rounds up to the version kept, and a
/// later round writes a higher version on every event it writes. Days are kept per active
/// generation (reprocessing writes a new one, with version 0, which is read whole once active); a
/// read during which an activation started is not used at all.
/// </para>
/// <para>
/// What is done per value is the grouped statement's last step (VisitRollupPlanner.DailyStatement):
/// count() of visits, the sums, countIf(pv &lt;= 1 AND ia = 0) bounces and uniqExact(visitor_id),
/// the last as a count of visits per visitor and value.
/// </para>
/// </summary>
/// <param name="maxVisits">Visits kept at most (<see cref="MaxVisits"/>; smaller in tests).</param>
public sealed class KeptVisits(string database, SiteDayWrites writes, GenerationActivations activations, int maxVisits = KeptVisits.MaxVisits)
    : KeptDimensionDays<List<VisitEvent>>(database, writes, activations, maxVisits)
{
    /// <summary>Visits kept at most: past it the least recently used days go until half is left.
    /// A visit costs an estimated 200-350 bytes (its merged numbers and the row it counts as, its
    /// visitor's entry in its value's visitors, the dictionaries' spare room; the values' own sums
    /// come on top, one per value).
    /// The largest test merchant's today is 13,929 visits per dimension asked.</summary>
    public const int MaxVisits = 500_000;

    private sealed class Sums(string value)
    {
        public readonly string Value = value;
        public long Visits, Pageviews, Events, EngagementMs, Bounces, DurationMs;
        /// <summary>The value's visits per visitor: its visitors are the keys.</summary>
        public readonly Dictionary<ulong, int> Visitors = [];
    }

    /// <summary>A visit of the day as its events so far make it (the visit rollup's row merged),
    /// and the row it counts as in its value's sums.</summary>
    private sealed class Visit(ulong visitor, string value)
    {
        public readonly ulong Visitor = visitor;
        public readonly string Value = value; // the entry's attribute asked (any() of the rollup: the same on every event)
        public long Pageviews, Interactions, Events, EngagementMs;
        public long FirstMs = long.MaxValue, LastMs = long.MinValue;
        public (long Ms, ulong Offset) EntryAt = (long.MaxValue, ulong.MaxValue), ExitAt = (long.MinValue, 0);
        public string EntryPage = "", ExitPage = "";
        public VisitRow? Counted;
        public bool Touched;

        public void Add(in VisitEvent e)
        {
            FirstMs = Math.Min(FirstMs, e.AtMs);
            LastMs = Math.Max(LastMs, e.AtMs);
            switch (e.Kind)
            {
                case VisitEventKind.Pageview:
                    Pageviews++;
                    Events++;
                    if ((e.AtMs, e.Offset).CompareTo(EntryAt) < 0) (EntryAt, EntryPage) = ((e.AtMs, e.Offset), e.Page);
                    if ((e.AtMs, e.Offset).CompareTo(ExitAt) > 0) (ExitAt, ExitPage) = ((e.AtMs, e.Offset), e.Page);
                    break;
                case VisitEventKind.Engagement:
                    EngagementMs += e.EngagementMs;
                    break;
                default:
                    Interactions++;
                    Events++;
                    break;
            }
        }

        /// <summary>The visit as the visit rollup's per-visit read gives it, valued by <paramref name="dimension"/>.</summary>
        public VisitRow Row(ulong id, string dimension) => new(id, Visitor, Pageviews, Interactions, Events, EngagementMs, LastMs - FirstMs,
            dimension switch { "entry_page" => EntryPage, "exit_page" => ExitPage, _ => Value });
    }

    private sealed class Day(ulong generation) : KeptDay(generation)
    {
        public readonly Dictionary<ulong, Visit> Visits = [];
        public readonly Dictionary<string, Sums> Values = new(StringComparer.Ordinal);
        public override long Size => Visits.Count;
    }

    private protected override KeptDay NewDay(ulong generation) => new Day(generation);

    private protected override List<DayRow> Apply(KeptDay kept, List<VisitEvent> events, string dimension, DateOnly date, bool whole)
    {
        var day = (Day)kept;
        var touched = new List<(ulong Id, Visit Visit)>();
        foreach (var e in events)
        {
            if (!day.Visits.TryGetValue(e.Visit, out var visit)) day.Visits[e.Visit] = visit = new Visit(e.Visitor, e.Value);
            if (!visit.Touched) touched.Add((e.Visit, visit));
            visit.Touched = true;
            visit.Add(e);
        }
        var changed = new HashSet<Sums>();
        var gone = new List<string>();
        foreach (var (id, visit) in touched)
        {
            visit.Touched = false;
            if (visit.Counted is { } old && Remove(day, old) is { } left)
            {
                changed.Add(left);
                if (left.Visits == 0) gone.Add(left.Value);
            }
            var row = visit.Row(id, dimension);
            var sums = Add(day, row);
            visit.Counted = row with { Value = sums.Value }; // the value's one string, not one per visit
            changed.Add(sums);
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

    /// <summary>
    /// The people's events of <paramref name="day"/> (a UTC day) in its active generation, as the
    /// visit rollup rolls them up (DerivedRows.VisitRollUpStatement): each with its visit, visitor,
    /// kind, time, log offset, engagement, its path where <paramref name="dimension"/> is the
    /// entry or exit page (pageviews only) and its visit's entry attribute where it is one (the
    /// column `visit_{dimension}` Rollup stamps on every event of the visit); with
    /// <paramref name="writtenSince"/> only those Rollup rounds after that version wrote. Read
    /// with <see cref="ReadEvents"/>.
    /// </summary>
    public static string EventsStatement(long merchantId, long siteId, string dimension, DateOnly day, IReadOnlyDictionary<DateOnly, ulong> generations,
        string database, double maxExecutionSeconds, long? writtenSince)
    {
        var (from, to) = DailyRowsCache.Span([day]);
        string page = dimension is "entry_page" or "exit_page" ? "if(name = 'pageview', pathname, '')" : "''";
        string value = dimension is "" or "entry_page" or "exit_page" ? "''" : "toString(visit_" + EntryAttribute(dimension) + ")";
        return Query.QuerySql.SiteEvents(merchantId, siteId, from, to, database, generations, bots: false, writtenSince,
                "visit_id, visitor_id, multiIf(name = 'pageview', 0, name = 'engagement', 2, 1), toUnixTimestamp64Milli(received_at), log_offset, " +
                $"toUInt64(engagement_ms), {page}, {value}") +
            $" SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture)}";
    }

    /// <summary>A visit dimension other than the entry and exit page: the visit rollup's column of
    /// that name, Rollup's any(visit_{name}) (a test holds the names equal to Rollup's).</summary>
    private static string EntryAttribute(string dimension) =>
        Query.QueryVocabulary.VisitDimensions.ContainsKey(dimension) ? dimension : throw new ArgumentException($"{dimension} is not a visit dimension", nameof(dimension));

    public static List<VisitEvent> ReadEvents(ReadOnlySpan<byte> data)
    {
        var events = new List<VisitEvent>();
        var reader = new RowBinaryReader(data);
        while (!reader.End)
            events.Add(new VisitEvent(reader.ReadUInt64(), reader.ReadUInt64(), (VisitEventKind)reader.ReadUInt8(), reader.ReadInt64(), reader.ReadUInt64(),
                (long)reader.ReadUInt64(), reader.ReadString(), reader.ReadString()));
        return events;
    }
}

/// <summary>What an event is to its visit's numbers (VisitRollUpStatement's countIf conditions).</summary>
public enum VisitEventKind : byte { Pageview = 0, Interaction = 1, Engagement = 2 }

/// <summary>One people's event as KeptVisits reads it: its visit, visitor, kind, time (Unix ms),
/// log offset (with the time, what orders a visit's pageviews), engagement, its path where the
/// entry or exit page is asked ("" else) and its visit's entry attribute asked ("" else).</summary>
public readonly record struct VisitEvent(ulong Visit, ulong Visitor, VisitEventKind Kind, long AtMs, ulong Offset, long EngagementMs, string Page, string Value);

/// <summary>One visit of a day as the visit rollup's rows merged give it (KeptVisits counts it
/// so), and the value of the dimension asked.</summary>
internal readonly record struct VisitRow(ulong Id, ulong Visitor, long Pageviews, long Interactions, long Events, long EngagementMs, long DurationMs, string Value);
