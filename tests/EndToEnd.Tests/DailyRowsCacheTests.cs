using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.QueryService.Query;
using Analytics.Rollup;
using Analytics.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The dimension rollup's questions add up numbers kept per past day (DailyRowsCache). Kept numbers that
/// outlived a write of their day, or an activation, would answer stale: these tests write the
/// day again in every way the product does and check that the answer follows. (The answers
/// themselves are checked against the scan and against LINQ in PreAggregateTests.)
/// </summary>
public class DailyRowsCacheTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly DateTimeOffset Day = new(2026, 2, 10, 0, 0, 0, TimeSpan.Zero);
    private const long Merchant = 5, Site = 50;
    private static readonly (ulong, ulong, DateOnly)[] SiteDay = [(Merchant, Site, DateOnly.FromDateTime(Day.UtcDateTime))];

    /// <summary>Holds the per-day statement's answer once it has read the rows, as a slow
    /// answer would be held: what it read may be stale by the time it is used.</summary>
    private sealed class HeldStore(IColumnStore inner) : Analytics.Tests.Shared.DelegatingColumnStore(inner)
    {
        private volatile TaskCompletionSource? _hold;
        private volatile TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Holds the next per-day statement; returns when it has read, and the release.</summary>
        public async Task<Action> HoldNextAsync(Func<Task> asking)
        {
            var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _hold = hold;
            _ = asking();
            await _reached.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
            return () => { _hold = null; hold.SetResult(); };
        }

        public override async Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken ct = default)
        {
            var answer = await base.QueryRowBinaryAsync(sql, read, ct);
            if (_hold is { } hold && sql.Contains("rollup_dims_day", StringComparison.Ordinal))
            {
                _reached.TrySetResult();
                await hold.Task;
            }
            return answer;
        }
    }

    /// <summary>
    /// The engine on its own, rows written here: a day's numbers are kept once read, and kept
    /// numbers are used (a write behind the registry's back is not seen, which shows they are).
    /// An announced write makes the day be read again, both while it runs (and then not kept) and
    /// after it ended; a write after the day's statement read its rows, before its answer is used,
    /// keeps that answer from being kept; an activation of another generation is answered from
    /// that generation, also when it happens while the statement's answer is held.
    /// </summary>
    [Fact]
    public async Task A_kept_day_is_read_again_after_every_write_or_activation_of_it()
    {
        string db = "dailyrows_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        // Written as Rollup writes: under the version of the round's announcement (write_version).
        async Task RowsAsync(string page, int firstVisitor, int visitors, long version, ulong generation = 0) => await engine.Store.ExecuteAsync(
            $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation, write_version) " +
            $"SELECT {Merchant}, {Site}, 'page', toDate('2026-02-10'), '{page}', {visitors}, {visitors}, 0, 0, " +
            $"arrayReduce('uniqExactState', arrayMap(x -> toUInt64(x), range({firstVisitor}, {firstVisitor + visitors}))), {generation}, {version}", Ct);
        var writes = new SiteDayWrites();
        var activations = new GenerationActivations();
        var held = new HeldStore(engine.Store);
        // Rollup rows written here, without their events: a site not read as a large one, whose
        // days come from those rows alone (a large one's today from its events, KeptEventValues).
        var keeping = new QueryEngine(held, db) { LargeSiteFromVisits = long.MaxValue, GenerationActivations = activations, SiteDayWrites = writes };
        var daily = keeping.DailyRows!;
        await RowsAsync("/a", 1, 3, 0);
        await RowsAsync("/b", 1, 2, 0);

        Assert.Equal(["/a 3 3", "/b 2 2"], await TopPagesAsync(keeping));
        Assert.Equal((0, 1), (daily.DaysKept, daily.DaysRead));
        Assert.Equal(["/a 3 3", "/b 2 2"], await TopPagesAsync(keeping));
        Assert.Equal((1, 1), (daily.DaysKept, daily.DaysRead));

        // Not announced (not how the product writes; its version is another site-day's round):
        // the kept numbers answer.
        long unannounced = writes.Begin(db, [(Merchant, Site + 7, DateOnly.FromDateTime(Day.UtcDateTime))]);
        writes.End(db, [(Merchant, Site + 7, DateOnly.FromDateTime(Day.UtcDateTime))]);
        await RowsAsync("/a", 4, 2, unannounced);
        Assert.Equal(["/a 3 3", "/b 2 2"], await TopPagesAsync(keeping));

        // Announced: read while it runs, not kept then, and read again once it ended (a day of a
        // few values is read whole; A_busy_days_rounds… has days brought up to date).
        long round = writes.Begin(db, SiteDay);
        await RowsAsync("/c", 1, 1, round);
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 1 1"], await TopPagesAsync(keeping));
        await RowsAsync("/c", 2, 1, round);
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2"], await TopPagesAsync(keeping));
        writes.End(db, SiteDay);
        long read = daily.DaysRead;
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2"], await TopPagesAsync(keeping));
        Assert.Equal(read + 1, daily.DaysRead);
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2"], await TopPagesAsync(keeping));
        Assert.Equal(read + 1, daily.DaysRead); // kept this time

        // Another site-day's write leaves this day's numbers kept.
        writes.Begin(db, [(Merchant, Site, DateOnly.FromDateTime(Day.UtcDateTime.AddDays(1)))]);
        writes.Begin(db, [(Merchant, Site + 1, DateOnly.FromDateTime(Day.UtcDateTime))]);
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2"], await TopPagesAsync(keeping));
        Assert.Equal(read + 1, daily.DaysRead);

        // A write that begins and ends after the day's statement read its rows, before its
        // answer is used: that answer (without the write) is not kept.
        writes.Begin(db, SiteDay);
        writes.End(db, SiteDay); // the day is read again by the next question
        Task<string[]>? stale = null;
        var release = await held.HoldNextAsync(() => stale = TopPagesAsync(keeping));
        round = writes.Begin(db, SiteDay);
        await RowsAsync("/d", 1, 1, round);
        writes.End(db, SiteDay);
        release();
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2"], await stale!.WaitAsync(TimeSpan.FromSeconds(30), Ct));
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2", "/d 1 1"], await TopPagesAsync(keeping));
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2", "/d 1 1"], await TopPagesAsync(keeping));

        // A reprocessed day: another generation's rows, activated through the counted path.
        await RowsAsync("/z", 1, 7, 0, generation: 9);
        Assert.Equal(["/a 5 5", "/b 2 2", "/c 2 2", "/d 1 1"], await TopPagesAsync(keeping));
        await new Generations(engine.Store, db, activations).ActivateAsync(Merchant, Site, DateOnly.FromDateTime(Day.UtcDateTime), 9, ProcessingLogic.Current, 7, Ct);
        Assert.Equal(["/z 7 7"], await TopPagesAsync(keeping));
        Assert.Equal(["/z 7 7"], await TopPagesAsync(keeping));

        // Another activation while a statement's answer is held, and the superseded rows deleted
        // as reprocessing does: the held answer (generation 9's rows) is not used, the question
        // is asked again and answers from generation 11.
        await RowsAsync("/y", 1, 4, 0, generation: 11);
        writes.Begin(db, SiteDay);
        writes.End(db, SiteDay);
        release = await held.HoldNextAsync(() => stale = TopPagesAsync(keeping));
        await new Generations(engine.Store, db, activations).ActivateAsync(Merchant, Site, DateOnly.FromDateTime(Day.UtcDateTime), 11, ProcessingLogic.Current, 4, Ct);
        await engine.Store.ExecuteAsync($"DELETE FROM {db}.rollup_dims_day WHERE merchant_id = {Merchant} AND site_id = {Site} AND generation != 11", Ct);
        release();
        Assert.Equal(["/y 4 4"], await stale!.WaitAsync(TimeSpan.FromSeconds(30), Ct));
        Assert.Equal(["/y 4 4"], await TopPagesAsync(keeping));
    }

    /// <summary>
    /// Today is kept like any other day until a write of it (Rollup announces each round's
    /// site-days) moves its version; then it is read again, the other days still kept. A range
    /// longer than DailyRowsCache.MaxDays is asked the usual way: the same numbers either way.
    /// </summary>
    [Fact]
    public async Task Today_is_kept_until_written_and_long_ranges_are_asked_as_before()
    {
        string db = "dailytoday_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        await engine.Store.ExecuteAsync(
            $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation) " +
            $"SELECT {Merchant}, {Site}, 'page', toDate('2026-02-10') - number % 2, '/a', 2, 2, 0, 0, arrayReduce('uniqExactState', [toUInt64(number), toUInt64(number) + 100]), 0 FROM numbers(2)", Ct);
        var writes = new SiteDayWrites();
        // Rollup rows written here, without their events: a site not read as a large one (above).
        var keeping = new QueryEngine(engine.Store, db)
        {
            LargeSiteFromVisits = long.MaxValue, GenerationActivations = new GenerationActivations(), SiteDayWrites = writes,
            Clock = new ManualClock(Day.AddHours(12)),
        };
        var daily = keeping.DailyRows!;
        // Two days, the second of them today, 2 visitors each.
        Assert.Equal(["/a 4 4"], await TopPagesAsync(keeping, Day.AddDays(-1), Day.AddDays(1)));
        Assert.Equal(["/a 4 4"], await TopPagesAsync(keeping, Day.AddDays(-1), Day.AddDays(1)));
        Assert.Equal((2, 2), (daily.DaysKept, daily.DaysRead)); // both read once, then kept

        // A round of today's events: 2 more visitors with a pageview each, under the round's version.
        long round = writes.Begin(db, SiteDay);
        await engine.Store.ExecuteAsync(
            $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation, write_version) " +
            $"SELECT {Merchant}, {Site}, 'page', toDate('2026-02-10'), '/a', 2, 2, 0, 0, arrayReduce('uniqExactState', [toUInt64(500), toUInt64(501)]), 0, {round}", Ct);
        writes.End(db, SiteDay);
        Assert.Equal(["/a 6 6"], await TopPagesAsync(keeping, Day.AddDays(-1), Day.AddDays(1)));
        Assert.Equal((3, 3), (daily.DaysKept, daily.DaysRead)); // yesterday kept, today read again
        Assert.Equal(["/a 6 6"], await TopPagesAsync(keeping, Day.AddDays(1 - Analytics.QueryService.PreAggregates.DailyRowsCache.MaxDays - 1), Day.AddDays(1)));
        Assert.Equal((3, 3), (daily.DaysKept, daily.DaysRead));
    }

    /// <summary>
    /// Through the host, its Rollup writing: a day's top pages and entry pages are kept, today
    /// and once past; events of that day stored later (a late round) are in the next answer,
    /// because Rollup announced the day.
    /// </summary>
    [Fact]
    public async Task Events_Rollup_stores_for_a_kept_day_are_in_the_next_answer()
    {
        var clock = new ManualClock(Day.AddHours(9));
        await using var host = await TestHost.StartAsync(engine, clock: clock);
        var queries = host.App.Services.GetRequiredService<QueryEngine>();
        queries.LargeSiteFromVisits = 0;
        Assert.NotNull(queries.DailyRows);
        async Task SendAsync(params string[] pages)
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            foreach (var page in pages) batch.Events.Add(Wire.Pageview(page));
            using var socket = await host.ConnectAsync();
            Assert.Equal((uint)pages.Length, (await Wire.SendAsync(socket, batch)).Accepted);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        var question = new
        {
            site_id = host.Site.PublicId, date_range = new[] { "2026-02-10", "2026-02-10" }, timezone = "UTC",
            metrics = new[] { "visitors", "pageviews" }, dimensions = new[] { "page" },
        };

        // The aggregate counts the events once the time rollups have them; the round's last
        // insert (event_ids) and its announcement's end follow.
        var writes = host.App.Services.GetRequiredService<SiteDayWrites>();
        async Task StoredAsync()
        {
            var day = DateOnly.FromDateTime(Day.UtcDateTime);
            for (var waited = System.Diagnostics.Stopwatch.StartNew(); !writes.TryQuiet(host.Database, (ulong)host.Site.MerchantId, (ulong)host.Site.SiteId, day, out _); )
            {
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "Rollup's round never ended");
                await Task.Delay(20, Ct);
            }
        }

        // And the visit rollup's: visitors and visits per entry page.
        var entries = new
        {
            site_id = host.Site.PublicId, date_range = new[] { "2026-02-10", "2026-02-10" }, timezone = "UTC",
            metrics = new[] { "visitors", "visits" }, dimensions = new[] { "entry_page" },
        };

        await SendAsync("/p0", "/p0", "/p1");
        await host.WaitForAggregateAsync(t => t["pageviews"] == 3);
        await StoredAsync();
        // Today, between Rollup's rounds: kept.
        Assert.Equal(["/p0 1 2", "/p1 1 1"], await AskAsync(host, question));
        long keptToday = queries.DailyRows!.DaysKept;
        Assert.Equal(["/p0 1 2", "/p1 1 1"], await AskAsync(host, question));
        Assert.Equal(keptToday + 1, queries.DailyRows.DaysKept);
        clock.Now = Day.AddDays(1).AddHours(9); // the day is past
        Assert.Equal(["/p0 1 2", "/p1 1 1"], await AskAsync(host, question));
        Assert.Equal(["/p0 1 2", "/p1 1 1"], await AskAsync(host, question));
        Assert.True(queries.DailyRows!.DaysKept >= 1, "the second answer adds up the kept day");
        Assert.Equal(["/p0 1 1"], await AskAsync(host, entries));
        long kept = queries.DailyRows.DaysKept;
        Assert.Equal(["/p0 1 1"], await AskAsync(host, entries));
        Assert.Equal(kept + 1, queries.DailyRows.DaysKept);

        // Late events of the same day (the clock stamps them, so it goes back for them).
        clock.Now = Day.AddHours(10);
        await SendAsync("/p1", "/p2");
        await host.WaitForAggregateAsync(t => t["pageviews"] == 5);
        await StoredAsync();
        Assert.Equal(["/p0 1 2", "/p1 1 2", "/p2 1 1"], await AskAsync(host, question)); // while it is today
        clock.Now = Day.AddDays(1).AddHours(10);
        Assert.Equal(["/p0 1 2", "/p1 1 2", "/p2 1 1"], await AskAsync(host, question));
        // The same visitor an hour later: a second visit, entering at /p1.
        Assert.Equal(["/p0 1 1", "/p1 1 1"], await AskAsync(host, entries));
    }

    /// <summary>
    /// Past its bound the cache drops the least recently used days until half is left: a day
    /// kept first but used since stays, days not used since go, and what is asked again is read
    /// again with the same numbers.
    /// </summary>
    [Fact]
    public async Task Past_its_bound_the_least_recently_used_days_are_dropped()
    {
        string db = "dailyevict_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        // Five days, two pages a day (3 values kept per day, with the day's own entry).
        await engine.Store.ExecuteAsync(
            $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation) " +
            $"SELECT {Merchant}, {Site}, 'page', toDate('2026-02-10') + intDiv(number, 2), concat('/', toString(number % 2)), 1, 1, 0, 0, " +
            $"arrayReduce('uniqExactState', [toUInt64(number)]), 0 FROM numbers(10)", Ct);
        var activations = new GenerationActivations();
        var daily = new Analytics.QueryService.PreAggregates.DailyRowsCache(db, new SiteDayWrites(), activations, maxValues: 12);
        var first = DateOnly.FromDateTime(Day.UtcDateTime);
        async Task<string> DayAsync(int day)
        {
            var sums = await daily.SumAsync(Merchant, Site, "pages", null, d => d.ToString("MM-dd"), first.AddDays(day), first.AddDays(day + 1),
                new Dictionary<DateOnly, ulong>(), activations.Started, async days => await engine.Store.QueryRowBinaryAsync(
                    $"SELECT bucket, value, toUInt64(uniqExactMerge(visitors)), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0) FROM {db}.rollup_dims_day WHERE bucket IN ({string.Join(", ", days.Select(d => $"'{d:yyyy-MM-dd}'"))}) GROUP BY bucket, value",
                    data => Analytics.QueryService.PreAggregates.PreAggregatePlanner.DayRows(data, 5, c => [.. c]), Ct));
            return string.Join(" ", sums!.OrderBy(s => s.Key.Value, StringComparer.Ordinal).Select(s => $"{s.Key.Bucket}{s.Key.Value}={s.Value.Counts[0]}"));
        }
        for (int d = 0; d < 4; d++) Assert.Equal($"02-{10 + d}/0=1 02-{10 + d}/1=1", await DayAsync(d)); // 12 values: the bound
        Assert.Equal((0, 4), (daily.DaysKept, daily.DaysRead));
        Assert.Equal("02-10/0=1 02-10/1=1", await DayAsync(0)); // used: now the most recent
        Assert.Equal((1, 4), (daily.DaysKept, daily.DaysRead));
        Assert.Equal("02-14/0=1 02-14/1=1", await DayAsync(4)); // 15 > 12: days 1, 2 and 3 go
        Assert.Equal((1, 5), (daily.DaysKept, daily.DaysRead));
        Assert.Equal("02-10/0=1 02-10/1=1", await DayAsync(0));
        Assert.Equal("02-14/0=1 02-14/1=1", await DayAsync(4));
        Assert.Equal((3, 5), (daily.DaysKept, daily.DaysRead));
        Assert.Equal("02-11/0=1 02-11/1=1", await DayAsync(1));
        Assert.Equal("02-13/0=1 02-13/1=1", await DayAsync(3));
        Assert.Equal((3, 7), (daily.DaysKept, daily.DaysRead));
    }

    /// <summary>
    /// A range's kept days are kept added up too (KeptSum): the next answer over the same range
    /// adds only the days it reads to that sum. It is used only while every kept day is the same
    /// (a day written again is read and kept anew, and the sum follows), the same buckets and the
    /// same values; and a day read on every answer (written meanwhile) is added to a copy, never
    /// to the kept sum itself.
    /// </summary>
    [Fact]
    public async Task A_ranges_kept_days_are_kept_added_up_and_follow_every_write()
    {
        string db = "dailysums_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        var first = DateOnly.FromDateTime(Day.UtcDateTime);
        // Three days, visitors 0-9 each: pages /0 and /1 (even and odd visitors), visitor ids of a day its own.
        async Task RowsAsync(int day, int fromVisitor, int visitors) => await engine.Store.ExecuteAsync(
            $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation) " +
            $"SELECT {Merchant}, {Site}, 'page', toDate('{first.AddDays(day):yyyy-MM-dd}'), concat('/', toString(number % 2)), 1, 1, 0, 0, " +
            $"arrayReduce('uniqExactState', [toUInt64(number + {day * 1000})]), 0 FROM numbers({fromVisitor}, {visitors})", Ct);
        for (int d = 0; d < 3; d++) await RowsAsync(d, 0, 10);
        var writes = new SiteDayWrites();
        var activations = new GenerationActivations();
        var daily = new Analytics.QueryService.PreAggregates.DailyRowsCache(db, writes, activations, sumFromValues: 1);
        Func<DateOnly, string> all = _ => "", byDay = d => d.ToString("MM-dd");
        async Task<string> SumAsync(Func<DateOnly, string> bucket, IReadOnlySet<string>? values = null, int days = 3)
        {
            var sums = await daily.SumAsync(Merchant, Site, "pages", values, bucket, first, first.AddDays(days),
                new Dictionary<DateOnly, ulong>(), activations.Started, async days => await engine.Store.QueryRowBinaryAsync(
                    $"SELECT bucket, value, toUInt64(uniqExactMerge(visitors)), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0) FROM {db}.rollup_dims_day " +
                    $"WHERE bucket IN ({string.Join(", ", days.Select(d => $"'{d:yyyy-MM-dd}'"))}) GROUP BY bucket, value",
                    data => Analytics.QueryService.PreAggregates.PreAggregatePlanner.DayRows(data, 5, c => [.. c]), Ct));
            return string.Join(" ", sums!.OrderBy(s => s.Key.Bucket + s.Key.Value, StringComparer.Ordinal).Select(s => $"{s.Key.Bucket}{s.Key.Value}={s.Value.Counts[0]}"));
        }

        Assert.Equal("/0=15 /1=15", await SumAsync(all));
        Assert.Equal("/0=15 /1=15", await SumAsync(all)); // the three days kept: added up once more, then kept so
        Assert.Equal(0, daily.SumsReused);
        Assert.Equal("/0=15 /1=15", await SumAsync(all));
        Assert.Equal(1, daily.SumsReused);

        // Other buckets or values: not that sum.
        Assert.Equal("02-10/0=5 02-10/1=5 02-11/0=5 02-11/1=5 02-12/0=5 02-12/1=5", await SumAsync(byDay));
        Assert.Equal("/1=15", await SumAsync(all, new HashSet<string> { "/1" }));
        Assert.Equal(1, daily.SumsReused);

        // Today (the last day) written on every answer: read each time, added to a copy of the
        // two other days' sum, which stays as it was.
        (ulong, ulong, DateOnly)[] today = [(Merchant, Site, first.AddDays(2))];
        writes.Begin(db, today);
        Assert.Equal("/0=15 /1=15", await SumAsync(all));
        for (int round = 1; round <= 3; round++)
        {
            await RowsAsync(2, 10 * round, 10);
            Assert.Equal($"/0={15 + 5 * round} /1={15 + 5 * round}", await SumAsync(all));
        }
        Assert.Equal(4, daily.SumsReused);
        writes.End(db, today);
        Assert.Equal("/0=30 /1=30", await SumAsync(all)); // today read once more, then kept
        Assert.Equal("/0=30 /1=30", await SumAsync(all));
        Assert.Equal("/0=30 /1=30", await SumAsync(all));
        Assert.Equal(6, daily.SumsReused);

        // A past day written again (announced) and read by another range: kept anew, so the
        // three days kept are not the ones added up before.
        writes.Begin(db, SiteDay);
        await RowsAsync(0, 10, 4);
        writes.End(db, SiteDay);
        Assert.Equal("/0=7 /1=7", await SumAsync(all, days: 1));
        Assert.Equal("/0=32 /1=32", await SumAsync(all));
        Assert.Equal(6, daily.SumsReused);
        Assert.Equal("/0=32 /1=32", await SumAsync(all));
        Assert.Equal(7, daily.SumsReused);

        // A first answer, which reads every day, keeps the sum of all but the last (a busy site's
        // today): the next answer, after a round of that day, adds only that day to it.
        daily = new Analytics.QueryService.PreAggregates.DailyRowsCache(db, writes, activations, sumFromValues: 1);
        Assert.Equal("/0=32 /1=32", await SumAsync(all));
        writes.Begin(db, today);
        await RowsAsync(2, 40, 10);
        writes.End(db, today);
        Assert.Equal("/0=37 /1=37", await SumAsync(all));
        Assert.Equal((4, 1), (daily.DaysRead, daily.SumsReused));
    }

    /// <summary>
    /// A busy site's today, written round after round by Rollup's own statement (each round's
    /// rows under the version of its announcement): after the first read, each answer reads only
    /// the values the rounds since wrote (DaysUpdated, no whole read) and adds them to the last
    /// answer's rows (TodaySumsReused), and is exact every time against LINQ over the events:
    /// rounds bring the same visitor to the same page again (counted once), new visitors to
    /// pages kept, new pages, engagement pings and custom events (no pageview), bots (their
    /// events under bots only); two more questions follow the same rounds, each read whole (few
    /// values a day): the site's totals, and devices (a visit dimension: people's events only).
    /// Asked of a large site, whose today is kept from its events (KeptEventValues: a round's
    /// events read, for each question), and of one that is not (the rollup's rows of the values a
    /// round wrote read).
    /// </summary>
    [Fact]
    public async Task A_busy_days_rounds_are_read_by_the_values_they_wrote_and_answers_stay_exact()
    {
        string db = "dailyround_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        var today = DateOnly.FromDateTime(Day.UtcDateTime);
        var events = new List<(DateOnly Day, int Visitor, string Page, string Name)>();
        var writes = new SiteDayWrites();
        long offset = 0;
        async Task RoundAsync(DateOnly day, IEnumerable<(int Visitor, string Page, string Name)> round)
        {
            var rows = round.Select(e => (Day: day, e.Visitor, e.Page, e.Name)).ToList();
            long from = offset;
            string Values(long version) => string.Join(", ", rows.Select((e, i) =>
                $"({Merchant}, {Site}, '{from + i:D16}', '{e.Day:yyyy-MM-dd} 12:00:00.000', '{e.Name}', '{e.Page}', {e.Visitor}, {e.Visitor}, " +
                $"{(Bot(e.Visitor) || events.Any(o => o.Day == e.Day && o.Visitor == e.Visitor) || rows.Take(i).Any(o => o.Visitor == e.Visitor) ? 0 : 1)}, " +
                $"{(Bot(e.Visitor) ? 1 : 0)}, '{Device(e.Visitor)}', '{Device(e.Visitor)}', 'test', {from + i}, {version})"));
            offset += rows.Count;
            await StoreRoundAsync(writes, db, day, "visit_start, is_bot, device, visit_device", Values, version => DerivedRows.DimensionRollUpStatement(db,
                $"log_source = 'test' AND log_offset >= {from} AND log_offset < {offset}", $"test:{from}", version));
            events.AddRange(rows);
        }
        // Yesterday: 1,200 pages (enough for the range's kept days to be kept added up), its own
        // visitor ids (as the product's: a visitor id lives one UTC day).
        await RoundAsync(today.AddDays(-1), Enumerable.Range(0, 1_200).Select(i => (100_000 + i, $"/p{i}", "pageview")));
        // Today: as many (a day of fewer values is read whole: the site's totals below).
        await RoundAsync(today, [(1, "/p1", "pageview"), (2, "/p1", "pageview"), (3, "/p2", "pageview"),
            .. Enumerable.Range(0, 1_200).Select(i => (10_000 + i, $"/q{i}", "pageview"))]);
        var keeping = new QueryEngine(engine.Store, db)
        {
            LargeSiteFromVisits = 0, GenerationActivations = new GenerationActivations(), SiteDayWrites = writes,
            Clock = new ManualClock(Day.AddHours(13)),
        };
        // A site not read as a large one: today brought up to date by the rollup's rows of the
        // values a round wrote, where a large one's is by the round's events (KeptEventValues).
        var byRows = new QueryEngine(engine.Store, db)
        {
            LargeSiteFromVisits = long.MaxValue, GenerationActivations = new GenerationActivations(), SiteDayWrites = writes,
            Clock = new ManualClock(Day.AddHours(13)),
        };
        QueryEngine[] engines = [keeping, byRows];
        var daily = keeping.DailyRows!;
        var people = events.Where(e => !Bot(e.Visitor));
        string[] Expected() => [.. people.GroupBy(e => e.Page)
            .Select(g => $"{g.Key} {g.Select(e => (e.Day, e.Visitor)).Distinct().Count()} {g.Count(e => e.Name == "pageview")}").Order(StringComparer.Ordinal)];
        string Totals() => $"{people.Select(e => (e.Day, e.Visitor)).Distinct().Count()} {people.Count(e => e.Name == "pageview")}";
        // A visit dimension (the visit's device, stamped on its events): people's visitors and
        // visits (a visitor's first event of a day begins its one visit); bots' device none.
        string[] ExpectedDevices() => [.. people.GroupBy(e => Device(e.Visitor))
            .Select(g => $"{g.Key} {g.Select(e => (e.Day, e.Visitor)).Distinct().Count()} {g.Select(e => (e.Day, e.Visitor)).Distinct().Count()}")
            .Order(StringComparer.Ordinal)];
        // Bots' events count per page under bots (a page only bots saw too), never as visitors.
        string[] ExpectedBots() => [.. events.GroupBy(e => e.Page)
            .Select(g => $"{g.Key} {g.Where(e => !Bot(e.Visitor)).Select(e => (e.Day, e.Visitor)).Distinct().Count()} {g.Count(e => Bot(e.Visitor))}")
            .Order(StringComparer.Ordinal)];
        async Task<string> TotalsAsync(QueryEngine asked)
        {
            var q = new NormalQuery(Merchant, Site, "site", Day.AddDays(-1), Day.AddDays(1), TimeZoneInfo.Utc, ["visitors", "pageviews"],
                [], null, [], 10, 0, false, null, [], "custom");
            var metrics = (await asked.AnswerAsync(q, Ct))["results"]![0]!["metrics"]!.AsArray();
            return $"{metrics[0]} {metrics[1]}";
        }
        for (int asked = 0; asked < 3; asked++) // read, then the past day kept added up, then reused
            foreach (var e in engines)
            {
                Assert.Equal(Expected(), await TopPagesAsync(e, Day.AddDays(-1), Day.AddDays(1)));
                Assert.Equal(Totals(), await TotalsAsync(e));
                Assert.Equal(ExpectedDevices(), await TopPagesAsync(e, Day.AddDays(-1), Day.AddDays(1), "visits", "device"));
            }
        Assert.Equal(0, daily.DaysUpdated);
        // The large site's today read from its events by each question's first answer, beside yesterday's rows.
        Assert.Equal((3, 0), (keeping.KeptEventValues!.DaysRead, keeping.KeptEventValues.DaysUpdated));

        (int, string, string)[][] rounds =
        [
            [(1, "/p1", "pageview"), (1, "/p1", "engagement")],        // the same visitor and page again: still 1 visitor
            [(4, "/p1", "pageview"), (5, "/new", "pageview")],          // a new visitor on a kept page, a new page
            [(6, "/p3", "add_to_cart"), (2, "/new", "pageview")],       // no pageview; a visitor of /p1 on /new
            [],                                                          // a round announced that wrote nothing
            [(7, "/p1199", "pageview"), (7, "/p2", "pageview"), (3, "/p2", "engagement")],
            [(901, "/p1", "pageview"), (901, "/bot", "pageview"), (902, "/bot", "engagement")], // bots: a kept page, a page only they saw
        ];
        long updated = 0;
        foreach (var round in rounds)
        {
            await RoundAsync(today, round);
            updated++;
            foreach (var e in engines)
            {
                Assert.Equal(Expected(), await TopPagesAsync(e, Day.AddDays(-1), Day.AddDays(1)));
                Assert.Equal(Totals(), await TotalsAsync(e));
                Assert.Equal(ExpectedDevices(), await TopPagesAsync(e, Day.AddDays(-1), Day.AddDays(1), "visits", "device"));
                Assert.Equal(updated, e.DailyRows!.DaysUpdated); // top pages: today brought up to date
            }
        }
        foreach (var e in engines)
        {
            Assert.Equal(6 + 2 * rounds.Length, e.DailyRows!.DaysRead); // each question read each day once, the totals and devices today after each round
            // Top pages only (the totals are one value, below the kept sum's threshold): the first
            // round keeps yesterday added up alone (the sum before held today too) and adds today
            // whole on top of it, every later one only the values it wrote.
            Assert.Equal(rounds.Length - 1, e.DailyRows.TodaySumsReused);
        }
        foreach (var e in engines) Assert.Equal(ExpectedBots(), await TopPagesAsync(e, Day.AddDays(-1), Day.AddDays(1), "bots"));
        // The large site: each round's events read (for each question), never today's events
        // whole again; the other site: never its events.
        Assert.Equal((3, 3 * rounds.Length), (keeping.KeptEventValues!.DaysRead, keeping.KeptEventValues.DaysUpdated));
        Assert.Equal((0, 0), (byRows.KeptEventValues!.DaysRead, byRows.KeptEventValues.DaysUpdated));
        // And the scan says the same.
        var scanning = new QueryEngine(engine.Store, db) { UsePreAggregates = false, Clock = new ManualClock(Day.AddHours(13)) };
        Assert.Equal(Expected(), await TopPagesAsync(scanning, Day.AddDays(-1), Day.AddDays(1)));
        Assert.Equal(ExpectedBots(), await TopPagesAsync(scanning, Day.AddDays(-1), Day.AddDays(1), "bots"));
        Assert.Equal(ExpectedDevices(), await TopPagesAsync(scanning, Day.AddDays(-1), Day.AddDays(1), "visits", "device"));

        // One kept sum asked with its dimensions in both orders, in turn: each answer's rows in its
        // own order (a sum's raw row is kept with it for the next answer of the same order).
        async Task<string[]> ByDayAndPageAsync(QueryEngine asked, bool dayFirst)
        {
            Dimension day = QueryVocabulary.ParseDimension("time:day")!, page = QueryVocabulary.ParseDimension("page")!;
            var q = new NormalQuery(Merchant, Site, "site", Day.AddDays(-1), Day.AddDays(1), TimeZoneInfo.Utc, ["visitors"],
                dayFirst ? [day, page] : [page, day], null, [new("visitors", true)], 10_000, 0, false, null, [], "custom");
            return [.. (await asked.AnswerAsync(q, Ct))["results"]!.AsArray().Select(r => r!["dimensions"]!.AsArray() is var d
                ? $"{d[dayFirst ? 0 : 1]} {d[dayFirst ? 1 : 0]} {r["metrics"]![0]}" : "").Order(StringComparer.Ordinal)];
        }
        string[] byDayAndPage = [.. people.GroupBy(e => (e.Day, e.Page))
            .Select(g => $"{g.Key.Day:yyyy-MM-dd} {g.Key.Page} {g.Select(e => e.Visitor).Distinct().Count()}").Order(StringComparer.Ordinal)];
        foreach (bool dayFirst in new[] { true, false, true, false })
            Assert.Equal(byDayAndPage, await ByDayAndPageAsync(keeping, dayFirst));

        // Every dimension of the rollup as the large site keeps today from its events (the three
        // asked brought up to date round by round, the others read whole now) against the rows
        // Rollup's own statement wrote: each value's visitors, visit starts, pageviews, events and
        // bots, and no value Rollup has no row of (bots' events under a visit dimension).
        var kept = keeping.KeptEventValues!;
        foreach (var dimension in Analytics.QueryService.PreAggregates.KeptEventValues.Dimensions.Keys)
        {
            var rows = await kept.ReadAsync(Merchant, Site, dimension, today, 0, keeping.GenerationActivations!.Started, async since =>
                await engine.Store.QueryRowBinaryAsync(Analytics.QueryService.PreAggregates.KeptEventValues.EventsStatement(Merchant, Site, dimension, today,
                    new Dictionary<DateOnly, ulong>(), db, 10, since), Analytics.QueryService.PreAggregates.KeptEventValues.ReadEvents, Ct));
            var rolledUp = await engine.Store.QueryRowsAsync("SELECT value, uniqExactMerge(visitors), sum(visit_starts), sum(pageviews), sum(events), sum(bots) " +
                $"FROM {db}.rollup_dims_day WHERE dimension = '{dimension}' AND bucket = '{today:yyyy-MM-dd}' GROUP BY value", Ct);
            Assert.Equal(rolledUp.Select(r => $"{dimension}:{r[0]} {r[1]} {r[2]} {r[3]} {r[4]} {r[5]}").Order(StringComparer.Ordinal),
                rows!.Select(r => $"{dimension}:{r.Value} {r.Counts[0]} {r.Counts[1]} {r.Counts[2]} {r.Counts[3]} {r.Counts[5]}").Order(StringComparer.Ordinal));
        }
        Assert.Equal((Analytics.QueryService.PreAggregates.KeptEventValues.Dimensions.Count, 3 * rounds.Length + 3), (kept.DaysRead, kept.DaysUpdated));
    }

    /// <summary>
    /// A large site's dimensions are counted by the query side from the events (KeptEventValues,
    /// KeptVisits) with the value expressions of the query vocabulary, and by Rollup into
    /// rollup_dims_day and rollup_visits_day with its own: the same dimensions and the same
    /// expressions, or the two would disagree (the busy-day and visits tests compare them through
    /// a few dimensions only).
    /// </summary>
    [Fact]
    public void The_dimensions_values_are_computed_as_Rollup_computes_them()
    {
        var rollup = DerivedRows.EventDimensions.Where(d => d.Dimension.Length > 0).ToDictionary(d => d.Dimension, d => d.Column);
        Assert.Equal(rollup.OrderBy(d => d.Key), QueryVocabulary.EventDimensions.OrderBy(d => d.Key));
        // Every dimension of the rollup, read from the same column, bots' events left out of the
        // visit dimensions as Rollup leaves them out.
        var rolledUp = DerivedRows.EventDimensions.Select(d => (d.Dimension, d.Column, PeopleOnly: false))
            .Concat(DerivedRows.VisitDimensions.Select(d => (d.Dimension, d.Column, PeopleOnly: true)));
        Assert.Equal(rolledUp.Select(d => $"{d.Dimension}={d.Column} {d.PeopleOnly}").Order(StringComparer.Ordinal),
            Analytics.QueryService.PreAggregates.KeptEventValues.Dimensions.Select(d => $"{d.Key}={d.Value.Column} {d.Value.PeopleOnly}").Order(StringComparer.Ordinal));
        // The visit rollup's entry attributes: one per visit dimension but the entry and exit
        // page, which KeptVisits reads as visit_{dimension}, as Rollup writes them.
        Assert.Equal(VisitEntry.Columns.Order(StringComparer.Ordinal), QueryVocabulary.VisitDimensions.Keys.Where(d => d is not ("entry_page" or "exit_page"))
            .Select(d => "visit_" + d).Order(StringComparer.Ordinal));
    }

    /// <summary>Visitor ids the busy-day test's rounds send as bots'.</summary>
    private static bool Bot(int visitor) => visitor >= 900 && visitor < 1_000;

    /// <summary>The device of a visitor's visit in the busy-day test (one only bots have).</summary>
    private static string Device(int visitor) => Bot(visitor) ? "Crawler" : (visitor % 3) switch { 0 => "Desktop", 1 => "Mobile", _ => "Tablet" };

    /// <summary>
    /// A large site's today for the visit rollup's questions (entry pages, exit pages, the site's
    /// totals with bounce rate and duration, devices), written round after round by Rollup's own
    /// statement under each round's version: after the first read, each answer reads only the
    /// events the rounds since wrote (KeptVisits.DaysUpdated) and is exact every time against LINQ
    /// over the events and the documented definitions, and at the end against the scan: a bounce
    /// that stops being one, a visit that began without a pageview getting its entry page, a
    /// visitor's second visit, an engagement ping lengthening a visit, a round that wrote nothing,
    /// exit pages left by every visit of them today (gone, and kept from yesterday alone), an
    /// earlier pageview arriving late (a new entry page), two pageviews of one millisecond
    /// (ordered by the log offset), and bots' events (counted in no visit).
    /// </summary>
    [Fact]
    public async Task A_large_sites_visits_are_kept_one_row_each_and_rounds_bring_them_up_to_date()
    {
        string db = "dailyvisits_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        var today = DateOnly.FromDateTime(Day.UtcDateTime);
        var events = new List<(int Visit, int Visitor, DateTimeOffset At, long Offset, string Name, string Page)>();
        var writes = new SiteDayWrites();
        long offset = 0;
        async Task RoundAsync(DateOnly day, IEnumerable<(int Visit, int Visitor, TimeSpan At, string Name, string Page)> round)
        {
            var rows = round.Select(e => (e.Visit, e.Visitor, At: new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero) + e.At, Offset: 0L, e.Name, e.Page)).ToList();
            long from = offset;
            for (int i = 0; i < rows.Count; i++) rows[i] = rows[i] with { Offset = offset++ };
            string Values(long version) => string.Join(", ", rows.Select(e =>
                $"({Merchant}, {Site}, '{e.Offset:D16}', '{e.At.UtcDateTime:yyyy-MM-dd HH:mm:ss.fff}', '{e.Name}', '{e.Page}', {e.Visitor}, {e.Visit}, " +
                $"{(e.Name == "engagement" ? 1000 : 0)}, {(Bot(e.Visitor) ? 1 : 0)}, '{VisitDevice(e.Visit)}', '{VisitDevice(e.Visit)}', 'test', {e.Offset}, {version})"));
            await StoreRoundAsync(writes, db, day, "engagement_ms, is_bot, device, visit_device", Values, version => DerivedRows.VisitRollUpStatement(db,
                $"log_source = 'test' AND log_offset >= {from} AND log_offset < {offset}", $"test:{from}", version));
            events.AddRange(rows);
        }
        TimeSpan At(int hour, int minute = 0, int ms = 0) => new TimeSpan(hour, minute, 0) + TimeSpan.FromMilliseconds(ms);
        // Yesterday: 1,200 one-page visits (enough values for a day to be brought up to date, and
        // for the range's kept days to be kept added up), visitor ids of its own, as the product's.
        await RoundAsync(today.AddDays(-1), Enumerable.Range(0, 1_200).Select(i => (100_000 + i, 100_000 + i, At(12, 0, i), "pageview", $"/p{i}")));
        // Today: as many, and visits 1 (a bounce on /a), 2 (a custom event, no pageview yet) and 3 (/a then /b).
        await RoundAsync(today, [(1, 1, At(10), "pageview", "/a"), (2, 2, At(10), "add_to_cart", ""), (3, 3, At(10), "pageview", "/a"),
            (3, 3, At(10, 1), "pageview", "/b"), .. Enumerable.Range(0, 1_200).Select(i => (10_000 + i, 10_000 + i, At(12, 0, i), "pageview", $"/q{i}"))]);
        var keeping = new QueryEngine(engine.Store, db)
        {
            LargeSiteFromVisits = 0, GenerationActivations = new GenerationActivations(), SiteDayWrites = writes,
            Clock = new ManualClock(Day.AddHours(13)),
        };
        var kept = keeping.KeptVisits!;
        // The documented definitions over the events: a visit's entry and exit page are its first
        // and last pageview's path ("" without one), a bounce at most one pageview and no event
        // but pageviews and engagement pings, its duration from its first event to its last.
        string[] Expected(string? dimension, DateTimeOffset? from = null)
        {
            var visits = events.Where(e => e.At >= (from ?? Day.AddDays(-1)) && !Bot(e.Visitor)).GroupBy(e => e.Visit).Select(v =>
            {
                var ordered = v.OrderBy(e => e.At).ThenBy(e => e.Offset).ToList();
                var pages = ordered.Where(e => e.Name == "pageview").ToList();
                return (Visitor: v.First().Visitor, Device: VisitDevice(v.Key), Pageviews: pages.Count, Entry: pages.FirstOrDefault().Page ?? "", Exit: pages.LastOrDefault().Page ?? "",
                    Bounce: pages.Count <= 1 && !ordered.Any(e => e.Name is not ("pageview" or "engagement")),
                    Ms: (long)(ordered[^1].At - ordered[0].At).TotalMilliseconds);
            }).ToList();
            return [.. visits.GroupBy(v => dimension switch { "entry_page" => v.Entry, "exit_page" => v.Exit, "device" => v.Device, _ => "" })
                .Select(g => $"{g.Key} => {g.Select(v => v.Visitor).Distinct().Count()}, {g.Count()}, {g.Sum(v => v.Pageviews)}, " +
                    $"{Math.Round(g.Count(v => v.Bounce) * 100m / g.Count(), 1, MidpointRounding.AwayFromZero).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)}, " +
                    $"{Math.Round(g.Sum(v => v.Ms) * 0.001m / g.Count(), 0, MidpointRounding.AwayFromZero).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)}")
                .Order(StringComparer.Ordinal)];
        }
        async Task<string[]> AskAsync(QueryEngine engine, string? dimension, DateTimeOffset? from = null)
        {
            var q = new NormalQuery(Merchant, Site, "site", from ?? Day.AddDays(-1), Day.AddDays(1), TimeZoneInfo.Utc, ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
                dimension is null ? [] : [QueryVocabulary.ParseDimension(dimension)!], null, [new("visitors", true)], 10_000, 0, false, null, [], "custom");
            var results = (await engine.AnswerAsync(q, Ct))["results"]!.AsArray();
            return [.. results.Select(r => (dimension is null ? "" : r!["dimensions"]![0]!.GetValue<string>()) + " => " +
                string.Join(", ", r!["metrics"]!.AsArray().Select(m => decimal.Parse(m!.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture))))
                .Order(StringComparer.Ordinal)];
        }
        string?[] questions = ["entry_page", "exit_page", null, "device"];
        async Task AllExactAsync(QueryEngine engine)
        {
            foreach (var dimension in questions) Assert.Equal(Expected(dimension), await AskAsync(engine, dimension));
        }
        for (int asked = 0; asked < 3; asked++) await AllExactAsync(keeping); // read, then kept added up, then reused
        // Yesterday read by a statement, today beside it per visit as kept (each question's first
        // answer), then both kept.
        Assert.Equal((4, 0), (kept.DaysRead, kept.DaysUpdated));

        (int, int, TimeSpan, string, string)[][] rounds =
        [
            [(6, 6, At(9), "pageview", "/a")],                                       // a new visitor's bounce (today then read whole once)
            [(1, 1, At(10, 5), "pageview", "/b")],                                   // visit 1: no longer a bounce, exit /a -> /b
            [(2, 2, At(10, 2), "pageview", "/c")],                                   // visit 2 gets its entry and exit page
            [(4, 1, At(11), "pageview", "/a")],                                      // visitor 1's second visit, entering at /a
            [(5, 1, At(11, 30), "pageview", "/b")],                                  // and third: two of visitor 1's visits leave from /b
            [(3, 3, At(10, 3), "engagement", "/b")],                                 // visit 3 lasts longer, exit still /b
            [],                                                                       // a round announced that wrote nothing
            [(1, 1, At(10, 6), "pageview", "/p7"), (3, 3, At(10, 4), "pageview", "/e")], // visits 1 and 3 leave /b: visitor 1 stays by visit 5
            [(5, 1, At(11, 31), "pageview", "/h"), (1, 1, At(10, 7), "pageview", "/z")], // the last leaves /b; today leaves /p7: yesterday's alone
            [(6, 6, At(8, 59), "pageview", "/early")],                              // an earlier pageview arrives late: visit 6 enters at /early
            [(7, 7, At(9), "pageview", "/t1"), (7, 7, At(9), "pageview", "/t2")],   // the same millisecond: the log offset orders them
            [(900, 900, At(9), "pageview", "/bot"), (4, 900, At(11, 1), "add_to_cart", "")], // bots' events: in no visit (visit 4 stays a bounce)
        ];
        foreach (var round in rounds)
        {
            await RoundAsync(today, round);
            await AllExactAsync(keeping);
        }
        // Each question read today's events whole once (its first answer), then only each round's.
        Assert.Equal((4, 4 * rounds.Length), (kept.DaysRead, kept.DaysUpdated));
        Assert.DoesNotContain(await AskAsync(keeping, "exit_page"), l => l.StartsWith("/b ", StringComparison.Ordinal));
        Assert.Contains("/p7 => 1, 1, 1, 100, 0", await AskAsync(keeping, "exit_page"));
        // Entry and exit pages (a day of 1,000 values or more) added only the values that changed
        // to the last answer's rows from the second round on (the first read today whole and
        // added it whole to the kept sum of yesterday alone).
        Assert.Equal(2 * (rounds.Length - 1), keeping.DailyRows!.TodaySumsReused);
        // Today alone: its kept day as brought up to date, the values every visit left gone from it.
        foreach (var dimension in questions) Assert.Equal(Expected(dimension, Day), await AskAsync(keeping, dimension, Day));
        var scanning = new QueryEngine(engine.Store, db) { UsePreAggregates = false, Clock = new ManualClock(Day.AddHours(13)) };
        await AllExactAsync(scanning);
    }

    /// <summary>The device stamped on a visit's events in the visits test (the visit's entry attribute).</summary>
    private static string VisitDevice(int visit) => visit % 2 == 0 ? "Desktop" : "Mobile";

    /// <summary>Stores a round of the site's <paramref name="day"/> as Rollup does: announced, its
    /// enriched rows (<paramref name="values"/>, given the round's version: the site, event id,
    /// time, name, path, visitor, visit, <paramref name="column"/>, log source and offset of each,
    /// and the version as their write_version), then a rollup statement under that version.</summary>
    private async Task StoreRoundAsync(SiteDayWrites writes, string db, DateOnly day, string column, Func<long, string> values, Func<long, string> rollUp)
    {
        (ulong, ulong, DateOnly)[] siteDay = [(Merchant, Site, day)];
        long version = writes.Begin(db, siteDay);
        try
        {
            if (values(version) is { Length: > 0 } tuples)
                await engine.Store.ExecuteAsync($"INSERT INTO {db}.events_enriched (merchant_id, site_id, event_id, received_at, name, pathname, visitor_id, " +
                    $"visit_id, {column}, log_source, log_offset, write_version) VALUES {tuples}", Ct);
            await engine.Store.ExecuteAsync(rollUp(version), Ct);
        }
        finally
        {
            writes.End(db, siteDay);
        }
    }

    private static async Task<string[]> TopPagesAsync(QueryEngine engine, DateTimeOffset? from = null, DateTimeOffset? to = null, string second = "pageviews",
        string dimension = "page")
    {
        var q = new NormalQuery(Merchant, Site, "site", from ?? Day, to ?? Day.AddDays(1), TimeZoneInfo.Utc, ["visitors", second],
            [QueryVocabulary.ParseDimension(dimension)!], null, [new("visitors", true)], 10_000, 0, false, null, [], "custom");
        var results = (await engine.AnswerAsync(q, Ct))["results"]!.AsArray();
        return [.. results.Select(r => $"{r!["dimensions"]![0]} {r["metrics"]![0]} {r["metrics"]![1]}").Order(StringComparer.Ordinal)];
    }

    private static async Task<string[]> AskAsync(TestHost host, object question)
    {
        using var response = await host.Http.PostAsJsonAsync("/v1/query", question, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.True(response.IsSuccessStatusCode, body.ToString());
        return [.. body.GetProperty("results").EnumerateArray()
            .Select(r => $"{r.GetProperty("dimensions")[0].GetString()} {r.GetProperty("metrics")[0]} {r.GetProperty("metrics")[1]}")
            .Order(StringComparer.Ordinal)];
    }
}
