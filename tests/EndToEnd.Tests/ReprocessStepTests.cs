using System.Globalization;
using Analytics.Contracts.Internal;
using Analytics.EventLog;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Reprocessing in steps of many site-days (one read per page, one insert, one activation, one
/// DELETE per table for all of them): a job over three days of two sites, stored first by the
/// real Rollup from the real log in small rounds, rebuilds exactly the rows the first build wrote
/// (every table, read as readers read it: each site-day's active generation), checked against
/// LINQ over the generated events too; and a rebuild that dies between two statements leaves the
/// old numbers answering.
/// </summary>
public class ReprocessStepTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const ulong Merchant = 8, SiteA = 80, SiteB = 81;
    private static readonly DateTimeOffset Day0 = new(2026, 4, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly[] Days = [.. Enumerable.Range(0, 3).Select(d => DateOnly.FromDateTime(Day0.AddDays(d).UtcDateTime))];
    private const string Browser = TestHost.BrowserUserAgent;
    private const string Bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    /// <summary>One generated event and what the generator knows about it.</summary>
    private sealed record Generated(StoredEvent Event, bool IsBot, int Visit)
    {
        public DateOnly Day => DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeMilliseconds(Event.ReceivedMs).UtcDateTime);
    }

    [Fact]
    public async Task A_job_over_many_site_days_of_two_sites_rebuilds_exactly_the_rows_the_first_build_wrote()
    {
        var (db, dir, events) = await BuildAsync();
        try
        {
            var before = await SnapshotAsync(db);
            CheckAgainstGenerator(before, events);

            // The job runs in the real Rollup loop; a round's worth of 650 raw events makes steps
            // of two site-days (each has ~300), so the job takes several steps of several site-days.
            var queue = new ReprocessQueue(Path.Combine(dir, "jobs"));
            var job = queue.Enqueue(new ReprocessRequest((long)Merchant, null, Days[0], Days[^1], DryRun: false, null), ProcessingLogic.Current);
            await RunWorkerUntilAsync(db, dir, queue, 650, () => job.IsFinished);
            Assert.Equal("done", job.State);
            Assert.Equal(6, job.Units!.Count);
            Assert.Equal(events.Count, job.EventsDone);
            foreach (var unit in job.Units)
                Assert.Equal(events.Count(e => e.Event.SiteId == (ulong)unit.SiteId && e.Day == unit.Day), unit.RowsWritten!["events_enriched"]);

            // Site-days of one step share its generation: fewer generations than site-days, more than one step.
            var generations = await engine.Store.QueryRowsAsync(
                $"SELECT uniqExact(generation), count() FROM {db}.generations WHERE merchant_id = {Merchant}", Ct);
            Assert.Equal(6, generations[0][1].GetInt64());
            Assert.InRange(generations[0][0].GetInt64(), 2, 5);

            await AssertRebuiltExactlyAsync(db, before, events);
        }
        finally
        {
            Cleanup(dir);
        }
    }

    [Fact]
    public async Task A_rebuild_that_dies_between_statements_leaves_the_old_generation_answering()
    {
        var (db, dir, events) = await BuildAsync();
        try
        {
            var before = await SnapshotAsync(db);
            var siteDays = Days.SelectMany(d => new[] { new SiteDay(Merchant, SiteA, d), new SiteDay(Merchant, SiteB, d) }).ToList();

            // Dies just before the activation: everything is written under the new generation,
            // nothing of it is visible, and the numbers are the old ones.
            var failing = new FailingStore(engine.Store, $"INSERT INTO {db}.generations");
            var rebuilder = new SiteDayRebuilder(failing, db, new Generations(failing, db), new ProcessingLogic(engine.Enrichment));
            await Assert.ThrowsAsync<InjectedFailure>(() => rebuilder.RebuildAsync(siteDays, ProcessingLogic.Current, dryRun: false, _ => { }, Ct));
            var dead = await SnapshotAsync(db);
            Assert.Equal(before.Tables, dead.Tables);
            Assert.Equal([0UL], dead.ActiveGenerations.Values.Distinct());
            Assert.True(dead.StoredGenerations.Values.All(g => g.Count == 2), "the dead rebuild's rows are there, invisible");

            // Dies after the activation, in the first DELETE: the new numbers (equal) answer, the
            // old rows are left over.
            failing = new FailingStore(engine.Store, $"DELETE FROM {db}.");
            rebuilder = new SiteDayRebuilder(failing, db, new Generations(failing, db), new ProcessingLogic(engine.Enrichment));
            await Assert.ThrowsAsync<InjectedFailure>(() => rebuilder.RebuildAsync(siteDays, ProcessingLogic.Current, dryRun: false, _ => { }, Ct));
            var activated = await SnapshotAsync(db);
            Assert.Equal(before.Tables, activated.Tables);
            Assert.DoesNotContain(0UL, activated.ActiveGenerations.Values);

            // A rebuild that completes, reading pages of 37 rows (page boundaries inside and
            // between site-days), cleans up what both left behind.
            rebuilder = new SiteDayRebuilder(engine.Store, db, new Generations(engine.Store, db), new ProcessingLogic(engine.Enrichment)) { PageRows = 37 };
            var results = await rebuilder.RebuildAsync(siteDays, ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
            Assert.Equal(siteDays, results.Select(r => r.SiteDay));
            Assert.All(results, r => Assert.Equal(events.Count(e => e.Event.SiteId == r.SiteDay.SiteId && e.Day == r.SiteDay.Day), r.Result.Events));
            await AssertRebuiltExactlyAsync(db, before, events);
        }
        finally
        {
            Cleanup(dir);
        }
    }

    // Pages overlap (the next one is read while this one is derived, a page's insert runs while
    // the next one is derived), so a failing statement meets another one still running: the
    // rebuild must end with that failure only after its other statements ended (a page's insert
    // reads rows whose memory is returned as the rebuild returns), leave the old numbers
    // answering, and a later rebuild must be exact. Reads or inserts are slowed by 300 ms so the
    // other statement is surely still running when the failure surfaces.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_failing_page_statement_ends_the_rebuild_only_after_its_other_running_statement(bool insertFails)
    {
        var (db, dir, events) = await BuildAsync();
        try
        {
            var before = await SnapshotAsync(db);
            var siteDays = Days.SelectMany(d => new[] { new SiteDay(Merchant, SiteA, d), new SiteDay(Merchant, SiteB, d) }).ToList();
            // The second page's insert fails while the third page is read, or the third page's read
            // fails while the second page is inserted.
            var store = insertFails
                ? new PipelineProbeStore(engine.Store, $"{db}.events_enriched", slowReads: true, failingInsert: 2, failingRead: 0)
                : new PipelineProbeStore(engine.Store, $"{db}.events_enriched", slowReads: false, failingInsert: 0, failingRead: 3);
            var rebuilder = new SiteDayRebuilder(store, db, new Generations(store, db), new ProcessingLogic(engine.Enrichment)) { PageRows = 37 };
            Assert.True(events.Count > 4 * 37, "enough events for four pages");
            await Assert.ThrowsAsync<InjectedFailure>(() => rebuilder.RebuildAsync(siteDays, ProcessingLogic.Current, dryRun: false, _ => { }, Ct));
            Assert.Equal(0, store.Running);
            Assert.True(store.MostRunning >= 2, "a read and an insert ran at once (else this test proves nothing)");
            Assert.False(store.InsertRowsChanged, "an insert's rows changed while it ran");
            Assert.Empty(await engine.Store.QueryRowsAsync($"SELECT generation FROM {db}.generations WHERE merchant_id = {Merchant}", Ct));

            // A rebuild that completes deletes the dead one's pages and rebuilds exactly.
            rebuilder = new SiteDayRebuilder(engine.Store, db, new Generations(engine.Store, db), new ProcessingLogic(engine.Enrichment)) { PageRows = 37 };
            await rebuilder.RebuildAsync(siteDays, ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
            await AssertRebuiltExactlyAsync(db, before, events);
        }
        finally
        {
            Cleanup(dir);
        }
    }

    /// <summary>The real store with page reads (RowBinary queries) or the RowBinary inserts into one
    /// table 300 ms slower, failing the Nth insert into that table or the Nth read (0: none) after
    /// 50 ms. Counts the calls running and the most at once, and checks that each insert's rows are
    /// the same bytes when it ends as when it started.</summary>
    private sealed class PipelineProbeStore(IColumnStore inner, string table, bool slowReads, int failingInsert, int failingRead) : DelegatingColumnStore(inner)
    {
        private int _running, _mostRunning, _inserts, _reads;
        public int Running => Volatile.Read(ref _running);
        public int MostRunning => Volatile.Read(ref _mostRunning);
        public bool InsertRowsChanged { get; private set; }

        public override Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default) =>
            Tracked(async () =>
            {
                bool fails = Interlocked.Increment(ref _reads) == failingRead;
                await Task.Delay(fails ? 50 : slowReads ? 300 : 0, cancellationToken);
                if (fails) throw new InjectedFailure(sql);
                return await Inner.QueryRowBinaryAsync(sql, read, cancellationToken);
            });

        public override Task<long> InsertRowBinaryAsync(string into, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary,
            string? deduplicationToken = null, CancellationToken cancellationToken = default) =>
            Tracked(async () =>
            {
                if (into != table) return await Inner.InsertRowBinaryAsync(into, columnsWithTypes, rowBinary, deduplicationToken, cancellationToken);
                bool fails = Interlocked.Increment(ref _inserts) == failingInsert;
                byte[] sent = rowBinary.ToArray();
                await Task.Delay(fails ? 50 : slowReads ? 0 : 300, cancellationToken);
                if (!rowBinary.Span.SequenceEqual(sent)) InsertRowsChanged = true;
                if (fails) throw new InjectedFailure("INSERT INTO " + into);
                return await Inner.InsertRowBinaryAsync(into, columnsWithTypes, sent, deduplicationToken, cancellationToken);
            });

        private async Task<T> Tracked<T>(Func<Task<T>> call)
        {
            int running = Interlocked.Increment(ref _running);
            for (int most = Volatile.Read(ref _mostRunning); running > most; most = Volatile.Read(ref _mostRunning))
                Interlocked.CompareExchange(ref _mostRunning, running, most);
            try { return await call(); }
            finally { Interlocked.Decrement(ref _running); }
        }
    }

    /// <summary>Readers see what they saw before, the generator's numbers, and only the active
    /// generations have rows left once the engine has applied the DELETEs (a job leaves them to
    /// its background pool): the old ones were deleted, nothing else was.</summary>
    private async Task AssertRebuiltExactlyAsync(string db, Snapshot before, List<Generated> events)
    {
        await engine.WaitForMutationsAsync(db, Ct);
        var after = await SnapshotAsync(db);
        Assert.Equal(before.Tables, after.Tables);
        CheckAgainstGenerator(after, events);
        Assert.Equal(OnlyActive(after), Describe(after.StoredGenerations));
    }

    private static List<string> Describe(Dictionary<(ulong Site, DateOnly Day), List<ulong>> generations) =>
        [.. generations.OrderBy(g => g.Key).Select(g => $"{g.Key.Site} {g.Key.Day:yyyy-MM-dd}: {string.Join(",", g.Value.Order())}")];

    /// <summary>Each site-day with rows of its active generation only.</summary>
    private static List<string> OnlyActive(Snapshot s) => Describe(s.ActiveGenerations.ToDictionary(g => g.Key, g => new List<ulong> { g.Value }));

    /// <summary>What readers see (each site-day's active generation, summed per key, generation
    /// left out), the active generation of each site-day, and the generations with rows stored.</summary>
    private sealed record Snapshot(Dictionary<string, List<string>> Tables, Dictionary<(ulong Site, DateOnly Day), ulong> ActiveGenerations,
        Dictionary<(ulong Site, DateOnly Day), List<ulong>> StoredGenerations)
    {
        /// <summary>rollup_day per site-day: events, visit starts, bots, visitors.</summary>
        public Dictionary<(ulong Site, DateOnly Day), (long Events, long Visits, long Bots, long Visitors)> Days { get; init; } = [];
    }

    private async Task<Snapshot> SnapshotAsync(string db)
    {
        string active = $"(SELECT site_id, day, argMax(generation, activated_at) AS g FROM {db}.generations WHERE merchant_id = {Merchant} GROUP BY site_id, day)";
        async Task<List<string>> Rows(string sql) =>
            [.. (await engine.Store.QueryRowsAsync(sql, Ct)).Select(r => string.Join(" | ", r.Select(c => c.ToString())))];
        string Visible(string table, string time) =>
            $"FROM {db}.{table} AS t LEFT JOIN {active} AS a ON t.site_id = a.site_id AND toDate(t.{time}) = a.day WHERE t.merchant_id = {Merchant} AND t.generation = a.g";

        // Which generation and which round wrote a row (write_version: 0 when rebuilt) are not its content.
        var enrichedColumns = ClickHouseSql.ColumnNames(DerivedRows.EnrichedColumns).Where(c => c is not ("generation" or "write_version"))
            .Select(c => c == "event_id" ? "hex(t.event_id)" : "t." + c);
        var tables = new Dictionary<string, List<string>>
        {
            ["events_enriched"] = await Rows($"SELECT {string.Join(", ", enrichedColumns)} {Visible("events_enriched", "received_at")} ORDER BY t.site_id, t.received_at, t.event_id"),
        };
        foreach (var table in new[] { "rollup_minute", "rollup_hour", "rollup_day" })
        {
            tables[table] = await Rows($"SELECT t.site_id, toString(t.bucket) AS b, t.name, sum(t.events), sum(t.visit_starts), sum(t.revenue_micros), sum(t.bots), uniqMerge(t.visitors) " +
                $"{Visible(table, "bucket")} GROUP BY t.site_id, b, t.name ORDER BY t.site_id, b, t.name");
        }
        tables["rollup_dims_day"] = await Rows($"SELECT t.site_id, t.dimension, toString(t.bucket) AS b, t.value, sum(t.events), sum(t.pageviews), sum(t.visit_starts), sum(t.bots), uniqExactMerge(t.visitors) " +
            $"{Visible("rollup_dims_day", "bucket")} GROUP BY t.site_id, t.dimension, b, t.value ORDER BY t.site_id, t.dimension, b, t.value");

        var activeGenerations = new Dictionary<(ulong, DateOnly), ulong>();
        var stored = new Dictionary<(ulong, DateOnly), List<ulong>>();
        foreach (var site in new[] { SiteA, SiteB })
        {
            foreach (var day in Days)
            {
                activeGenerations[(site, day)] = 0;
                stored[(site, day)] = [];
            }
        }
        foreach (var r in await engine.Store.QueryRowsAsync($"SELECT site_id, toString(day), g FROM {active}", Ct))
            activeGenerations[(r[0].GetUInt64(), DateOnly.Parse(r[1].GetString()!, CultureInfo.InvariantCulture))] = r[2].GetUInt64();
        // Every table's generations per site-day: a generation counts as stored only when every
        // table has rows of it (a half-deleted one would show as a mismatch between tables).
        string union = string.Join(" UNION ALL ", new[] { ("events_enriched", "received_at"), ("rollup_minute", "bucket"), ("rollup_hour", "bucket"), ("rollup_day", "bucket"), ("rollup_dims_day", "bucket") }
            .Select(t => $"SELECT '{t.Item1}' AS tbl, site_id, toString(toDate({t.Item2})) AS d, generation FROM {db}.{t.Item1} WHERE merchant_id = {Merchant} GROUP BY site_id, d, generation"));
        foreach (var r in await engine.Store.QueryRowsAsync($"SELECT site_id, d, generation, uniqExact(tbl) FROM ({union}) GROUP BY site_id, d, generation ORDER BY generation", Ct))
        {
            Assert.Equal(5, r[3].GetInt64());
            stored[(r[0].GetUInt64(), DateOnly.Parse(r[1].GetString()!, CultureInfo.InvariantCulture))].Add(r[2].GetUInt64());
        }

        var days = new Dictionary<(ulong, DateOnly), (long, long, long, long)>();
        foreach (var r in await engine.Store.QueryRowsAsync($"SELECT t.site_id, toString(t.bucket), sum(t.events), sum(t.visit_starts), sum(t.bots), uniqMerge(t.visitors) {Visible("rollup_day", "bucket")} GROUP BY t.site_id, t.bucket", Ct))
            days[(r[0].GetUInt64(), DateOnly.Parse(r[1].GetString()!, CultureInfo.InvariantCulture))] = (r[2].GetInt64(), r[3].GetInt64(), r[4].GetInt64(), r[5].GetInt64());
        return new Snapshot(tables, activeGenerations, stored) { Days = days };
    }

    private static void CheckAgainstGenerator(Snapshot snapshot, List<Generated> events)
    {
        var expected = events.GroupBy(e => (e.Event.SiteId, e.Day)).ToDictionary(g => g.Key, g =>
        (
            (long)g.Count(e => !e.IsBot),
            (long)g.Where(e => !e.IsBot).Select(e => e.Visit).Distinct().Count(),
            (long)g.Count(e => e.IsBot),
            (long)g.Where(e => !e.IsBot).Select(e => e.Event.VisitorId).Distinct().Count()
        ));
        Assert.Equal(expected.OrderBy(e => e.Key), snapshot.Days.OrderBy(e => e.Key));
        Assert.Equal(events.Count, snapshot.Tables["events_enriched"].Count);
    }

    /// <summary>The generated events stored by the real Rollup in rounds of 200 records (a
    /// site-day's rows spread over many parts, as after a day of live traffic).</summary>
    private async Task<(string Db, string Dir, List<Generated> Events)> BuildAsync()
    {
        var events = Generate();
        var (db, dir) = await StoreAsync(events);
        return (db, dir, events);
    }

    private async Task<(string Db, string Dir)> StoreAsync(List<Generated> events)
    {
        string db = "reprocstep_" + Guid.NewGuid().ToString("N")[..12];
        string dir = Path.Combine(Path.GetTempPath(), db);
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        await using (var log = LocalLog.Open(Path.Combine(dir, "log")))
        {
            foreach (var chunk in events.Chunk(97)) await LogRecords.AppendAsync(log, Merchant, chunk.Select(g => g.Event), Ct);
        }
        var status = await RunWorkerUntilAsync(db, dir, new ReprocessQueue(Path.Combine(dir, "jobs-build")), 200, null, events.Count);
        Assert.Equal(events.Count, status.EventsStored);
        return (db, dir);
    }

    /// <summary>Runs the real Rollup on the test's log until <paramref name="done"/> (or the
    /// events stored reach <paramref name="events"/>), 90 s at most, and stops it.</summary>
    private async Task<RollupStatus> RunWorkerUntilAsync(string db, string dir, ReprocessQueue queue, int roundRecords, Func<bool>? done, long events = 0)
    {
        await using var log = LocalLog.Open(Path.Combine(dir, "log"));
        var status = new RollupStatus();
        var options = new RollupOptions
        {
            Database = db, QuarantineDirectory = Path.Combine(dir, "quarantine"), MaxBatchRecords = roundRecords,
            MaxWait = TimeSpan.FromMilliseconds(20), MinRoundInterval = TimeSpan.Zero,
        };
        using var worker = new RollupWorker(log, engine.Store, options, new ProcessingLogic(engine.Enrichment), status, queue, NullLogger<RollupWorker>.Instance);
        await worker.StartAsync(Ct);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (!(done?.Invoke() ?? status.EventsStored >= events) && DateTime.UtcNow < deadline) await Task.Delay(50, Ct);
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
        }
        return status;
    }

    /// <summary>
    /// Three UTC days of two sites: per day 40 people in 1-3 visits at least 40 minutes apart,
    /// each visit 1-6 events under 10 minutes apart starting with a pageview, some with
    /// properties and revenue; a bot crawling. Visitor ids are per day (the real salt rotates at
    /// UTC midnight). Sorted by time: the log's order is receive order.
    /// </summary>
    private static List<Generated> Generate()
    {
        var random = new Random(20261201);
        var events = new List<Generated>();
        int visitNo = 0;
        foreach (ulong site in new[] { SiteA, SiteB })
        {
            foreach (var day in Enumerable.Range(0, 3))
            {
                for (int person = 0; person < 40; person++)
                {
                    ulong visitor = (ulong)random.NextInt64(1, long.MaxValue);
                    long t = Day0.AddDays(day).ToUnixTimeMilliseconds() + random.Next(0, 7200) * 1000L;
                    for (int v = random.Next(1, 4); v > 0; v--, visitNo++)
                    {
                        for (int i = random.Next(1, 7); i > 0; i--)
                        {
                            string name = i == 1 || random.Next(3) > 0 ? "pageview" : "signup";
                            var e = Event(site, visitor, t, name, $"https://shop{site}.example/p/{random.Next(8)}", Browser);
                            if (name == "signup")
                            {
                                e.Props.Add(new StoredProperty { Key = "plan", Value = random.Next(2) == 0 ? "pro" : "free" });
                                e.RevenueMicros = random.Next(1, 100) * 1_000_000L;
                                e.Currency = "EUR";
                            }
                            events.Add(new Generated(e, false, visitNo));
                            t += random.Next(5, 600) * 1000L;
                        }
                        t += random.Next(40, 120) * 60_000L;
                    }
                }
                long crawl = Day0.AddDays(day).ToUnixTimeMilliseconds() + 3_600_000;
                for (int i = 0; i < 15; i++)
                    events.Add(new Generated(Event(site, 424242, crawl + i * 1000, "pageview", $"https://shop{site}.example/p/{i}", Bot), true, -1));
            }
        }
        return [.. events.OrderBy(g => g.Event.ReceivedMs)];
    }

    private static StoredEvent Event(ulong site, ulong visitor, long receivedMs, string name, string url, string userAgent) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        MerchantId = Merchant,
        SiteId = site,
        ReceivedMs = receivedMs,
        ClientTimeMs = receivedMs,
        Name = name,
        Url = url,
        Referrer = "",
        ScreenWidth = 1280,
        VisitorId = visitor,
        IpPrefix = "81.2.69.0/24",
        UserAgent = userAgent,
    };

    [Fact]
    public async Task A_call_of_the_most_site_days_it_takes_rebuilds_each_of_them()
    {
        // 25 sites x 20 days, three pageviews of one visitor each: 500 site-days in one call.
        var events = new List<Generated>();
        for (int day = 0; day < 20; day++)
        {
            for (ulong site = 1; site <= 25; site++)
            {
                long t = Day0.AddDays(day).ToUnixTimeMilliseconds() + (long)site * 60_000;
                for (int i = 0; i < 3; i++)
                    events.Add(new Generated(Event(site, site * 1000 + (ulong)day, t + i * 10_000, "pageview", $"https://s{site}.example/{i}", Browser), false, day * 100 + (int)site));
            }
        }
        var (db, dir) = await StoreAsync(events);
        try
        {
            var siteDays = events.Select(e => new SiteDay(Merchant, e.Event.SiteId, e.Day)).Distinct().ToList();
            Assert.Equal(SiteDayRebuilder.MaxSiteDays, siteDays.Count);
            var rebuilder = new SiteDayRebuilder(engine.Store, db, new Generations(engine.Store, db), new ProcessingLogic(engine.Enrichment));
            var results = await rebuilder.RebuildAsync(siteDays, ProcessingLogic.Current, dryRun: false, _ => { }, Ct);
            Assert.All(results, r => Assert.Equal(3, r.Result.Events));
            Assert.All(results, r => Assert.Equal(1, r.Result.RowsWritten["rollup_day"]));
            var generation = Assert.Single(results.Select(r => r.Generation).Distinct());
            var rows = await engine.Store.QueryRowsAsync(
                $"SELECT countIf(generation = {generation}), countIf(generation != {generation}) FROM {db}.events_enriched WHERE merchant_id = {Merchant}", Ct);
            Assert.Equal(events.Count, rows[0][0].GetInt64());
            Assert.Equal(0, rows[0][1].GetInt64());
            var active = await engine.Store.QueryRowsAsync(
                $"SELECT count(), countIf(g = {generation}) FROM (SELECT site_id, day, argMax(generation, activated_at) AS g FROM {db}.generations WHERE merchant_id = {Merchant} GROUP BY site_id, day)", Ct);
            Assert.Equal(SiteDayRebuilder.MaxSiteDays, active[0][1].GetInt64());
            Assert.Equal(SiteDayRebuilder.MaxSiteDays, active[0][0].GetInt64());
        }
        finally
        {
            Cleanup(dir);
        }
    }

    [Fact]
    public void A_step_spans_at_most_as_many_days_as_one_insert_may_touch_partitions()
    {
        // One site over 150 days, one event each: a round's worth of events would take them all,
        // but an insert may touch only 100 day partitions, so the job takes two steps.
        var oneSite = Enumerable.Range(0, 150).Select(d => new ReprocessUnit { SiteId = 1, Day = Days[0].AddDays(d), RawEvents = 1 }).ToList();
        var first = Step(oneSite);
        Assert.Equal(oneSite.Take(100), first);
        Assert.Equal(oneSite.Skip(100), Step(oneSite.Skip(100)));

        // Five sites over the same 100 days (in plan order: site, then day) share those partitions:
        // one step of all 500 site-days, the most a step takes.
        var fiveSites = (from site in Enumerable.Range(1, 5) from d in Enumerable.Range(0, 100)
                         select new ReprocessUnit { SiteId = site, Day = Days[0].AddDays(d), RawEvents = 1 }).ToList();
        Assert.Equal(fiveSites, Step(fiveSites));
        Assert.Equal(100, fiveSites.Select(u => u.Day).Distinct().Count());
        Assert.Equal(SiteDayRebuilder.MaxSiteDays, fiveSites.Count);

        // A day already in the step never ends it: the 101st distinct day does.
        var back = oneSite.Take(100).Append(new ReprocessUnit { SiteId = 2, Day = Days[0], RawEvents = 1 }).Append(oneSite[100]).ToList();
        Assert.Equal(back.Take(101), Step(back));

        static List<ReprocessUnit> Step(IEnumerable<ReprocessUnit> pending) => ReprocessSteps.Next(pending, u => u.RawEvents, u => u.Day, maxEvents: 50_000);
    }

    private static void Cleanup(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    private sealed class InjectedFailure(string statement) : Exception($"injected failure before: {statement[..Math.Min(80, statement.Length)]}");

    /// <summary>The real store, failing the first statement that starts with a given prefix (and
    /// every later one: the process is "dead"), before it reaches the engine.</summary>
    private sealed class FailingStore(IColumnStore inner, string prefix) : DelegatingColumnStore(inner)
    {
        private bool _dead;

        protected override void Starting(string statement)
        {
            if (_dead || statement.StartsWith(prefix, StringComparison.Ordinal))
            {
                _dead = true;
                throw new InjectedFailure(statement);
            }
        }
    }
}
