using System.Globalization;
using System.Text;
using System.Text.Json;
using Analytics.QueryService;
using Analytics.Rollup;

namespace Analytics.Store.Conformance.Tests;

/// <summary>
/// What the product does with a store, end to end, with deterministic data: the product's
/// migrations, raw and enriched rows in the product's RowBinary encoding, the product's rollup
/// statements, and the product's metric queries (MetricsReader). Two merchants, so tenant
/// scoping is part of every answer.
/// </summary>
public sealed class ProductScenario
{
    public const ulong Merchant = 7, Site = 70, OtherMerchant = 8, OtherSite = 80;
    public static readonly DateTimeOffset Day1 = new(2026, 11, 24, 0, 0, 0, TimeSpan.Zero);

    private const string Browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
    private const string Crawler = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    public ProductScenario(int events, int seed = 20261124)
    {
        var random = new Random(seed);
        var list = new List<RawEvent>(events);
        for (var i = 0; i < events; i++)
        {
            var other = i % 5 == 0;
            var signup = random.Next(10) == 0;
            var id = new byte[16];
            random.NextBytes(id);
            var received = Day1.ToUnixTimeMilliseconds() + random.NextInt64((long)TimeSpan.FromDays(2).TotalMilliseconds);
            list.Add(new RawEvent(
                other ? OtherMerchant : Merchant, other ? OtherSite : Site, id, received, received - 150,
                signup ? "signup" : "pageview",
                $"https://shop.example/p/{random.Next(40)}?utm_source={(random.Next(3) == 0 ? "news" : "")}",
                random.Next(4) == 0 ? "https://www.google.com/" : "",
                signup ? [KeyValuePair.Create("plan", "pro"), KeyValuePair.Create("ünïcode", "✓ 'q' \\ \"")] : [],
                signup ? 19_990_000 : 0, signup ? "EUR" : "", 1280, (uint)random.Next(60_000),
                (ulong)random.Next(1, 120) * 0x9E3779B97F4A7C15UL, "203.0.113.0", random.Next(25) == 0 ? Crawler : Browser,
                "DE", "test-log", i));
        }
        Events = [.. list.OrderBy(e => e.ReceivedMs)];
    }

    public IReadOnlyList<RawEvent> Events { get; }

    /// <summary>The processing logic the scenario stores with: the store's behaviour is what is
    /// compared here, so the logic that needs no enrichment data does.</summary>
    public const ushort Version = 2;

    /// <summary>Expected dashboard numbers for one site over [from, to), computed here in C#
    /// with the product's own rules (bots excluded, visits from the product's Sessionizer).</summary>
    public IReadOnlyDictionary<string, long> Expected(ulong merchant, ulong site, DateTimeOffset from, DateTimeOffset to)
    {
        var sessions = new Sessionizer();
        long pageviews = 0, events = 0, visits = 0;
        var visitors = new HashSet<ulong>();
        foreach (var e in Events)
        {
            if (ProcessingLogic.IsBot(e.UserAgent, Version))
                continue;
            var (_, starts) = sessions.Next(e.SiteId, e.VisitorId, e.ReceivedMs);
            if (e.MerchantId != merchant || e.SiteId != site || e.ReceivedMs < from.ToUnixTimeMilliseconds() || e.ReceivedMs >= to.ToUnixTimeMilliseconds())
                continue;
            events++;
            if (e.Name == "pageview") pageviews++;
            if (starts) visits++;
            visitors.Add(e.VisitorId);
        }
        return new Dictionary<string, long> { ["pageviews"] = pageviews, ["events"] = events, ["visitors"] = visitors.Count, ["visits"] = visits };
    }

    public static Task MigrateAsync(IColumnStore store, string db, CancellationToken ct) =>
        new SchemaMigrator(store).MigrateAsync(BackendsFixture.SchemaDirectory, db, ct);

    /// <summary>Raw rows in the product's encoding (DerivedRows.WriteRaw).</summary>
    public RowBinaryWriter RawRows()
    {
        var w = new RowBinaryWriter();
        foreach (var e in Events) DerivedRows.WriteRaw(w, e);
        return w;
    }

    /// <summary>Enriched rows in the product's encoding (DerivedRows.WriteEnriched, generation 0).</summary>
    public RowBinaryWriter EnrichedRows()
    {
        var w = new RowBinaryWriter();
        var sessions = new Sessionizer();
        foreach (var e in Events) DerivedRows.WriteEnriched(w, e, ProcessingLogic.WithoutData, sessions, Version, 0);
        return w;
    }

    /// <summary>Stores everything the way Rollup does and returns the rows each insert reported.</summary>
    public async Task<long[]> StoreAsync(IColumnStore store, string db, CancellationToken ct)
    {
        using var raw = RawRows();
        using var enriched = EnrichedRows();
        var written = new List<long>
        {
            await store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, raw.WrittenMemory, "raw:0-1", ct),
            await store.InsertRowBinaryAsync($"{db}.events_enriched", DerivedRows.EnrichedColumns, enriched.WrittenMemory, "enriched:0-1", ct),
        };
        await RollUpAsync(store, db, ct);
        return [.. written];
    }

    public static async Task RollUpAsync(IColumnStore store, string db, CancellationToken ct)
    {
        foreach (var (table, bucket) in DerivedRows.Rollups)
            await store.ExecuteAsync(DerivedRows.RollUpStatement(db, table, bucket, "log_source = 'test-log'", $"{table}:0-1"), ct);
    }

    /// <summary>The product's metric queries, each a line of text: what dashboards would show.</summary>
    public static async Task<IReadOnlyList<string>> DashboardAsync(IColumnStore store, string db, CancellationToken ct)
    {
        var reader = new MetricsReader(store, db);
        string[] all = ["pageviews", "events", "visitors", "visits"];
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var kolkata = TimeZoneInfo.FindSystemTimeZoneById("Asia/Kolkata");
        var queries = new (string Name, MetricsQuery Query)[]
        {
            ("days, aggregate", Query(Merchant, Site, all, Day1, Day1.AddDays(2), Interval.Day, TimeZoneInfo.Utc, null)),
            ("hours, aggregate", Query(Merchant, Site, all, Day1.AddHours(5), Day1.AddHours(29), Interval.Hour, TimeZoneInfo.Utc, null)),
            ("minutes, aggregate", Query(Merchant, Site, all, Day1.AddMinutes(125), Day1.AddMinutes(1000), Interval.Minute, TimeZoneInfo.Utc, null)),
            ("signups, aggregate", Query(Merchant, Site, all, Day1, Day1.AddDays(2), Interval.Day, TimeZoneInfo.Utc, "signup")),
            ("other tenant's site under this merchant", Query(Merchant, OtherSite, all, Day1, Day1.AddDays(2), Interval.Day, TimeZoneInfo.Utc, null)),
            ("other merchant", Query(OtherMerchant, OtherSite, all, Day1, Day1.AddDays(2), Interval.Day, TimeZoneInfo.Utc, null)),
        };
        var lines = new List<string>();
        foreach (var (name, q) in queries)
            lines.Add($"{name}: {Format(await reader.AggregateAsync(q, ct))}");

        var series = new (string Name, MetricsQuery Query)[]
        {
            ("minute series", Query(Merchant, Site, all, Day1.AddHours(3), Day1.AddHours(5), Interval.Minute, TimeZoneInfo.Utc, null)),
            ("hour series UTC", Query(Merchant, Site, all, Day1, Day1.AddDays(2), Interval.Hour, TimeZoneInfo.Utc, null)),
            ("day series UTC", Query(Merchant, Site, all, Day1, Day1.AddDays(2), Interval.Day, TimeZoneInfo.Utc, null)),
            ("day series Berlin", Query(Merchant, Site, all, Day1, Day1.AddDays(2), Interval.Day, berlin, null)),
            ("day series Kolkata", Query(Merchant, Site, all, Day1, Day1.AddDays(2), Interval.Day, kolkata, null)),
            ("hour series Kolkata signups", Query(Merchant, Site, all, Day1, Day1.AddDays(1), Interval.Hour, kolkata, "signup")),
        };
        foreach (var (name, q) in series)
        {
            var sb = new StringBuilder(name).Append(':');
            foreach (var bucket in await reader.TimeseriesAsync(q, ct))
                sb.Append(' ').Append(bucket.Time.ToString("O", CultureInfo.InvariantCulture)).Append('=').Append(Format(bucket.Values));
            lines.Add(sb.ToString());
        }
        return lines;
    }

    /// <summary>Every stored row of every table, as the engine prints it (JSONCompact), in key order:
    /// identical dumps mean identical stored data.</summary>
    public static async Task<IReadOnlyList<string>> DumpAsync(IColumnStore store, string db, CancellationToken ct)
    {
        string[] statements =
        [
            $"SELECT * FROM {db}.events_raw ORDER BY merchant_id, site_id, received_at, event_id",
            $"SELECT * FROM {db}.events_enriched ORDER BY merchant_id, site_id, received_at, event_id",
            .. DerivedRows.Rollups.Select(r =>
                $"SELECT merchant_id, site_id, bucket, name, generation, sum(events), sum(visit_starts), sum(revenue_micros), uniqMerge(visitors) " +
                $"FROM {db}.{r.Table} GROUP BY merchant_id, site_id, bucket, name, generation ORDER BY merchant_id, site_id, bucket, name, generation"),
            $"SELECT version, name FROM {db}.schema_migrations ORDER BY version",
        ];
        var lines = new List<string>();
        foreach (var sql in statements)
        {
            foreach (var row in await store.QueryRowsAsync(sql, ct))
                lines.Add(string.Join('\t', row.Select(c => c.GetRawText())));
            lines.Add("--");
        }
        return lines;
    }

    public static MetricsQuery Query(ulong merchant, ulong site, string[] metrics, DateTimeOffset from, DateTimeOffset to,
        Interval interval, TimeZoneInfo tz, string? eventName) =>
        new((long)merchant, (long)site, metrics, from, to, interval, tz, eventName);

    public static string Format(IReadOnlyDictionary<string, long> values) =>
        string.Join(',', values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => $"{v.Key}={v.Value}"));

    public static long Count(IReadOnlyList<JsonElement[]> rows) => rows[0][0].GetInt64();
}
