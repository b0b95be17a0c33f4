using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.Rollup;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Reprocessing history: processing-logic version 1 counted headless browsers as visitors
/// (its known defect); version 2 classifies them as bots. Reprocessing with version 2 must give
/// exactly what a fresh database that ingested the same events under version 2 gives.
/// </summary>
public class ReprocessTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly DateTimeOffset Day = new(2026, 1, 15, 0, 0, 0, TimeSpan.Zero);
    private const string Headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36";

    /// <summary>The same traffic for every host: (minute of the day, user agent, events).</summary>
    private static List<(int Minute, string UserAgent, EventBatch Batch)> Traffic(string siteKey)
    {
        var random = new Random(5);
        var traffic = new List<(int, string, EventBatch)>();
        for (int i = 0; i < 40; i++)
        {
            string ua = i % 4 == 0 ? Headless : TestHost.BrowserUserAgent + " visitor/" + (i % 7);
            var batch = new EventBatch { SiteKey = siteKey, Seq = (ulong)i };
            int n = 1 + random.Next(5);
            for (int e = 0; e < n; e++)
            {
                var evt = e == 3 ? Wire.Custom("signup") : Wire.Pageview("/p" + random.Next(5));
                evt.Id = ByteString.CopyFrom(new Guid(i, (short)e, 0, 1, 2, 3, 4, 5, 6, 7, 8).ToByteArray());
                batch.Events.Add(evt);
            }
            traffic.Add((i * 17 % 600 + i, ua, batch));
        }
        return traffic.OrderBy(t => t.Item1).ToList();
    }

    private static async Task IngestAsync(TestHost host, ManualClock clock, List<(int Minute, string UserAgent, EventBatch Batch)> traffic)
    {
        foreach (var (minute, ua, batch) in traffic)
        {
            clock.Now = Day.AddMinutes(minute);
            var copy = batch.Clone();
            copy.SiteKey = host.Site.SiteKey;
            using var socket = await host.ConnectAsync(ua);
            Assert.Equal((uint)copy.Events.Count, (await Wire.SendAsync(socket, copy)).Accepted);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
    }

    private static async Task<string> SeriesAsync(TestHost host, string interval, string tz = "UTC")
    {
        var json = JsonDocument.Parse(await host.Http.GetStringAsync(
            $"/v1/sites/{host.Site.PublicId}/timeseries?metrics=pageviews,events,visitors,visits&interval={interval}&tz={tz}&from=2026-01-15&to=2026-01-15", Ct)).RootElement;
        // Compare the numbers bucket by bucket (times are identical by construction).
        return string.Join("\n", json.GetProperty("results").EnumerateArray().Select(r =>
            $"{r.GetProperty("time")} {r.GetProperty("pageviews")} {r.GetProperty("events")} {r.GetProperty("visitors")} {r.GetProperty("visits")}"));
    }

    private static async Task<Dictionary<string, long>> DayTotalsAsync(TestHost host)
    {
        var json = JsonDocument.Parse(await host.Http.GetStringAsync(
            $"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews,events,visitors,visits&from=2026-01-15&to=2026-01-15", Ct)).RootElement;
        return json.GetProperty("results").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
    }

    [Fact]
    public async Task Reprocessing_with_the_fixed_logic_equals_a_fresh_ingest_under_it_bucket_by_bucket()
    {
        var clock = new ManualClock(Day);
        var defective = await TestHost.StartAsync(engine, logicVersion: 1, clock: clock);
        defective.KeepData = true;
        var traffic = Traffic(defective.Site.SiteKey);
        long total = traffic.Sum(t => t.Batch.Events.Count);
        await IngestAsync(defective, clock, traffic);
        var v1 = await WaitForTotalEventsAsync(defective, t => t == total); // v1 counts headless browsers too
        string v1Minutes = await SeriesAsync(defective, "minute");
        await defective.DisposeAsync();

        // Version 2 is deployed; the history is rebuilt.
        await using var fixedHost = await TestHost.StartAsync(engine, restartOf: defective, logicVersion: 2, clock: clock);
        var status = await PartitionsAsync(fixedHost);
        Assert.True(status.EnumerateArray().Single().GetProperty("outdated").GetBoolean());

        var dry = await fixedHost.ReprocessAsync(new { merchantId = fixedHost.Site.MerchantId, from = "2026-01-15", to = "2026-01-15", dryRun = true });
        var delta = dry.GetProperty("units")[0].GetProperty("delta");
        var rows = dry.GetProperty("units")[0].GetProperty("rowsWritten");
        Assert.Equal(total, rows.GetProperty("events_enriched").GetInt64());
        Assert.True(rows.GetProperty("rollup_minute").GetInt64() > rows.GetProperty("rollup_day").GetInt64());
        Assert.True(delta.GetProperty("after").GetProperty("visitors").GetInt64() < delta.GetProperty("before").GetProperty("visitors").GetInt64());
        Assert.NotEmpty(delta.GetProperty("sampleBuckets").EnumerateArray());
        Assert.Equal(v1Minutes, await SeriesAsync(fixedHost, "minute")); // a dry run changes nothing

        // Readers during the run see the old numbers or the new ones, never anything else.
        var observed = new List<long>();
        using var stopReading = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            while (!stopReading.IsCancellationRequested)
            {
                observed.Add((await DayTotalsAsync(fixedHost))["visitors"]);
            }
        }, Ct);
        var job = await fixedHost.ReprocessAsync(new { merchantId = fixedHost.Site.MerchantId, from = "2026-01-15", to = "2026-01-15" });
        await Task.Delay(200, Ct);
        await stopReading.CancelAsync();
        await reader;
        long after = (await DayTotalsAsync(fixedHost))["visitors"];
        Assert.All(observed, v => Assert.True(v == v1["visitors"] || v == after, $"observed {v} visitors; before {v1["visitors"]}, after {after}"));
        Assert.Equal(total, job.GetProperty("eventsDone").GetInt64());
        Assert.False((await PartitionsAsync(fixedHost)).EnumerateArray().Single().GetProperty("outdated").GetBoolean());

        // A fresh database that ingested the same events under version 2.
        var freshClock = new ManualClock(Day);
        await using var fresh = await TestHost.StartAsync(engine, logicVersion: 2, clock: freshClock);
        await IngestAsync(fresh, freshClock, Traffic(fresh.Site.SiteKey));
        var v2 = await WaitForTotalEventsAsync(fresh, t => t == v1["events"] - traffic.Where(t => t.UserAgent == Headless).Sum(t => t.Batch.Events.Count));

        Assert.True(v2["visitors"] < v1["visitors"], "the defect made a difference");
        foreach (var interval in new[] { "minute", "hour", "day" })
        {
            Assert.Equal(await SeriesAsync(fresh, interval), await SeriesAsync(fixedHost, interval));
        }
        Assert.Equal(await SeriesAsync(fresh, "hour", "Asia/Kolkata"), await SeriesAsync(fixedHost, "hour", "Asia/Kolkata"));
        Assert.Equal(await DayTotalsAsync(fresh), await DayTotalsAsync(fixedHost));

        // Running it again changes nothing.
        await fixedHost.ReprocessAsync(new { merchantId = fixedHost.Site.MerchantId, from = "2026-01-15", to = "2026-01-15" });
        Assert.Equal(await SeriesAsync(fresh, "minute"), await SeriesAsync(fixedHost, "minute"));
    }

    /// <summary>
    /// A job is done once its generation is active; the rows it superseded (the old generation's,
    /// and a dry run's own) are deleted by the engine in the background. With the engine's merges
    /// (which apply mutations) stopped on every derived table, a dry run and a job still finish, the
    /// answers are the new generation's, and the superseded rows are still there; once merges run
    /// again, nothing but the active generation's rows is left in any derived table.
    /// </summary>
    [Fact]
    public async Task A_job_is_done_before_the_engine_has_deleted_what_it_superseded_and_then_nothing_else_is_left()
    {
        var clock = new ManualClock(Day.AddHours(9));
        await using var host = await TestHost.StartAsync(engine, clock: clock);
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        for (int i = 0; i < 7; i++) batch.Events.Add(Wire.Pageview("/p" + (i % 3)));
        await host.SendAllAsync(batch);
        var before = await host.WaitForAggregateAsync(t => t["pageviews"] == 7);
        var store = host.App.Services.GetRequiredService<IColumnStore>();
        string db = host.Database;
        string[] tables = [.. DerivedRows.RollupTables.Prepend("events_enriched")];
        const string ActiveGeneration = "(SELECT argMax(generation, activated_at) FROM {0}.generations WHERE site_id = {1})";
        async Task<(long Active, long Other)> RowsAsync(string table)
        {
            string active = string.Format(System.Globalization.CultureInfo.InvariantCulture, ActiveGeneration, db, host.Site.SiteId);
            var rows = await store.QueryRowsAsync($"SELECT countIf(generation = {active}), countIf(generation != {active}) FROM {db}.{table} WHERE site_id = {host.Site.SiteId}", Ct);
            return (rows[0][0].GetInt64(), rows[0][1].GetInt64());
        }

        foreach (var table in tables) await store.ExecuteAsync($"SYSTEM STOP MERGES {db}.{table}", Ct);
        try
        {
            await host.ReprocessAsync(new { merchantId = host.Site.MerchantId, from = "2026-01-15", to = "2026-01-15", dryRun = true }, timeoutSeconds: 20);
            await host.ReprocessAsync(new { merchantId = host.Site.MerchantId, from = "2026-01-15", to = "2026-01-15" }, timeoutSeconds: 20);
            Assert.Equal(before, await host.AggregateAsync());
            var pending = await store.QueryRowsAsync($"SELECT count() FROM system.mutations WHERE database = '{db}' AND NOT is_done", Ct);
            Assert.True(pending[0][0].GetInt64() >= tables.Length, $"{pending[0][0]} mutations pending");
            var enriched = await RowsAsync("events_enriched");
            Assert.Equal(7, enriched.Active);
            Assert.Equal(14, enriched.Other); // the first generation's 7 and the dry run's 7
        }
        finally
        {
            foreach (var table in tables) await store.ExecuteAsync($"SYSTEM START MERGES {db}.{table}", CancellationToken.None);
        }
        await engine.WaitForMutationsAsync(db, Ct);
        foreach (var table in tables)
        {
            var (active, other) = await RowsAsync(table);
            Assert.True(active > 0, $"{table}: no rows of the active generation");
            Assert.True(other == 0, $"{table}: {other} rows of other generations left");
        }
        Assert.Equal(7, (await RowsAsync("events_enriched")).Active);
        Assert.Equal(before, await host.AggregateAsync());
    }

    [Fact]
    public async Task Live_ingest_during_a_reprocess_of_the_same_day_is_counted_exactly_once()
    {
        await using var host = await TestHost.StartAsync(engine);
        long acked = 0;
        using var stop = new CancellationTokenSource();
        var senders = Enumerable.Range(0, 3).Select(async c =>
        {
            using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent + " live/" + c);
            while (!stop.IsCancellationRequested)
            {
                var batch = new EventBatch { SiteKey = host.Site.SiteKey };
                for (int i = 0; i < 20; i++) batch.Events.Add(Wire.Pageview("/" + i));
                var ack = await Wire.SendAsync(socket, batch);
                Interlocked.Add(ref acked, ack.Accepted);
                // Live, not flat out: unpaced, three senders acknowledged 1.1M events while a
                // loaded machine's reprocesses ran, more than Rollup stored before the wait ended.
                await Task.Delay(5, CancellationToken.None);
            }
        }).ToList();
        await Task.Delay(1000, Ct);
        string today = DateTime.UtcNow.ToString("yyyy-MM-dd");
        for (int run = 0; run < 3; run++)
        {
            await host.ReprocessAsync(new { merchantId = host.Site.MerchantId, from = today, to = today });
        }
        await stop.CancelAsync();
        await Task.WhenAll(senders);
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= Interlocked.Read(ref acked));
        await Task.Delay(500, Ct);
        totals = await host.AggregateAsync();
        Assert.Equal(Interlocked.Read(ref acked), totals["pageviews"]);
        Assert.Equal(3, totals["visitors"]);
        Assert.Equal(3, totals["visits"]);
    }

    [Fact]
    public async Task The_parquet_export_reads_back_row_for_row()
    {
        await using var host = await TestHost.StartAsync(engine);
        using (var socket = await host.ConnectAsync())
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            for (int i = 0; i < 50; i++)
            {
                var e = Wire.Pageview("/export/" + i, i % 2 == 0 ? "https://news.ycombinator.com/" : null);
                e.Props.Add(new Property { Key = "n", Value = i.ToString() });
                batch.Events.Add(e);
            }
            batch.Events.Add(Wire.Custom("signup"));
            await Wire.SendAsync(socket, batch);
        }
        await host.WaitForAggregateAsync(t => t["events"] == 51);
        string today = DateTime.UtcNow.ToString("yyyy-MM-dd");
        string outDir = Path.Combine(host.DataDirectory, "export");
        var store = engine.Store;
        foreach (var kind in new[] { "raw", "enriched" })
        {
            var response = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Post, "/admin/export",
                new { merchantId = host.Site.MerchantId, from = today, to = today, kind, format = "parquet", @out = outDir }), Ct);
            var result = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(51, result.GetProperty("rows").GetInt64());
            string path = result.GetProperty("files")[0].GetProperty("path").GetString()!;
            Assert.Contains($"merchant_id={host.Site.MerchantId}{Path.DirectorySeparatorChar}date={today}", path);

            // The engine's own Parquet reader against the table, row by row (a fingerprint of
            // every row, compared as sorted lists).
            string columns = $"event_id, toString(received_at), name, {(kind == "raw" ? "url" : "pathname, referrer_source, browser, visit_start")}, referrer, toString(props), toString(visitor_id)";
            var fromFile = await store.QueryRowsAsync($"SELECT arraySort(groupArray(cityHash64({columns}))) FROM file({ClickHouseSql.StringLiteral(path)}, 'Parquet')", Ct);
            var fromTable = await store.QueryRowsAsync(
                $"SELECT arraySort(groupArray(cityHash64({columns.Replace("event_id,", "hex(event_id),")}))) FROM {host.Database}.events_{kind} WHERE merchant_id = {host.Site.MerchantId}", Ct);
            Assert.Equal(fromTable[0][0].ToString(), fromFile[0][0].ToString());
            Assert.Equal(51, fromFile[0][0].GetArrayLength());
        }
    }

    private static async Task<JsonElement> PartitionsAsync(TestHost host)
    {
        var response = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Get, $"/admin/partitions?merchantId={host.Site.MerchantId}"), Ct);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
    }

    private static async Task<Dictionary<string, long>> WaitForTotalEventsAsync(TestHost host, Func<long, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        Dictionary<string, long> totals;
        do
        {
            totals = await DayTotalsAsync(host);
            if (done(totals["events"])) break;
            await Task.Delay(100, Ct);
        }
        while (DateTime.UtcNow < deadline);
        await Task.Delay(300, Ct);
        return await DayTotalsAsync(host);
    }
}
