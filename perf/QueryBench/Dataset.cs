using System.Diagnostics;
using System.Globalization;
using Analytics.Rollup;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// A generated history written straight into the store, shaped as Rollup writes it: enriched
/// events (visits with their entry stamped on every event, visit starts, bots without visits,
/// generation 0) inserted by one SQL statement per slice of merchants, then the minute, hour,
/// day and dimension rollups built from them by the very statements Rollup runs
/// (DerivedRows.RollUpStatement, DimensionRollUpStatement). events_raw is left empty: queries
/// never read it.
///
/// Shape: merchants ranked 1..M; merchant 1 has 10 % of all events (≥ 10M of 100M, the issue's
/// "largest merchant"), the others share the rest by Zipf (weight 1/rank). Each site is its
/// merchant's only one. Visits of 1-10 events (mean about 2.2, 40 % single-event) under two
/// minutes apart, each inside one UTC day (visits end at midnight); one visitor in three has two
/// visits that day, hours apart. 2 % of visits are bots. Days uniform over the history ending
/// yesterday (UTC). Pages per merchant 20 + events/500 (at most 20,000), skewed to the first; 12
/// named sources plus ~3,000 referring sites; 60 countries, 20 regions each, ~5,000 cities; 3
/// devices, 6 browsers, 6 OSs; 15 % of visits with UTM tags (300 campaigns).
/// </summary>
/// <param name="largestShare">Merchant 1's share of all events (0.10 unless a run asks otherwise:
/// --largest-share 0.5 of 20M events gives a 10M-event merchant without generating 100M).</param>
/// <param name="lastDay">The history's last day: yesterday (UTC) unless a kept data set (--data)
/// says which day it was generated up to.</param>
public sealed class Dataset(IColumnStore store, string db, long events, int merchants, int days, double largestShare = Dataset.DefaultLargestShare,
    DateOnly? lastDay = null)
{
    public const double DefaultLargestShare = 0.10;
    private const double EventsPerVisit = 2.2;

    public DateOnly LastDay { get; } = lastDay ?? DateOnly.FromDateTime(DateTime.UtcNow).AddDays(-1);

    /// <summary>Events of merchant <paramref name="rank"/> by construction (before rounding to visits).</summary>
    public double EventsOf(int rank) => rank == 1 ? events * largestShare : events * (1 - largestShare) / (rank * Harmonic(merchants));

    /// <summary>The merchant at the events-weighted median: half of all events belong to larger
    /// merchants. What a typical dashboard user (or event) sees. When the largest holds half of
    /// all events or more (--largest-share), it would be the median itself: then the median of
    /// the others.</summary>
    public int TypicalMerchant()
    {
        bool largestIsHalf = largestShare >= 0.5;
        double half = largestIsHalf ? events * (1 - largestShare) / 2.0 : events / 2.0, sum = 0;
        for (int rank = largestIsHalf ? 2 : 1; rank <= merchants; rank++)
        {
            sum += EventsOf(rank);
            if (sum >= half) return rank;
        }
        return merchants;
    }

    private static double Harmonic(int n)
    {
        double h = 0;
        for (int i = 2; i <= n; i++) h += 1.0 / i;
        return h;
    }

    public async Task<(long Events, double Seconds, double RollupSeconds)> GenerateAsync(CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        double h = Harmonic(merchants);
        // Slices of merchants of about 2.5M events each (memory of one INSERT … SELECT); the
        // largest merchant alone is one.
        int slices = (int)Math.Max(1, Math.Ceiling(events * (1 - largestShare) / 2_500_000));
        string last = LastDay.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        string visitsOf = string.Create(CultureInfo.InvariantCulture,
            $"greatest(1, toUInt64(if(m = 1, {events * largestShare / EventsPerVisit}, {events * (1 - largestShare) / EventsPerVisit / h} / m)))");
        for (int slice = -1; slice < slices; slice++)
        {
            string merchantsOf = slice < 0 ? "m = 1" : string.Create(CultureInfo.InvariantCulture, $"m > 1 AND m % {slices} = {slice}");
            await store.ExecuteAsync(InsertSql(merchantsOf, visitsOf, last), ct);
        }
        long stored = (await store.QueryRowsAsync($"SELECT count() FROM {db}.events_enriched", ct))[0][0].GetInt64();
        double generated = sw.Elapsed.TotalSeconds;

        // Rollups over chunks of days of about 1M events: the statements Rollup runs, scoped by day
        // range instead of a log range.
        var rollups = Stopwatch.StartNew();
        int chunk = (int)Math.Max(1, Math.Min(31, 1_000_000 / Math.Max(1, events / days)));
        var first = LastDay.AddDays(-(days - 1));
        for (var from = first; from <= LastDay; from = from.AddDays(chunk))
        {
            var to = from.AddDays(chunk);
            string scope = $"toDate(received_at) >= '{DerivedRows.Day(from)}' AND toDate(received_at) < '{DerivedRows.Day(to)}'";
            string token = $"generated:{DerivedRows.Day(from)}";
            // Side by side, as a Rollup round runs them: each statement is single-threaded
            // (max_threads = 1), so one after another they left a core idle.
            await Task.WhenAll(DerivedRows.RollUpStatements(db, scope, token).Select(sql => store.ExecuteAsync(sql, ct)));
        }
        return (stored, generated, rollups.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// One Rollup round's share of a busy merchant's last day, stored as Rollup stores a round:
    /// its enriched rows (a new visitor's visit: a pageview on an entry page, a pageview on another
    /// page and an engagement ping from it; the visit's entry stamped on each), then the rollups over exactly
    /// those rows, the rows and the dimension and visit rollups' under <paramref name="version"/> (what SiteDayWrites gave
    /// the round). About what a merchant of ~30,000 events a day adds between two questions a few
    /// seconds apart. The rows stay: each run adds its rounds to a kept data set (--data).
    /// </summary>
    public async Task WriteRoundAsync(ulong merchant, long version, CancellationToken ct)
    {
        var inv = CultureInfo.InvariantCulture;
        string source = "bench-round-" + Guid.NewGuid().ToString("N");
        ulong visitor = (ulong)Random.Shared.NextInt64(1, long.MaxValue), visit = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        int pages = (int)Math.Min(20_000, 20 + EventsOf((int)merchant) / 500);
        string Page() => "/p/" + ((int)(pages * Math.Pow(Random.Shared.NextDouble(), 3))).ToString(inv);
        var at = LastDay.ToDateTime(new TimeOnly(22, 0)).AddSeconds(Random.Shared.Next(3600));
        const string Entry = "'Google', 'Organic Search', 'https://google/', 'DE', 'DE-1', 'City 1', 'Desktop', 'Chrome', 'Windows'";
        string second = Page(); // the engagement ping is sent from the page it measures
        var rows = new[] { ("pageview", Page(), 1), ("pageview", second, 0), ("engagement", second, 0) }.Select((e, i) => string.Create(inv,
            $"({merchant}, {merchant}, '{Guid.NewGuid():N}', '{at.AddSeconds(i * 20):yyyy-MM-dd HH:mm:ss}', '{e.Item1}', 'shop{merchant}.example', '{e.Item2}', {visitor}, {visit}, {e.Item3}, 4, '{source}', {i}, 0, {Entry}, {Entry}, {version})"));
        await store.ExecuteAsync($"INSERT INTO {db}.events_enriched (merchant_id, site_id, event_id, received_at, name, hostname, pathname, visitor_id, " +
            "visit_id, visit_start, logic_version, log_source, log_offset, generation, referrer_source, channel, referrer, country, region, city, device, browser, os, " +
            "visit_source, visit_channel, visit_referrer, visit_country, visit_region, visit_city, visit_device, visit_browser, visit_os, write_version) " +
            $"SELECT c1, c2, unhex(c3), c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31, c32, c33 " +
            $"FROM values({string.Join(", ", rows)})", ct);
        string scope = string.Create(inv, $"merchant_id = {merchant} AND site_id = {merchant} AND toDate(received_at) = '{LastDay:yyyy-MM-dd}' AND log_source = '{source}'");
        await Task.WhenAll(DerivedRows.PreAggregateStatements(db, scope, source, version).Concat(DerivedRows.TimeRollupStatements(db, scope, source))
            .Select(sql => store.ExecuteAsync(sql, ct)));
    }

    private string InsertSql(string merchantsOf, string visitsOf, string lastDay) => string.Create(CultureInfo.InvariantCulture, $$"""
        INSERT INTO {{db}}.events_enriched (merchant_id, site_id, event_id, received_at, name, hostname, pathname, referrer, referrer_source, channel,
            utm_source, utm_medium, utm_campaign, country, region, city, device, browser, os, is_bot, visitor_id, visit_id, visit_start,
            logic_version, log_source, log_offset, generation, visit_source, visit_channel, visit_referrer, visit_utm_source,
            visit_utm_medium, visit_utm_campaign, visit_country, visit_region, visit_city, visit_device, visit_browser, visit_os,
            revenue_micros, currency)
        SETTINGS max_insert_threads = 2, max_partitions_per_insert_block = 0
        SELECT m, m, toFixedString(concat(reinterpretAsString(cityHash64(m, v, i)), reinterpretAsString(cityHash64(i, v, m, 7))), 16),
            toDateTime64(toDateTime(toDate('{{lastDay}}') - day_back, 'UTC') + start_s + i * gap_s, 3, 'UTC'),
            ev_name, host, path, referrer, if(bot, '', source), if(bot, '', channel), if(bot, '', utm_s), if(bot, '', utm_m), if(bot, '', utm_c),
            country, region, city, device, browser, os, bot, visitor, if(bot, 0, visit), i = 0 AND NOT bot,
            3, 'generated', 0, 0, if(bot, '', source), if(bot, '', channel), if(bot, '', referrer), if(bot, '', utm_s),
            if(bot, '', utm_m), if(bot, '', utm_c), if(bot, '', country), if(bot, '', region), if(bot, '', city), if(bot, '', device),
            if(bot, '', browser), if(bot, '', os),
            if(ev_name = 'purchase', toInt64(1 + ih % 19999) * 10000, 0), if(ev_name = 'purchase', ['EUR', 'USD', 'GBP'][1 + intDiv(ih, 100) % 3], '')
        FROM
        (
            SELECT m, v, i, day_back, start_s, gap_s, bot, visitor, visit, host, source, channel, referrer, utm_s, utm_m, utm_c,
                country, region, city, device, browser, os, entry, cityHash64(m, v, i, 20) AS ih,
                if(i = 0, 'pageview', multiIf(ih % 100 < 70, 'pageview', ih % 100 < 88, 'engagement', ih % 100 < 95, 'add_to_cart', ih % 100 < 98, 'signup', 'purchase')) AS ev_name,
                if(i = 0, entry, concat('/p/', toString(toUInt32(pages * pow((ih % 1000003) / 1000003, 3))))) AS path
            FROM
            (
                SELECT m, v, k, day_back, start_s, gap_s, bot, visitor, visit, host, source, channel, referrer, utm_s, utm_m, utm_c,
                    country, region, city, device, browser, os, pages,
                    concat('/p/', toString(toUInt32(pages * pow((h % 1000003) / 1000003, 3)))) AS entry
                FROM
                (
                    SELECT m, v, pages,
                        cityHash64(m, v) AS h, cityHash64(m, intDiv(v, 2)) AS hp, cityHash64(m, v, 3) AS h3,
                        hp % {{days}} AS day_back,
                        if(v % 2 = 0, cityHash64(m, intDiv(v, 2), 2) % 36000, 43200 + cityHash64(m, intDiv(v, 2), 2) % 39600) AS start_s,
                        10 + h % 110 AS gap_s,
                        h % 50 = 0 AS bot,
                        if(hp % 3 = 0, cityHash64(m, intDiv(v, 2), 'visitor'), cityHash64(m, v, 'solo')) AS visitor,
                        cityHash64(m, v, 'visit') AS visit,
                        1 + multiIf(h3 % 100 < 40, 0, h3 % 100 < 65, 1, h3 % 100 < 80, 2, 3 + h3 % 7) AS k,
                        concat('shop', toString(m), '.example') AS host,
                        if(cityHash64(m, v, 4) % 10 = 0, concat('ref', toString(cityHash64(m, v, 5) % 3000), '.example'),
                           ['Direct / None', 'Google', 'Bing', 'Facebook', 'DuckDuckGo', 'Instagram', 'Twitter', 'Reddit', 'LinkedIn', 'ChatGPT', 'Yahoo!', 'Ecosia']
                           [1 + toUInt32(12 * pow((cityHash64(m, v, 6) % 1000003) / 1000003, 2.5))]) AS source,
                        multiIf(source = 'Direct / None', 'Direct', source IN ('Google', 'Bing', 'DuckDuckGo', 'Yahoo!', 'Ecosia'), 'Organic Search',
                                source IN ('Facebook', 'Instagram', 'Twitter', 'Reddit', 'LinkedIn'), 'Organic Social', source = 'ChatGPT', 'AI Assistant', 'Referral') AS channel,
                        if(source = 'Direct / None', '', concat('https://', lower(source), '/')) AS referrer,
                        cityHash64(m, v, 8) % 100 < 15 AS tagged,
                        if(tagged, ['newsletter', 'facebook', 'google', 'partner'][1 + cityHash64(m, v, 9) % 4], '') AS utm_s,
                        if(tagged, ['email', 'cpc', 'social', 'referral'][1 + cityHash64(m, v, 9) % 4], '') AS utm_m,
                        if(tagged, concat('campaign-', toString(cityHash64(m, v, 10) % 300)), '') AS utm_c,
                        arrayElement(['US', 'DE', 'GB', 'FR', 'IN', 'BR', 'CA', 'NL', 'ES', 'IT', 'JP', 'PL', 'SE', 'AU', 'MX', 'CH', 'AT', 'BE', 'DK', 'NO',
                            'FI', 'IE', 'PT', 'CZ', 'RO', 'HU', 'GR', 'TR', 'UA', 'ZA', 'NG', 'EG', 'KE', 'AR', 'CL', 'CO', 'PE', 'KR', 'CN', 'TW',
                            'HK', 'SG', 'MY', 'TH', 'VN', 'PH', 'ID', 'NZ', 'IL', 'AE', 'SA', 'PK', 'BD', 'LK', 'RU', 'BG', 'HR', 'SK', 'SI', 'LT'],
                            1 + toUInt32(60 * pow((cityHash64(m, v, 11) % 1000003) / 1000003, 2))) AS country,
                        concat(country, '-', toString(cityHash64(m, v, 12) % 20)) AS region,
                        concat('City ', toString(toUInt32(5000 * pow((cityHash64(m, v, 13) % 1000003) / 1000003, 2)))) AS city,
                        multiIf(bot, 'Bot', cityHash64(m, v, 14) % 100 < 55, 'Desktop', cityHash64(m, v, 14) % 100 < 95, 'Mobile', 'Tablet') AS device,
                        ['Chrome', 'Safari', 'Firefox', 'Edge', 'Samsung Internet', 'Opera'][1 + toUInt32(6 * pow((cityHash64(m, v, 15) % 1000003) / 1000003, 2))] AS browser,
                        ['Windows', 'iOS', 'Android', 'Mac OS X', 'Linux', 'Chrome OS'][1 + cityHash64(m, v, 16) % 6] AS os
                    FROM (SELECT number + 1 AS m, {{visitsOf}} AS visits, least(20000, 20 + intDiv(toUInt64(visits * {{EventsPerVisit}}), 500)) AS pages
                          FROM numbers({{merchants}}) WHERE {{merchantsOf}})
                    ARRAY JOIN range(visits) AS v
                )
            )
            ARRAY JOIN range(k) AS i
        )
        """);
}
