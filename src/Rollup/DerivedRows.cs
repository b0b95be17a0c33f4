using System.Globalization;
using Analytics.Contracts.Internal;
using Analytics.Store;

namespace Analytics.Rollup;

/// <summary>A raw event as Rollup works with it: from a log record (live) or from events_raw (rebuild).</summary>
public sealed record RawEvent(
    ulong MerchantId, ulong SiteId, byte[] Id, long ReceivedMs, long ClientTimeMs, string Name, string Url, string Referrer,
    IReadOnlyList<KeyValuePair<string, string>> Props, long RevenueMicros, string Currency, uint ScreenWidth, uint EngagementMs,
    ulong VisitorId, string IpPrefix, string UserAgent, string Country, string LogSource, long LogOffset)
{
    // User-agent client hints as sent (Sec-CH-UA-Mobile, -Platform, -Model, -Form-Factors), ""
    // when not sent. Properties rather than positional parameters: most code builds events
    // without them.
    public string ChUaMobile { get; init; } = "";
    public string ChUaPlatform { get; init; } = "";
    public string ChUaModel { get; init; } = "";
    public string ChUaFormFactors { get; init; } = "";

    /// <summary>From Google.Protobuf's message: the reference StoredEventReader (Rollup's reader of
    /// log records) is tested and benchmarked against.</summary>
    public static RawEvent From(StoredEvent e, string source, long offset) => new(
        e.MerchantId, e.SiteId, e.Id.ToByteArray(), e.ReceivedMs, e.ClientTimeMs, e.Name, e.Url, e.Referrer,
        e.Props.Select(p => KeyValuePair.Create(p.Key, p.Value)).ToList(), e.RevenueMicros, e.Currency, e.ScreenWidth, e.EngagementMs,
        e.VisitorId, e.IpPrefix, e.UserAgent, e.Country, source, offset)
    {
        ChUaMobile = e.ChUaMobile,
        ChUaPlatform = e.ChUaPlatform,
        ChUaModel = e.ChUaModel,
        ChUaFormFactors = e.ChUaFormFactors,
    };

    public DateOnly Day => DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeMilliseconds(ReceivedMs).UtcDateTime);
}

/// <summary>
/// The derived tables' rows and statements, shared by live Rollup and by reprocessing so that
/// both build exactly the same thing from the same raw events.
/// </summary>
public static class DerivedRows
{
    /// <summary>The agent's time-on-page ping (docs/query-api.md, `time_on_page`).</summary>
    public const string EngagementEvent = "engagement";

    public const string RawColumns =
        "merchant_id UInt64, site_id UInt64, event_id FixedString(16), received_at DateTime64(3, 'UTC'), client_time DateTime64(3, 'UTC'), " +
        "name String, url String, referrer String, props Map(String, String), revenue_micros Int64, currency String, screen_width UInt32, " +
        "engagement_ms UInt32, visitor_id UInt64, ip_prefix String, user_agent String, country String, ch_ua_mobile String, ch_ua_platform String, " +
        "ch_ua_model String, ch_ua_form_factors String, log_source String, log_offset UInt64";

    public const string EnrichedColumns =
        "merchant_id UInt64, site_id UInt64, event_id FixedString(16), received_at DateTime64(3, 'UTC'), name String, hostname String, " +
        "pathname String, referrer String, referrer_source String, utm_source String, utm_medium String, utm_campaign String, " +
        "utm_content String, utm_term String, country String, device String, browser String, os String, is_bot UInt8, " +
        "channel String, region String, city String, device_brand String, device_model String, browser_version String, os_version String, " +
        "props Map(String, String), revenue_micros Int64, currency String, engagement_ms UInt32, visitor_id UInt64, visit_id UInt64, " +
        "visit_start UInt8, logic_version UInt16, log_source String, log_offset UInt64, generation UInt64, " +
        "visit_source String, visit_channel String, visit_referrer String, visit_utm_source String, " +
        "visit_utm_medium String, visit_utm_campaign String, visit_utm_content String, visit_utm_term String, visit_country String, " +
        "visit_region String, visit_city String, visit_device String, visit_browser String, visit_browser_version String, " +
        "visit_os String, visit_os_version String, write_version UInt64";

    public static readonly (string Table, string Bucket)[] Rollups =
    [
        ("rollup_minute", "toStartOfMinute(received_at)"),
        ("rollup_hour", "toStartOfHour(received_at)"),
        ("rollup_day", "toDate(received_at)"),
    ];

    public static void WriteRaw(RowBinaryWriter w, RawEvent e)
    {
        w.WriteUInt64(e.MerchantId);
        w.WriteUInt64(e.SiteId);
        w.WriteFixedString(e.Id, 16);
        w.WriteDateTime64Milliseconds(e.ReceivedMs);
        w.WriteDateTime64Milliseconds(e.ClientTimeMs);
        w.WriteString(e.Name);
        w.WriteString(e.Url);
        w.WriteString(e.Referrer);
        WriteProps(w, e);
        w.WriteInt64(e.RevenueMicros);
        w.WriteString(e.Currency);
        w.WriteUInt32(e.ScreenWidth);
        w.WriteUInt32(e.EngagementMs);
        w.WriteUInt64(e.VisitorId);
        w.WriteString(e.IpPrefix);
        w.WriteString(e.UserAgent);
        w.WriteString(e.Country);
        w.WriteString(e.ChUaMobile);
        w.WriteString(e.ChUaPlatform);
        w.WriteString(e.ChUaModel);
        w.WriteString(e.ChUaFormFactors);
        w.WriteString(e.LogSource);
        w.WriteUInt64((ulong)e.LogOffset);
    }

    /// <summary>Where a row's write_version starts, counted back from the row's end: it is the
    /// last column <see cref="WriteEnriched"/> writes.</summary>
    public const int VersionOffset = sizeof(ulong);

    /// <summary>Enriches one event with the given logic version and writes its row; returns false,
    /// writing nothing and leaving the visits as they were, for an event the logic does not count:
    /// from version 4 on, a person's `engagement` ping that no open visit takes (see
    /// <see cref="ProcessingLogic"/>). Such an event stays in events_raw only.</summary>
    public static bool WriteEnriched(RowBinaryWriter w, RawEvent e, ProcessingLogic logic, Sessionizer sessions, ushort logicVersion, ulong generation,
        bool stampVisitEntry = true)
    {
        var d = logic.Derive(e, logicVersion);
        if (logicVersion >= ProcessingLogic.EngagementNeedsVisit && !d.IsBot && e.Name == EngagementEvent
            && !sessions.IsOpen(e.SiteId, e.VisitorId, e.ReceivedMs))
            return false;
        // Bots have no visit; a person's event starting a visit offers its own attributes as the
        // visit's entry, any later one gets the entry its visit started with.
        (ulong visitId, bool starts, VisitEntry entry) = d.IsBot
            ? (0UL, false, VisitEntry.None)
            : sessions.Next(e.SiteId, e.VisitorId, e.ReceivedMs,
                !stampVisitEntry || sessions.IsOpen(e.SiteId, e.VisitorId, e.ReceivedMs) ? VisitEntry.None : VisitEntry.Of(d, e.Referrer));
        w.WriteUInt64(e.MerchantId);
        w.WriteUInt64(e.SiteId);
        w.WriteFixedString(e.Id, 16);
        w.WriteDateTime64Milliseconds(e.ReceivedMs);
        w.WriteString(e.Name);
        w.WriteString(d.Hostname);
        w.WriteString(d.Pathname);
        w.WriteString(e.Referrer);
        w.WriteString(d.ReferrerSource);
        w.WriteString(d.UtmSource);
        w.WriteString(d.UtmMedium);
        w.WriteString(d.UtmCampaign);
        w.WriteString(d.UtmContent);
        w.WriteString(d.UtmTerm);
        w.WriteString(d.Country);
        w.WriteString(d.Device);
        w.WriteString(d.Browser);
        w.WriteString(d.Os);
        w.WriteBool(d.IsBot);
        w.WriteString(d.Channel);
        w.WriteString(d.Region);
        w.WriteString(d.City);
        w.WriteString(d.DeviceBrand);
        w.WriteString(d.DeviceModel);
        w.WriteString(d.BrowserVersion);
        w.WriteString(d.OsVersion);
        WriteProps(w, e);
        w.WriteInt64(e.RevenueMicros);
        w.WriteString(e.Currency);
        w.WriteUInt32(e.EngagementMs);
        w.WriteUInt64(e.VisitorId);
        w.WriteUInt64(visitId);
        w.WriteBool(starts);
        w.WriteUInt16(logicVersion);
        w.WriteString(e.LogSource);
        w.WriteUInt64((ulong)e.LogOffset);
        w.WriteUInt64(generation);
        w.WriteString(entry.Source);
        w.WriteString(entry.Channel);
        w.WriteString(entry.Referrer);
        w.WriteString(entry.UtmSource);
        w.WriteString(entry.UtmMedium);
        w.WriteString(entry.UtmCampaign);
        w.WriteString(entry.UtmContent);
        w.WriteString(entry.UtmTerm);
        w.WriteString(entry.Country);
        w.WriteString(entry.Region);
        w.WriteString(entry.City);
        w.WriteString(entry.Device);
        w.WriteString(entry.Browser);
        w.WriteString(entry.BrowserVersion);
        w.WriteString(entry.Os);
        w.WriteString(entry.OsVersion);
        // write_version (migration 016), last so that live Rollup can set it at
        // VersionOffset once SiteDayWrites has given the round its version; 0 elsewhere
        // (reprocessing writes a new generation, which a kept day never matches).
        w.WriteUInt64(0);
        return true;
    }

    private static void WriteProps(RowBinaryWriter w, RawEvent e)
    {
        // By index: a foreach over the interface would allocate an enumerator per row.
        var props = e.Props;
        w.WriteMapHeader(props.Count);
        for (int i = 0; i < props.Count; i++)
        {
            w.WriteString(props[i].Key);
            w.WriteString(props[i].Value);
        }
    }

    /// <summary>
    /// Rolls up the enriched rows selected by <paramref name="where"/> into one rollup table, as
    /// one insert carrying a deduplication token. People and bots are counted apart: events,
    /// visits, revenue and visitors are people only; `bots` counts the rest (kept, not hidden).
    /// </summary>
    public static string RollUpStatement(string db, string table, string bucket, string where, string token) =>
        $"INSERT INTO {db}.{table} (merchant_id, site_id, bucket, name, events, visit_starts, revenue_micros, bots, visitors, generation) " +
        $"SETTINGS insert_deduplication_token = {ClickHouseSql.StringLiteral(token)}, max_threads = 1 " +
        $"SELECT merchant_id, site_id, {bucket} AS bucket, name, countIf(is_bot = 0) AS events, sumIf(visit_start, is_bot = 0) AS visit_starts, " +
        "sumIf(revenue_micros, is_bot = 0) AS revenue_micros, countIf(is_bot = 1) AS bots, uniqStateIf(visitor_id, is_bot = 0) AS visitors, generation " +
        $"FROM {db}.events_enriched WHERE ({where}) GROUP BY merchant_id, site_id, bucket, name, generation";

    /// <summary>
    /// Every rollup statement for the enriched rows selected by <paramref name="where"/>: the
    /// dimension and visit rollups unless <paramref name="preAggregates"/> is off, then minute,
    /// hour and day. They read the same rows and write different tables, so they may run side by
    /// side; each token is the table name and <paramref name="token"/>.
    /// </summary>
    public static IEnumerable<string> RollUpStatements(string db, string where, string token, bool preAggregates = true) =>
        (preAggregates ? PreAggregateStatements(db, where, token) : []).Concat(TimeRollupStatements(db, where, token));

    /// <summary>The dimension and visit rollups (what the query planner reads) of <see cref="RollUpStatements"/>;
    /// <paramref name="writeVersion"/> as in <see cref="DimensionRollUpStatement"/> and <see cref="VisitRollUpStatement"/>.</summary>
    public static IEnumerable<string> PreAggregateStatements(string db, string where, string token, long writeVersion = 0)
    {
        yield return DimensionRollUpStatement(db, where, $"{DimensionTable}:{token}", writeVersion);
        yield return VisitRollUpStatement(db, where, $"{VisitTable}:{token}", writeVersion);
    }

    /// <summary>The minute, hour and day rollups (what the v1 endpoints and the main graph read) of
    /// <see cref="RollUpStatements"/>.</summary>
    public static IEnumerable<string> TimeRollupStatements(string db, string where, string token)
    {
        foreach (var (table, bucket) in Rollups)
            yield return RollUpStatement(db, table, bucket, where, $"{table}:{token}");
    }

    /// <summary>The dimension rollup (schemas/clickhouse/010): its table, and the dimensions it
    /// holds with the events_enriched column each one reads. Event dimensions first; the visit
    /// dimensions read the visit's stamped entry and are left out for bots, which have no visit.</summary>
    public const string DimensionTable = "rollup_dims_day";

    public static readonly (string Dimension, string Column)[] EventDimensions =
        [("", "''"), ("page", "pathname"), ("hostname", @"replaceRegexpOne(hostname, '^www\\.', '')"), ("event", "name")];

    public static readonly (string Dimension, string Column)[] VisitDimensions =
    [
        ("source", "visit_source"), ("channel", "visit_channel"), ("utm_source", "visit_utm_source"),
        ("utm_medium", "visit_utm_medium"), ("utm_campaign", "visit_utm_campaign"), ("country", "visit_country"), ("region", "visit_region"),
        ("city", "visit_city"), ("device", "visit_device"), ("browser", "visit_browser"), ("os", "visit_os"),
    ];

    /// <summary>Every rollup table a site-day has rows in (what a rebuild writes, counts and deletes).</summary>
    public static IEnumerable<string> RollupTables => Rollups.Select(r => r.Table).Append(DimensionTable).Append(VisitTable);

    /// <summary>
    /// Rolls up the enriched rows selected by <paramref name="where"/> into rollup_dims_day, as one
    /// insert carrying a deduplication token: each event counts once in every dimension, under its
    /// UTC day. `events` leaves out the agent's engagement pings (the contract's metric),
    /// `visitors` is exact (uniqExact state), bots count only in `bots` and only under the event
    /// dimensions (they have no visit). From migration 012: `pageview_visitors` (page rows only:
    /// who completed a page goal there), revenue per currency and the count of events with
    /// non-zero revenue per currency (people only), and `written_012` = 1, which tells readers the
    /// row holds them.
    /// One read per part, no row copied per dimension: the page dimension (the only one with
    /// `pageview_visitors`) by a plain GROUP BY, the other event dimensions and the visit
    /// dimensions (people's rows only) each by GROUPING SETS, one set per dimension, which
    /// `grouping()` names. Formerly every row was repeated once per dimension (ARRAY JOIN of
    /// (dimension, value) pairs) and grouped by the pair: the same rows out, more work per row in
    /// (2.62 against 2.31 µs per event on a catch-up round, `QueryBench --catch-up-only
    /// --statement-costs`; on five times the rows per value, the eleven visit dimensions alone
    /// took 2.9 µs per row this way against 9.3 for all fifteen by ARRAY JOIN; perf/README.md).
    /// From migration 014, `write_version`: the version SiteDayWrites gave the round (0 where
    /// nothing reads it: reprocessing's new generations, the data set generator), with which a
    /// reader that kept the day reads only the values written since.
    /// </summary>
    public static string DimensionRollUpStatement(string db, string where, string token, long writeVersion = 0)
    {
        // The metrics of one part: people is the condition for a person's event (is_bot = 0, or
        // true where the part reads people only), page whether the rows are page rows.
        string Metrics(string people, bool page) =>
            $"countIf({people} AND name != 'engagement') AS events, countIf({people} AND name = 'pageview') AS pageviews, " +
            $"sumIf(visit_start, {people}) AS visit_starts, countIf(NOT ({people})) AS bots, uniqExactStateIf(visitor_id, {people}) AS visitors, generation, " +
            $"uniqExactStateIf(visitor_id, {people} AND name = 'pageview' AND {(page ? "1" : "0")}) AS pageview_visitors, " +
            $"sumMapIf(([toString(currency)], [revenue_micros]), {people} AND revenue_micros != 0) AS revenue, " +
            $"sumMapIf(([toString(currency)], [toUInt64(1)]), {people} AND revenue_micros != 0) AS revenue_events, toUInt8(1) AS written_012, " +
            string.Create(CultureInfo.InvariantCulture, $"toUInt64({writeVersion}) AS write_version");
        const string Keys = "merchant_id, site_id, bucket, generation";
        const string Read = "merchant_id, site_id, toDate(received_at) AS bucket, generation, is_bot, name, visit_start, visitor_id, currency, revenue_micros";
        // One GROUPING SETS part: a set per dimension (the keys alone for the site total ''), each
        // dimension's value read as d0, d1, …; the set a row came from is the one dimension whose
        // column grouping() says it was grouped by (0).
        string Sets((string Dimension, string Column)[] dims, string people, string filter)
        {
            var valued = dims.Select((d, i) => (d.Dimension, d.Column, Alias: $"d{i}")).Where(d => d.Dimension.Length > 0).ToList();
            string Pick(Func<(string Dimension, string Column, string Alias), string> then, string otherwise) =>
                $"multiIf({string.Join(", ", valued.Select(d => $"grouping({d.Alias}) = 0, {then(d)}"))}, {otherwise})";
            var sets = dims.Select((d, i) => d.Dimension.Length > 0 ? $"({Keys}, d{i})" : $"({Keys})");
            return $"SELECT merchant_id, site_id, {Pick(d => ClickHouseSql.StringLiteral(d.Dimension), "''")} AS dimension, bucket, " +
                $"{Pick(d => $"toString({d.Alias})", "''")} AS value, {Metrics(people, page: false)} " +
                $"FROM (SELECT {Read}, {string.Join(", ", valued.Select(d => $"{d.Column} AS {d.Alias}"))} FROM {db}.events_enriched WHERE ({where}){filter}) " +
                $"GROUP BY GROUPING SETS ({string.Join(", ", sets)})";
        }
        var page = EventDimensions.Single(d => d.Dimension == "page");
        return $"INSERT INTO {db}.{DimensionTable} (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation, " +
            "pageview_visitors, revenue, revenue_events, written_012, write_version) " +
            $"SETTINGS insert_deduplication_token = {ClickHouseSql.StringLiteral(token)}, max_threads = 1 " +
            $"SELECT merchant_id, site_id, 'page' AS dimension, bucket, toString(page) AS value, {Metrics("is_bot = 0", page: true)} " +
            $"FROM (SELECT {Read}, {page.Column} AS page FROM {db}.events_enriched WHERE ({where})) GROUP BY {Keys}, page " +
            $"UNION ALL {Sets(EventDimensions.Where(d => d != page).ToArray(), "is_bot = 0", "")} " +
            $"UNION ALL {Sets(VisitDimensions, "is_bot = 0", " AND is_bot = 0")}";
    }

    /// <summary>The visit rollup (schemas/clickhouse/011): one row per visit, round and generation,
    /// merged per visit; its visit-dimension columns are the dimensions' names.</summary>
    public const string VisitTable = "rollup_visits_day";

    /// <summary>
    /// Rolls up the enriched rows selected by <paramref name="where"/> into rollup_visits_day, as
    /// one insert carrying a deduplication token: per visit (people only) the round's share of its
    /// times, counts and entry/exit page states; a later round's rows of the same visit merge with
    /// these (see the migration). Entry/exit page are ordered by (received_at, log_offset), as the
    /// query API's scan orders a visit's pageviews; interactions are events that are neither
    /// pageviews nor engagement pings (the contract's bounce). From migration 015, `write_version`
    /// as in the dimension rollup: with it a reader that kept a day's visits reads only the visits
    /// written since.
    /// </summary>
    public static string VisitRollUpStatement(string db, string where, string token, long writeVersion = 0)
    {
        var entry = VisitEntry.Columns.Select(c => c["visit_".Length..]).ToList();
        return $"INSERT INTO {db}.{VisitTable} (merchant_id, site_id, bucket, visit_id, generation, visitor_id, first_at, last_at, pageviews, " +
            $"interactions, events, engagement_ms, entry_page, exit_page, {string.Join(", ", entry)}, write_version) " +
            $"SETTINGS insert_deduplication_token = {ClickHouseSql.StringLiteral(token)}, max_threads = 1 " +
            "SELECT merchant_id, site_id, toDate(received_at) AS bucket, visit_id, generation, any(visitor_id), min(received_at), max(received_at), " +
            "countIf(name = 'pageview'), countIf(name NOT IN ('pageview', 'engagement')), countIf(name != 'engagement'), " +
            "sumIf(toUInt64(engagement_ms), name = 'engagement'), argMinStateIf(pathname, (received_at, log_offset), name = 'pageview'), " +
            $"argMaxStateIf(pathname, (received_at, log_offset), name = 'pageview'), {string.Join(", ", VisitEntry.Columns.Select(c => $"any({c})"))}, " +
            string.Create(CultureInfo.InvariantCulture, $"toUInt64({writeVersion}) ") +
            $"FROM {db}.events_enriched WHERE ({where}) AND is_bot = 0 GROUP BY merchant_id, site_id, bucket, visit_id, generation";
    }

    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
