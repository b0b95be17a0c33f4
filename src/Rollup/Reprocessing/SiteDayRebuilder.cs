using System.Globalization;
using System.Text.Json;
using Analytics.Store;

namespace Analytics.Rollup.Reprocessing;

/// <summary>
/// Rebuilds the derived data of site-days from events_raw with a given processing-logic version:
/// enriched events (with visits, sessionized from scratch per site-day: visits end at UTC midnight
/// because the visitor id does) and the minute, hour, day, dimension and visit rollups, all under a new
/// generation. Then it activates that generation with one insert (readers switch from all-old to
/// all-new at once, for every site-day of the call) and deletes the old generations' rows. A dry
/// run builds the same rows, measures the difference, and deletes them without activating anything.
///
/// Many site-days go through one call the way catch-up stores a round: their raw rows are read in
/// pages of RowBinary (one query per page for all of them, not one per site-day), enriched into one
/// insert per page, rolled up by the rollup statements side by side, and activated by one
/// insert. All site-days of a call share its generation (a fresh number: unique per site-day still,
/// which is all readers need) and its deduplication tokens. The statement count per call is fixed,
/// so the cost per event falls as a call covers more site-days; a call's events are bounded by its
/// caller (a reprocess step takes at most a round's worth). The superseded rows are deleted by
/// <see cref="DeleteSupersededAsync"/>, after each call or, for a job, once after all its steps.
///
/// Crash safety: nothing is visible before the activation insert, which is one block; a call that
/// dies before it leaves the old generation active and its own rows invisible (the next rebuild of
/// those site-days deletes them, as every cleanup deletes every generation but the one it keeps).
/// One that dies after it leaves old rows nobody reads, deleted the same way.
///
/// Cost: reading goes through the primary key (merchant, site, time) of the site-days asked for;
/// nothing of other sites or days is read or rewritten, because generations make the switch
/// atomic without replacing partitions.
/// </summary>
public sealed class SiteDayRebuilder(IColumnStore store, string db, Generations generations, ProcessingLogic logic)
{
    /// <summary>Raw rows read per page: a catch-up round's size, large enough to amortise the
    /// statements, small enough to hold in memory (~20 MB of rows; a rebuild holds two pages at
    /// once, since the next one is read while this one is derived). Tests make it small to cross
    /// page boundaries inside and between site-days.</summary>
    public int PageRows { get; init; } = 50_000;

    /// <summary>Site-days per call (and per DELETE) at most: bounds the statement text (~90 bytes
    /// and ~11 syntax-tree nodes each in a WHERE) well under the engine's max_query_size (256 KiB)
    /// and max_ast_elements (50,000); a call of this many is tested.</summary>
    public const int MaxSiteDays = 500;

    /// <summary>Distinct days per call at most: the event tables and rollup_hour are partitioned
    /// by day, and the engine refuses an insert that touches more than 100 partitions
    /// (max_partitions_per_insert_block). A job over a small site's four months once failed so.</summary>
    public const int MaxDays = 100;

    private const string RawSelect =
        "merchant_id, site_id, event_id, toUnixTimestamp64Milli(received_at), toUnixTimestamp64Milli(client_time), name, url, referrer, " +
        "props, revenue_micros, currency, screen_width, engagement_ms, visitor_id, ip_prefix, user_agent, country, log_source, log_offset, " +
        "ch_ua_mobile, ch_ua_platform, ch_ua_model, ch_ua_form_factors";

    private static long s_lastGeneration;

    public sealed record Result(long Events, MetricDelta? Delta, Dictionary<string, long> RowsWritten);

    /// <summary>One site-day's outcome in a call of <see cref="RebuildAsync(IReadOnlyList{SiteDay}, ushort, bool, Action{long}, CancellationToken, bool)"/>:
    /// <paramref name="Generation"/> is the one it built (active unless a dry run).</summary>
    public sealed record SiteDayResult(SiteDay SiteDay, ulong Generation, Result Result);

    /// <summary>Rebuilds one site-day (a call of one).</summary>
    public async Task<Result> RebuildAsync(ulong merchantId, ulong siteId, DateOnly day, ushort logicVersion, bool dryRun, Action<long> progress, CancellationToken ct) =>
        (await RebuildAsync([new SiteDay(merchantId, siteId, day)], logicVersion, dryRun, progress, ct))[0].Result;

    /// <summary>Rebuilds <paramref name="siteDays"/> (distinct, at most <see cref="MaxSiteDays"/> of at most <see cref="MaxDays"/> days)
    /// as one unit of work; results in the order given. With <paramref name="deleteNow"/> off the
    /// rows to delete (the old generations', or a dry run's own) stay until the caller passes the
    /// results to <see cref="DeleteSupersededAsync"/>: a job deletes once for all its steps.</summary>
    public async Task<IReadOnlyList<SiteDayResult>> RebuildAsync(IReadOnlyList<SiteDay> siteDays, ushort logicVersion, bool dryRun, Action<long> progress, CancellationToken ct,
        bool deleteNow = true)
    {
        ArgumentOutOfRangeException.ThrowIfZero(siteDays.Count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(siteDays.Count, MaxSiteDays);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(siteDays.Select(s => s.Day).Distinct().Count(), MaxDays, nameof(siteDays) + " days");
        if (siteDays.Distinct().Count() != siteDays.Count) throw new ArgumentException("Site-days must be distinct.", nameof(siteDays));
        await generations.LoadAsync(siteDays.Select(s => (s.MerchantId, s.SiteId, s.Day)), ct);
        ulong generation = NewGeneration();
        string rawScope = Scope(siteDays, "received_at");
        var events = siteDays.ToDictionary(s => s, _ => 0L);
        // Pages overlap: the next page is read while this one is derived, and a page's insert runs
        // while the next one is derived (the engine runs each statement on a session of its own).
        // The derivation itself stays in order, one page after another: visits carry over between
        // pages. Without the overlap a rebuild left a core idle (2026-12-03: reprocessing 0.83x
        // catch-up's events/s at 21.8 against 25.0 µs of CPU per event; the page reads were 37 %
        // of its wall clock). Two writers, since a page's insert still reads its rows while the
        // next page is written; at most one insert is in flight.
        using var rowsA = new RowBinaryWriter(4 * 1024 * 1024);
        using var rowsB = new RowBinaryWriter(4 * 1024 * 1024);
        var sessions = new Sessionizer();
        SiteDay? current = null;
        Task<(List<RawEvent> Rows, RawEvent Last)>? reading = ReadPageAsync("");
        Task? inserting = null;
        try
        {
            for (int page = 0; reading is not null; page++)
            {
                var (raw, last) = await reading;
                // A short page is the last; a full one may be too (the next read finds nothing).
                reading = raw.Count < PageRows ? null : ReadPageAsync(string.Create(CultureInfo.InvariantCulture,
                    $" AND (merchant_id, site_id, received_at, event_id) > ({last.MerchantId}, {last.SiteId}, fromUnixTimestamp64Milli({last.ReceivedMs}, 'UTC'), unhex('{Convert.ToHexString(last.Id)}'))"));
                if (raw.Count == 0) break;
                var rows = page % 2 == 0 ? rowsA : rowsB;
                rows.Reset();
                int enriched = 0;
                foreach (var e in raw)
                {
                    var siteDay = new SiteDay(e.MerchantId, e.SiteId, e.Day);
                    // Rows come grouped by site-day (the sort key leads with merchant, site, time):
                    // a new one starts its visits from scratch, as a rebuild of it alone would.
                    if (siteDay != current)
                    {
                        if (current is not null) sessions = new Sessionizer();
                        current = siteDay;
                    }
                    // An event the logic counts nowhere (an engagement ping no visit takes) has no row.
                    if (!DerivedRows.WriteEnriched(rows, e, logic, sessions, logicVersion, generation)) continue;
                    events[siteDay]++;
                    enriched++;
                }
                // The previous page's insert has finished before this one starts, so the writer
                // this page reuses next time is free by then.
                if (inserting is not null) await inserting;
                inserting = InsertPageAsync(rows, enriched, page, raw.Count);
            }
            if (inserting is not null) await inserting;
        }
        finally
        {
            // On a failure, no statement may still read the writers' memory once they are disposed.
            await SettledAsync(inserting);
            await SettledAsync(reading);
        }

        Task<(List<RawEvent> Rows, RawEvent Last)> ReadPageAsync(string after) => store.QueryRowBinaryAsync(
            $"SELECT {RawSelect} FROM {db}.events_raw WHERE ({rawScope}){after} ORDER BY merchant_id, site_id, received_at, event_id LIMIT {PageRows}",
            ReadRaw, ct);

        async Task InsertPageAsync(RowBinaryWriter rows, int enriched, int page, int rawRows)
        {
            long stored = await store.InsertRowBinaryAsync($"{db}.events_enriched", DerivedRows.EnrichedColumns, rows.WrittenMemory,
                string.Create(CultureInfo.InvariantCulture, $"rebuild:{generation}:{page}"), ct);
            if (stored != enriched) throw new InvalidOperationException($"events_enriched: sent {enriched} rows, the store wrote {stored}.");
            progress(rawRows);
        }

        // The rollups read the rows just written (this generation only) and write one table each:
        // side by side, as catch-up runs them.
        string generationScope = string.Create(CultureInfo.InvariantCulture, $"generation = {generation} AND ({rawScope})");
        await Task.WhenAll(DerivedRows.RollUpStatements(db, generationScope, string.Create(CultureInfo.InvariantCulture, $"rebuild:{generation}"))
            .Select(sql => store.ExecuteAsync(sql, ct)));
        var written = await RowsPerSiteDayAsync(siteDays, generation, ct);

        var results = new List<SiteDayResult>(siteDays.Count);
        if (dryRun)
        {
            foreach (var s in siteDays)
            {
                var delta = await DeltaAsync(s.MerchantId, s.SiteId, s.Day, generations.Active(s.MerchantId, s.SiteId, s.Day), generation, ct);
                results.Add(new SiteDayResult(s, generation, new Result(events[s], delta, Written(s))));
            }
        }
        else
        {
            await generations.ActivateAsync(siteDays.Select(s => ((s.MerchantId, s.SiteId, s.Day), events[s])).ToList(), generation, logicVersion, ct);
            foreach (var s in siteDays) results.Add(new SiteDayResult(s, generation, new Result(events[s], null, Written(s))));
        }
        if (deleteNow) await DeleteSupersededAsync(results.Select(r => (r.SiteDay, r.Generation)).ToList(), dryRun, ct);
        return results;

        Dictionary<string, long> Written(SiteDay s)
        {
            var counts = new Dictionary<string, long> { ["events_enriched"] = events[s] };
            foreach (var table in DerivedRows.RollupTables) counts[table] = written.GetValueOrDefault((table, s));
            return counts;
        }
    }

    /// <summary>Waits for a task without its outcome: the failure being thrown already is the one reported.</summary>
    private static async Task SettledAsync(Task? task)
    {
        if (task is null) return;
        try { await task; }
        catch (Exception) { }
    }

    /// <summary>The site-days as a filter the primary key serves: one (merchant, site, day) range each.</summary>
    private static string Scope(IEnumerable<SiteDay> siteDays, string timeColumn) => string.Join(" OR ", siteDays.Select(s => string.Create(CultureInfo.InvariantCulture,
        $"(merchant_id = {s.MerchantId} AND site_id = {s.SiteId} AND toDate({timeColumn}) = '{DerivedRows.Day(s.Day)}')")));

    /// <summary>Rows of <paramref name="generation"/> per rollup table and site-day, in one query.</summary>
    private async Task<Dictionary<(string Table, SiteDay SiteDay), long>> RowsPerSiteDayAsync(IReadOnlyList<SiteDay> siteDays, ulong generation, CancellationToken ct)
    {
        string bucketScope = Scope(siteDays, "bucket");
        string sql = string.Join(" UNION ALL ", DerivedRows.RollupTables.Select(table => string.Create(CultureInfo.InvariantCulture,
            $"SELECT '{table}', merchant_id, site_id, toString(toDate(bucket)) AS day, count() FROM {db}.{table} " +
            $"WHERE generation = {generation} AND ({bucketScope}) GROUP BY merchant_id, site_id, day")));
        var counts = new Dictionary<(string, SiteDay), long>();
        foreach (var r in await store.QueryRowsAsync(sql, ct))
        {
            var siteDay = new SiteDay(r[1].GetUInt64(), r[2].GetUInt64(), DateOnly.Parse(r[3].GetString()!, CultureInfo.InvariantCulture));
            counts[(r[0].GetString()!, siteDay)] = r[4].GetInt64();
        }
        return counts;
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

    /// <summary>
    /// Deletes what rebuilds left to delete: for each site-day built (the generation it built),
    /// every other generation's rows; after a dry run, the rows it built. Old rows are invisible
    /// once the new generation is active, so this only frees space, and may run any time later;
    /// repeating it deletes nothing more. Live rows written meanwhile went into the active
    /// generation and stay.
    ///
    /// One lightweight DELETE per table for up to <see cref="MaxSiteDays"/> site-days, one after
    /// another. The statement count is what costs: a DELETE marks rows in every part it touches,
    /// and a site-day's rows lie in every part its day's rounds wrote, so one DELETE per site-day
    /// (or per step) rewrote the same parts' masks once per site-day (or step). Side by side they
    /// contend in the engine (each 3-8x slower, measured), so they stay sequential.
    ///
    /// <paramref name="inBackground"/>: return once the engine has the DELETEs as mutations
    /// (<c>lightweight_deletes_sync = 0</c>) and let its background pool apply them, instead of
    /// waiting. Nobody reads the rows meanwhile, and the engine keeps a mutation on disk until it
    /// is done, so a restart finishes it; <c>system.mutations</c> shows it. A reprocess job does
    /// this: waiting took about a fifth of a job's time (perf/README.md).
    /// </summary>
    public async Task DeleteSupersededAsync(IReadOnlyList<(SiteDay SiteDay, ulong Generation)> built, bool dryRun, CancellationToken ct, bool inBackground = false)
    {
        string settings = inBackground ? " SETTINGS lightweight_deletes_sync = 0" : "";
        foreach (var chunk in built.Chunk(MaxSiteDays))
        {
            string Filter(string timeColumn) => string.Join(" OR ", chunk.GroupBy(b => b.Generation).Select(g => string.Create(CultureInfo.InvariantCulture,
                $"(({Scope(g.Select(b => b.SiteDay), timeColumn)}) AND generation {(dryRun ? "=" : "!=")} {g.Key})")));
            await store.ExecuteAsync($"DELETE FROM {db}.events_enriched WHERE {Filter("received_at")}{settings}", ct);
            string bucketFilter = Filter("bucket");
            foreach (var table in DerivedRows.RollupTables)
            {
                await store.ExecuteAsync($"DELETE FROM {db}.{table} WHERE {bucketFilter}{settings}", ct);
            }
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

    /// <summary>A page of raw rows, RowBinary in <see cref="RawSelect"/>'s order, and its last one.</summary>
    private static (List<RawEvent> Rows, RawEvent Last) ReadRaw(ReadOnlySpan<byte> data)
    {
        var rows = new List<RawEvent>();
        var r = new RowBinaryReader(data);
        while (!r.End)
        {
            rows.Add(new RawEvent(
                r.ReadUInt64(), r.ReadUInt64(), r.ReadFixedString(16), r.ReadInt64(), r.ReadInt64(),
                r.ReadString(), r.ReadString(), r.ReadString(), r.ReadStringMap(),
                r.ReadInt64(), r.ReadString(), r.ReadUInt32(), r.ReadUInt32(), r.ReadUInt64(),
                r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), (long)r.ReadUInt64())
            {
                ChUaMobile = r.ReadString(),
                ChUaPlatform = r.ReadString(),
                ChUaModel = r.ReadString(),
                ChUaFormFactors = r.ReadString(),
            });
        }
        return (rows, rows.Count == 0 ? null! : rows[^1]);
    }
}

/// <summary>A site's UTC day: the unit of atomic switch-over.</summary>
public readonly record struct SiteDay(ulong MerchantId, ulong SiteId, DateOnly Day);
