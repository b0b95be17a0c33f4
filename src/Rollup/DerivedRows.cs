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
        "visit_os String, visit_os_version String";

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

    /// <summary>Enriches one event with the given logic version and writes its row; returns false,
    /// writing nothing and leaving the visits as they were, for an event the logic does not count:
    /// from version 4 on, a person's `engagement` ping that no open visit takes (see
    /// <see cref="ProcessingLogic"/>). Such an event stays in events_raw only.</summary>
    public static bool WriteEnriched(RowBinaryWriter w, RawEvent e, ProcessingLogic logic, Sessionizer sessions, ushort logicVersion, ulong generation)
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
                sessions.IsOpen(e.SiteId, e.VisitorId, e.ReceivedMs) ? VisitEntry.None : VisitEntry.Of(d, e.Referrer));
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
    /// The minute, hour and day rollups (what the v1 endpoints and the main graph read) of the
    /// enriched rows selected by <paramref name="where"/>, to run once those rows are inserted.
    /// They read the same rows and write different tables, so they may run side by side; each
    /// token is the table name and <paramref name="token"/>. The dimension and visit rollups need
    /// no statement: views write them from the insert itself (schemas/clickhouse/014).
    /// </summary>
    public static IEnumerable<string> TimeRollupStatements(string db, string where, string token)
    {
        foreach (var (table, bucket) in Rollups)
            yield return RollUpStatement(db, table, bucket, where, $"{table}:{token}");
    }

    /// <summary>The dimension rollup (schemas/clickhouse/010, 012) and the visit rollup (011),
    /// written by the views of 014 from every insert into events_enriched.</summary>
    public const string DimensionTable = "rollup_dims_day";

    /// <inheritdoc cref="DimensionTable"/>
    public const string VisitTable = "rollup_visits_day";

    /// <summary>Every rollup table a site-day has rows in (what a rebuild writes, counts and deletes).</summary>
    public static IEnumerable<string> RollupTables => Rollups.Select(r => r.Table).Append(DimensionTable).Append(VisitTable);

    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
