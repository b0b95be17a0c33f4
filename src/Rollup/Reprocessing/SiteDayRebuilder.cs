using System.Globalization;
using System.Text.Json;
using Analytics.Store;

namespace Analytics.Rollup.Reprocessing;

/// <summary>
/// Rebuilds the derived data of one site-day from events_raw with a given processing-logic
/// version: enriched events (with visits, sessionized from scratch: visits end at UTC midnight
/// because the visitor id does) and the minute, hour, day, dimension and visit rollups, all under a new
/// generation. Then it activates that generation with one insert (readers switch from all-old
/// to all-new at once) and deletes the old generation's rows. A dry run builds the same rows,
/// measures the difference, and deletes them without activating anything.
///
/// Cost: one merchant-site-day rewrites that site-day's enriched rows and its rollup rows
/// (1,440 minute buckets at most per event name, 24 hour, 1 day), reading only that site-day's
/// raw rows through the primary key (merchant, site, time). Nothing of other sites or days is
/// read or rewritten, because generations make the switch atomic without replacing partitions.
/// </summary>
public sealed class SiteDayRebuilder(IColumnStore store, string db, Generations generations, ProcessingLogic logic)
{
    /// <summary>Raw rows read per page: large enough to amortise a query, small enough to stream.</summary>
    public const int PageRows = 20_000;

    private static long s_lastGeneration;

    public sealed record Result(long Events, MetricDelta? Delta, Dictionary<string, long> RowsWritten);

    public async Task<Result> RebuildAsync(ulong merchantId, ulong siteId, DateOnly day, ushort logicVersion, bool dryRun, Action<long> progress, CancellationToken ct)
    {
        await generations.LoadAsync([(merchantId, siteId, day)], ct);
        ulong generation = NewGeneration();
        string scope = string.Create(CultureInfo.InvariantCulture, $"merchant_id = {merchantId} AND site_id = {siteId} AND toDate(received_at) = '{DerivedRows.Day(day)}'");
        var sessions = new Sessionizer();
        long events = 0;
        string after = "";
        using var rows = new RowBinaryWriter();
        int page = 0;
        while (true)
        {
            var raw = await store.QueryRowsAsync(
                $"SELECT merchant_id, site_id, hex(event_id), toUnixTimestamp64Milli(received_at), toUnixTimestamp64Milli(client_time), name, url, referrer, " +
                $"props, revenue_micros, currency, screen_width, engagement_ms, visitor_id, ip_prefix, user_agent, country, log_source, log_offset, " +
                $"ch_ua_mobile, ch_ua_platform, ch_ua_model, ch_ua_form_factors " +
                $"FROM {db}.events_raw WHERE {scope}{after} ORDER BY received_at, event_id LIMIT {PageRows}", ct);
            if (raw.Count == 0) break;
            rows.Reset();
            foreach (var r in raw)
            {
                DerivedRows.WriteEnriched(rows, ToRawEvent(r), logic, sessions, logicVersion, generation);
            }
            await store.InsertRowBinaryAsync($"{db}.events_enriched", DerivedRows.EnrichedColumns, rows.WrittenMemory,
                $"rebuild:{generation}:{page++}", ct);
            events += raw.Count;
            progress(raw.Count);
            var last = raw[^1];
            after = string.Create(CultureInfo.InvariantCulture,
                $" AND (received_at, event_id) > (fromUnixTimestamp64Milli({last[3].GetInt64()}, 'UTC'), unhex('{last[2].GetString()}'))");
            if (raw.Count < PageRows) break;
        }

        string generationScope = string.Create(CultureInfo.InvariantCulture, $"{scope} AND generation = {generation}");
        foreach (var (table, bucket) in DerivedRows.Rollups)
        {
            await store.ExecuteAsync(DerivedRows.RollUpStatement(db, table, bucket, generationScope, $"rebuild:{generation}:{table}"), ct);
        }
        await store.ExecuteAsync(DerivedRows.DimensionRollUpStatement(db, generationScope, $"rebuild:{generation}:{DerivedRows.DimensionTable}"), ct);
        await store.ExecuteAsync(DerivedRows.VisitRollUpStatement(db, generationScope, $"rebuild:{generation}:{DerivedRows.VisitTable}"), ct);

        var written = new Dictionary<string, long> { ["events_enriched"] = events };
        foreach (var table in DerivedRows.RollupTables)
        {
            var count = await store.QueryRowsAsync(string.Create(CultureInfo.InvariantCulture,
                $"SELECT count() FROM {db}.{table} WHERE merchant_id = {merchantId} AND site_id = {siteId} AND toDate(bucket) = '{DerivedRows.Day(day)}' AND generation = {generation}"), ct);
            written[table] = count[0][0].GetInt64();
        }

        ulong previous = generations.Active(merchantId, siteId, day);
        if (dryRun)
        {
            var delta = await DeltaAsync(merchantId, siteId, day, previous, generation, ct);
            await DeleteGenerationAsync(merchantId, siteId, day, $"generation = {generation}", ct);
            return new Result(events, delta, written);
        }
        await generations.ActivateAsync(merchantId, siteId, day, generation, logicVersion, events, ct);
        // Old rows are invisible now; removing them only frees space.
        await DeleteGenerationAsync(merchantId, siteId, day, $"generation != {generation}", ct);
        return new Result(events, null, written);
    }

    private static ulong NewGeneration()
    {
        // Microseconds since the epoch, strictly increasing within the process: unique across
        // restarts too, so rows of an interrupted, never-activated rebuild are never reused.
        ulong now = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000);
        while (true)
        {
            long last = Interlocked.Read(ref s_lastGeneration);
            ulong next = Math.Max(now, (ulong)last + 1);
            if (Interlocked.CompareExchange(ref s_lastGeneration, (long)next, last) == last) return next;
        }
    }

    private async Task DeleteGenerationAsync(ulong merchantId, ulong siteId, DateOnly day, string generationFilter, CancellationToken ct)
    {
        string d = DerivedRows.Day(day);
        string site = string.Create(CultureInfo.InvariantCulture, $"merchant_id = {merchantId} AND site_id = {siteId}");
        await store.ExecuteAsync($"DELETE FROM {db}.events_enriched WHERE {site} AND toDate(received_at) = '{d}' AND {generationFilter}", ct);
        foreach (var table in DerivedRows.RollupTables)
        {
            await store.ExecuteAsync($"DELETE FROM {db}.{table} WHERE {site} AND toDate(bucket) = '{d}' AND {generationFilter}", ct);
        }
    }

    private async Task<MetricDelta> DeltaAsync(ulong merchantId, ulong siteId, DateOnly day, ulong before, ulong after, CancellationToken ct)
    {
        string d = DerivedRows.Day(day);
        string Metrics(string table, ulong generation, string group) => string.Create(CultureInfo.InvariantCulture,
            $"SELECT {group} sum(events), sumIf(events, name = 'pageview'), uniqMerge(visitors), sum(visit_starts) FROM {db}.{table} " +
            $"WHERE merchant_id = {merchantId} AND site_id = {siteId} AND toDate(bucket) = '{d}' AND generation = {generation}");
        static MetricValues Values(JsonElement[] row, int offset) =>
            new(row[offset].GetInt64(), row[offset + 1].GetInt64(), row[offset + 2].GetInt64(), row[offset + 3].GetInt64());

        var beforeDay = await store.QueryRowsAsync(Metrics("rollup_day", before, ""), ct);
        var afterDay = await store.QueryRowsAsync(Metrics("rollup_day", after, ""), ct);
        var beforeHours = (await store.QueryRowsAsync(Metrics("rollup_hour", before, "toUnixTimestamp(bucket) AS h,") + " GROUP BY h", ct))
            .ToDictionary(r => r[0].GetInt64(), r => Values(r, 1));
        var afterHours = (await store.QueryRowsAsync(Metrics("rollup_hour", after, "toUnixTimestamp(bucket) AS h,") + " GROUP BY h", ct))
            .ToDictionary(r => r[0].GetInt64(), r => Values(r, 1));
        var zero = new MetricValues(0, 0, 0, 0);
        // A sample of hour buckets: those that change, first 24 (a day has 24).
        var samples = beforeHours.Keys.Union(afterHours.Keys).Order()
            .Select(h => new BucketDelta(DateTimeOffset.FromUnixTimeSeconds(h), beforeHours.GetValueOrDefault(h, zero), afterHours.GetValueOrDefault(h, zero)))
            .Where(b => b.Before != b.After)
            .Take(24)
            .ToList();
        return new MetricDelta(Values(beforeDay[0], 0), Values(afterDay[0], 0), samples);
    }

    private static RawEvent ToRawEvent(JsonElement[] r) => new(
        r[0].GetUInt64(), r[1].GetUInt64(), Convert.FromHexString(r[2].GetString()!), r[3].GetInt64(), r[4].GetInt64(),
        r[5].GetString()!, r[6].GetString()!, r[7].GetString()!,
        r[8].EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value.GetString()!)).ToList(),
        r[9].GetInt64(), r[10].GetString()!, r[11].GetUInt32(), r[12].GetUInt32(), r[13].GetUInt64(),
        r[14].GetString()!, r[15].GetString()!, r[16].GetString()!, r[17].GetString()!, r[18].GetInt64())
    {
        ChUaMobile = r[19].GetString()!,
        ChUaPlatform = r[20].GetString()!,
        ChUaModel = r[21].GetString()!,
        ChUaFormFactors = r[22].GetString()!,
    };
}
