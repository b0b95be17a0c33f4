using System.Globalization;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>One event as KeptEventValues reads it: the value of the dimension asked, its visitor,
/// whether a bot sent it, whether it is a pageview, whether it counts as an event (every name but
/// the agent's engagement pings) and whether it began a visit.</summary>
public readonly record struct ValueEvent(string Value, ulong Visitor, bool Bot, bool Pageview, bool Counted, bool VisitStart);

/// <summary>
/// A large site's day for the dimension rollup's questions (the site's totals, the event
/// dimensions page, hostname and event, the visit dimensions source, country, device and the
/// rest: the main graph, top pages, sources, countries, devices, one source's graph) kept per
/// value as its visitors' ids and its counts, from the day's events, so that after a Rollup
/// round only the events the round wrote are read (their rows carry the round's write_version,
/// schemas/clickhouse/016). The dimension rollup's day is brought up to date by
/// the values a round wrote (DailyRowsCache's readWritten), but each of those values is read over
/// all of the day's rows, merging their visitor sets: a round of a busy site writes its popular
/// pages, whose sets are most of the day's (25-30 ms on the largest test merchant's today,
/// against 6-13 ms for the round's events); a dimension of few values (the site's totals, its
/// devices) is read whole, merging all of the day's sets (the main graph's statement: 25 ms on
/// average over 30 rounds of the largest test merchant). DailyRowsCache asks it for the one day
/// it reads of such a question (KeptDimensionDays).
/// <para>
/// Exact for the reason the rollup's rows are (DerivedRows.DimensionRollUpStatement, which this
/// repeats per event): a value's visitors are the distinct visitors of people's events with that
/// value, its visit starts, pageviews and events (engagement pings left out) people's counts, its
/// bots the count of bots' events (none under a visit dimension, whose rows are people's); all
/// are unions or sums over events, so a round's events add to them (a set keeps a visitor once),
/// and an event is written once. Kept as KeptDays keeps a day: its events are exactly the rounds
/// up to the version kept, and a later round writes a higher version on every event it writes.
/// </para>
/// </summary>
/// <param name="maxSize">Visitor ids and values kept at most (<see cref="MaxSize"/>; smaller in tests).</param>
public sealed class KeptEventValues(string database, SiteDayWrites writes, GenerationActivations activations, long maxSize = KeptEventValues.MaxSize)
    : KeptDimensionDays<List<ValueEvent>>(database, writes, activations, maxSize)
{
    /// <summary>Visitor ids and values kept at most, over all days kept: past it the least
    /// recently used days go until half is left. An id costs about 20 bytes in its value's set, a
    /// value about 200 with its set; the largest test merchant's today is about 14,000 pages and
    /// 60,000 ids (a visitor in each page it saw).</summary>
    public const long MaxSize = 2_000_000;

    /// <summary>
    /// The dimension rollup's dimensions ("" for the site's totals), each with the events_enriched
    /// column its value is read from and whether bots' events are left out, as Rollup rolls them
    /// up (DerivedRows.EventDimensions and VisitDimensions; a test holds the two equal): the event
    /// dimensions with the query API's expressions (QueryVocabulary), bots' events counted as
    /// bots; the visit dimensions from the visit's entry stamped on each event, people's events
    /// only (bots have no visit).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, (string Column, bool PeopleOnly)> Dimensions =
        new Dictionary<string, (string, bool)> { [""] = ("''", false) }
            .Concat(Query.QueryVocabulary.EventDimensions.Select(d => KeyValuePair.Create(d.Key, (d.Value, false))))
            .Concat(PreAggregatePlanner.VisitDimensions.Select(d => KeyValuePair.Create(d, ("visit_" + d, true))))
            .ToDictionary();

    public static bool Holds(string dimension) => Dimensions.ContainsKey(dimension);

    private sealed class Sums(string value)
    {
        public readonly string Value = value;
        public readonly HashSet<ulong> Visitors = [];
        public long VisitStarts, Pageviews, Events, Bots;
    }

    private sealed class Day(ulong generation) : KeptDay(generation)
    {
        public readonly Dictionary<string, Sums> Values = new(StringComparer.Ordinal);
        public long Ids;
        public override long Size => Ids + Values.Count;
    }

    private protected override KeptDay NewDay(ulong generation) => new Day(generation);

    private protected override List<DayRow> Apply(KeptDay kept, List<ValueEvent> events, string dimension, DateOnly date, bool whole)
    {
        var day = (Day)kept;
        var changed = new HashSet<Sums>(ReferenceEqualityComparer.Instance);
        foreach (var e in events)
        {
            if (!day.Values.TryGetValue(e.Value, out var sums)) day.Values[e.Value] = sums = new Sums(e.Value);
            if (e.Bot) sums.Bots++;
            else
            {
                if (sums.Visitors.Add(e.Visitor)) day.Ids++;
                if (e.Pageview) sums.Pageviews++;
                if (e.Counted) sums.Events++;
                if (e.VisitStart) sums.VisitStarts++;
            }
            if (!whole) changed.Add(sums);
        }
        var rows = new List<DayRow>(whole ? day.Values.Count : changed.Count);
        // As PreAggregatePlanner.ReadDaily places the rollup's columns: visitors, visits (the
        // visit starts), pageviews, events, engagement, bots, visit pageviews, then none.
        foreach (var sums in whole ? day.Values.Values : (IEnumerable<Sums>)changed)
            rows.Add(new DayRow(date, sums.Value, [sums.Visitors.Count, sums.VisitStarts, sums.Pageviews, sums.Events, 0, sums.Bots, sums.Pageviews, 0, 0, 0, 0]));
        return rows;
    }

    /// <summary>
    /// The events of <paramref name="day"/> (a UTC day) in its active generation, each with its
    /// value of the event dimension <paramref name="dimension"/>, bots' included, as Rollup rolls
    /// them up; with <paramref name="writtenSince"/> only those Rollup rounds after that version
    /// wrote. Read with <see cref="ReadEvents"/>.
    /// </summary>
    public static string EventsStatement(long merchantId, long siteId, string dimension, DateOnly day, IReadOnlyDictionary<DateOnly, ulong> generations,
        string database, double maxExecutionSeconds, long? writtenSince)
    {
        var (column, peopleOnly) = Dimensions[dimension];
        var (from, to) = DailyRowsCache.Span([day]);
        return Query.QuerySql.SiteEvents(merchantId, siteId, from, to, database, generations, bots: !peopleOnly, writtenSince,
                $"toString({column}), visitor_id, is_bot != 0, name = 'pageview', name != 'engagement', visit_start != 0") +
            $" SETTINGS max_execution_time = {maxExecutionSeconds.ToString("0.######", CultureInfo.InvariantCulture)}";
    }

    public static List<ValueEvent> ReadEvents(ReadOnlySpan<byte> data)
    {
        var events = new List<ValueEvent>();
        var reader = new RowBinaryReader(data);
        while (!reader.End)
            events.Add(new ValueEvent(reader.ReadString(), reader.ReadUInt64(), reader.ReadBool(), reader.ReadBool(), reader.ReadBool(), reader.ReadBool()));
        return events;
    }
}
