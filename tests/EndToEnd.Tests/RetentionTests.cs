using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Retention tiers, aged for real: events of three ages go through the real ingest and Rollup
/// (the manual clock places them 11 years, 6.5 years and 3 days ago), then the host restarts with
/// retention periods that put the oldest past every tier but the day rollups and the middle ones
/// past the events and minute rollups, and ClickHouse's TTL merges run (MATERIALIZE TTL,
/// OPTIMIZE FINAL). Expected numbers come from LINQ over the generated events.
/// </summary>
public class RetentionTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly RetentionPolicy Tiers = new()
    {
        Raw = new RetentionPeriod(5, RetentionUnit.Year),
        Enriched = new RetentionPeriod(6, RetentionUnit.Year),
        Minute = new RetentionPeriod(6, RetentionUnit.Year),
        Hour = new RetentionPeriod(8, RetentionUnit.Year),
        Day = new RetentionPeriod(20, RetentionUnit.Year),
        Dimensions = new RetentionPeriod(20, RetentionUnit.Year),
    };

    private static readonly string[] Pages = ["/", "/shoes", "/cart"];

    /// <summary>One generated event: its UTC day, page (null: the custom event) and visitor.</summary>
    private sealed record Generated(DateOnly Day, string? Page, string Visitor);

    [Fact]
    public async Task Ten_years_answer_from_the_day_rollups_after_finer_tiers_expire_and_finer_questions_are_refused_or_answered_from_what_remains()
    {
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        DateOnly[] ancient = [today.AddYears(-11), today.AddYears(-11).AddDays(1)];
        var middle = today.AddMonths(-78);
        var recent = today.AddDays(-3);
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        var host = await TestHost.StartAsync(engine, clock: clock, trustedProxies: ["127.0.0.1"]);
        host.KeepData = true;
        var events = new List<Generated>();
        try
        {
            int visitor = 0;
            foreach (var day in ancient.Append(middle).Append(recent))
            {
                for (int v = 0; v < 4 + (day.Day % 3); v++, visitor++)
                {
                    clock.Now = new DateTimeOffset(day.ToDateTime(new TimeOnly(10, 0)), TimeSpan.Zero).AddMinutes(3 * v);
                    // One visitor per /24 (the address is truncated before hashing): a visit of a few pageviews.
                    string address = $"198.{visitor / 200}.{visitor % 200}.7";
                    var batch = new EventBatch { SiteKey = host.Site.SiteKey };
                    for (int p = 0; p <= visitor % Pages.Length; p++)
                    {
                        batch.Events.Add(Wire.Pageview(Pages[p]));
                        events.Add(new Generated(day, Pages[p], address));
                    }
                    if (visitor % 2 == 0)
                    {
                        batch.Events.Add(Wire.Custom("signup"));
                        events.Add(new Generated(day, null, address));
                    }
                    using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent, ("X-Forwarded-For", address));
                    Assert.Equal((uint)batch.Events.Count, (await Wire.SendAsync(socket, batch)).Accepted);
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
                }
            }
            clock.Now = DateTimeOffset.UtcNow;
            await WaitForStoredAsync(host, events.Count);
            await CheckTenYearsAsync(host, events, today);
        }
        finally
        {
            await host.DisposeAsync();
        }

        await using var aged = await TestHost.StartAsync(engine, restartOf: host, clock: clock, trustedProxies: ["127.0.0.1"], retention: Tiers);
        string db = aged.Database;
        foreach (var table in RetentionPolicy.Tables)
        {
            await engine.Store.ExecuteAsync($"ALTER TABLE {db}.{table.Name} MATERIALIZE TTL SETTINGS mutations_sync = 1", Ct);
            await engine.Store.ExecuteAsync($"OPTIMIZE TABLE {db}.{table.Name} FINAL", Ct);
        }

        // The expired rows are gone; each table holds exactly the days after its horizon.
        var expected = new Dictionary<string, DateOnly[]>
        {
            ["events_raw"] = [recent],
            ["events_enriched"] = [recent],
            ["rollup_minute"] = [recent],
            ["rollup_hour"] = [middle, recent],
            ["rollup_day"] = [.. ancient, middle, recent],
            ["rollup_dims_day"] = [.. ancient, middle, recent],
            ["rollup_visits_day"] = [.. ancient, middle, recent],
        };
        foreach (var table in RetentionPolicy.Tables)
        {
            var rows = await engine.Store.QueryRowsAsync(
                $"SELECT DISTINCT toString(toDate({table.TimeColumn})) FROM {db}.{table.Name} ORDER BY 1", Ct);
            Assert.Equal(expected[table.Name].Order().Select(Day), rows.Select(r => r[0].GetString()!));
        }
        var ttls = await RetentionApplier.CurrentAsync(engine.Store, db, cancellationToken: Ct);
        Assert.Equal("toDateTime(toDate(received_at), 'UTC') + toIntervalYear(5)", ttls["events_raw"]);

        // The same ten-year answers, now from the day rollups.
        await CheckTenYearsAsync(aged, events, today);

        // Finer questions about expired days: refused, naming the field and the reason ...
        string from = Day(today.AddYears(-12)), to = Day(today);
        // (Revenue by source is held by the dimension rollup since migration 012; time on page by page is held by neither rollup.)
        var revenue = await QueryAsync(aged, new { site_id = aged.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "total_revenue" }, dimensions = new[] { "source" } });
        Assert.Equal(HttpStatusCode.OK, revenue.Status);
        var refused = await QueryAsync(aged, new { site_id = aged.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "time_on_page" }, dimensions = new[] { "page" } });
        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Equal("metrics[0]", refused.Body.GetProperty("field").GetString());
        Assert.Contains("time_on_page", refused.Body.GetProperty("detail").GetString());
        Assert.Contains("enriched events are kept 6y", refused.Body.GetProperty("detail").GetString());
        var hourly = await QueryAsync(aged, new { site_id = aged.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "visitors" }, dimensions = new[] { "time:hour" } });
        Assert.Equal(HttpStatusCode.BadRequest, hourly.Status);
        Assert.Equal("dimensions[0]", hourly.Body.GetProperty("field").GetString());
        var minutes = await aged.Http.GetAsync($"/v1/sites/{aged.Site.PublicId}/timeseries?metrics=pageviews&interval=minute&from={Day(middle)}&to={Day(middle)}", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, minutes.StatusCode);
        Assert.Contains("minute rollups are kept 6y", await minutes.Content.ReadAsStringAsync(Ct));
        var ancientHours = await aged.Http.GetAsync($"/v1/sites/{aged.Site.PublicId}/aggregate?metrics=pageviews&from={Day(ancient[0])}T10:00:00Z&to={Day(ancient[0])}T12:00:00Z", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, ancientHours.StatusCode);

        // ... or answered from the finest tier still kept: the middle day's hours from rollup_hour.
        var hours = await aged.Http.GetFromJsonAsync<JsonElement>($"/v1/sites/{aged.Site.PublicId}/timeseries?metrics=pageviews&interval=hour&from={Day(middle)}&to={Day(middle)}", Ct);
        var byHour = hours.GetProperty("results").EnumerateArray().Where(b => b.GetProperty("pageviews").GetInt64() > 0)
            .ToDictionary(b => b.GetProperty("time").GetDateTimeOffset().UtcDateTime.Hour, b => b.GetProperty("pageviews").GetInt64());
        Assert.Equal(new Dictionary<int, long> { [10] = events.Count(e => e.Day == middle && e.Page is not null) }, byHour);

        // Recent days keep every tier: a scan-only metric still answers there.
        var bounce = await QueryAsync(aged, new { site_id = aged.Site.PublicId, date_range = new[] { Day(recent), to }, metrics = new[] { "bounce_rate", "visits" } });
        Assert.Equal(HttpStatusCode.OK, bounce.Status);
        Assert.Equal(events.Where(e => e.Day == recent).Select(e => e.Visitor).Distinct().Count(), bounce.Body.GetProperty("results")[0].GetProperty("metrics")[1].GetInt64());

        // Reprocessing cannot rebuild days whose raw events expired; days after the horizon it can.
        using var old = await aged.Http.SendAsync(aged.AdminRequest(HttpMethod.Post, "/admin/reprocess",
            new { merchantId = aged.Site.MerchantId, from = Day(middle), to = Day(middle) }), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, old.StatusCode);
        var problem = await old.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("from", problem.GetProperty("field").GetString());
        Assert.Contains("raw events are kept 5y", problem.GetProperty("detail").GetString());
        // The CLI (a child process driving this host's admin API) says the same in one line, exit 1.
        var cli = await HostCommand.RunAsync(["reprocess", "--merchant", aged.Site.MerchantId.ToString(CultureInfo.InvariantCulture),
            "--from", Day(middle), "--to", Day(middle), "--url", aged.BaseAddress, "--token", aged.Token], environment: null);
        Assert.True(cli.ExitCode == 1, cli.ToString());
        Assert.Contains("raw events are kept 5y", cli.Stderr);
        var job = await aged.ReprocessAsync(new { merchantId = aged.Site.MerchantId, from = Day(recent), to = Day(recent) });
        Assert.Equal(events.Count(e => e.Day == recent), job.GetProperty("eventsDone").GetInt64());
        await CheckTenYearsAsync(aged, events, today);

        // Funnels read enriched events only: refused past their horizon, answered after it.
        var goals = aged.App.Services.GetRequiredService<Analytics.ControlPlane.SiteRegistry>().Store;
        goals.CreateGoal(aged.Site.SiteId, "Home", "page", "/");
        goals.CreateGoal(aged.Site.SiteId, "Shoes", "page", "/shoes");
        var oldFunnel = await FunnelAsync(aged, new { site_id = aged.Site.PublicId, date_range = new[] { from, to }, steps = new[] { "Home", "Shoes" } });
        Assert.Equal(HttpStatusCode.BadRequest, oldFunnel.Status);
        Assert.Equal("date_range", oldFunnel.Body.GetProperty("field").GetString());
        Assert.Contains("enriched events are kept 6y", oldFunnel.Body.GetProperty("detail").GetString());
        var recentFunnel = await FunnelAsync(aged, new { site_id = aged.Site.PublicId, date_range = new[] { Day(recent), to }, steps = new[] { "Home", "Shoes" } });
        Assert.Equal(HttpStatusCode.OK, recentFunnel.Status);
        Assert.Equal(events.Where(e => e.Day == recent && e.Page == "/").Select(e => e.Visitor).Distinct().Count(),
            recentFunnel.Body.GetProperty("steps")[0].GetProperty("visitors").GetInt64());

        // "all" starts at the enriched horizon even while an expired row lingers (TTL merges remove
        // rows lazily): here one written back 7 years, past the 6-year horizon.
        var lingering = today.AddYears(-7);
        // No TTL merge may remove it before the question (the check below proves it was there).
        await engine.Store.ExecuteAsync($"SYSTEM STOP TTL MERGES {db}.events_enriched", Ct);
        await engine.Store.ExecuteAsync($"INSERT INTO {db}.events_enriched SELECT * REPLACE (toDateTime64('{Day(lingering)} 10:00:00', 3, 'UTC') AS received_at) " +
            $"FROM {db}.events_enriched WHERE site_id = {aged.Site.SiteId} LIMIT 1", Ct);
        var all = await QueryAsync(aged, new { site_id = aged.Site.PublicId, date_range = "all", metrics = new[] { "visitors" } });
        Assert.Equal(HttpStatusCode.OK, all.Status);
        var allFrom = DateOnly.FromDateTime(all.Body.GetProperty("query").GetProperty("date_range")[0].GetDateTimeOffset().UtcDateTime);
        Assert.True(allFrom >= today.AddYears(-6).AddDays(-1) && allFrom <= today.AddYears(-6).AddDays(1), $"all starts {Day(allFrom)}, not at the 6-year horizon");
        var stillThere = await engine.Store.QueryRowsAsync($"SELECT toString(count()) FROM {db}.events_enriched WHERE toDate(received_at) = '{Day(lingering)}'", Ct);
        Assert.Equal("1", stillThere[0][0].GetString());
        await engine.Store.ExecuteAsync($"SYSTEM START TTL MERGES {db}.events_enriched", Ct);
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> FunnelAsync(TestHost host, object query)
    {
        using var response = await host.Http.PostAsJsonAsync("/v1/funnel", query, Ct);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>(Ct));
    }

    [Fact]
    public async Task A_changed_retention_replaces_the_TTLs_at_the_next_start_and_forever_removes_them()
    {
        var first = await TestHost.StartAsync(engine, retention: Tiers);
        first.KeepData = true;
        await first.DisposeAsync();
        var ttls = await RetentionApplier.CurrentAsync(engine.Store, first.Database, cancellationToken: Ct);
        Assert.Equal(RetentionPolicy.Tables.Select(t => t.Name).Order(), ttls.Keys.Order());
        Assert.Equal("toDateTime(toDate(bucket), 'UTC') + toIntervalYear(8)", ttls["rollup_hour"]);

        await using var second = await TestHost.StartAsync(engine, restartOf: first, retention: Tiers with { Hour = new RetentionPeriod(90, RetentionUnit.Day), Day = null });
        ttls = await RetentionApplier.CurrentAsync(engine.Store, first.Database, cancellationToken: Ct);
        Assert.Equal("toDateTime(toDate(bucket), 'UTC') + toIntervalDay(90)", ttls["rollup_hour"]);
        Assert.False(ttls.ContainsKey("rollup_day"));
        // Unchanged settings change nothing.
        Assert.Empty(await RetentionApplier.ApplyAsync(engine.Store, first.Database, Tiers with { Hour = new RetentionPeriod(90, RetentionUnit.Day), Day = null }, cancellationToken: Ct));
    }

    /// <summary>The ten-year range through both query APIs: totals and pageviews by page, as LINQ counts them.</summary>
    private static async Task CheckTenYearsAsync(TestHost host, List<Generated> events, DateOnly today)
    {
        string from = Day(today.AddYears(-12)), to = Day(today);
        long pageviews = events.Count(e => e.Page is not null), visitors = events.Select(e => e.Visitor).Distinct().Count();
        var totals = await QueryAsync(host, new { site_id = host.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "visitors", "visits", "pageviews", "events" } });
        Assert.True(totals.Status == HttpStatusCode.OK, totals.Body.ToString());
        Assert.Equal([visitors, visitors, pageviews, events.Count], totals.Body.GetProperty("results")[0].GetProperty("metrics").EnumerateArray().Select(m => m.GetInt64()));

        var pages = await QueryAsync(host, new { site_id = host.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "pageviews" }, dimensions = new[] { "page" } });
        Assert.True(pages.Status == HttpStatusCode.OK, pages.Body.ToString());
        Assert.Equal(
            events.Where(e => e.Page is not null).GroupBy(e => e.Page!).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={g.Count()}"),
            // The custom event's page (/checkout) is a row too, with no pageviews.
            pages.Body.GetProperty("results").EnumerateArray().Where(r => r.GetProperty("metrics")[0].GetInt64() > 0).Select(r => $"{r.GetProperty("dimensions")[0].GetString()}={r.GetProperty("metrics")[0].GetInt64()}").Order(StringComparer.Ordinal));

        var byYear = await QueryAsync(host, new { site_id = host.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "events" }, dimensions = new[] { "time:month" } });
        Assert.True(byYear.Status == HttpStatusCode.OK, byYear.Body.ToString());
        Assert.Equal(
            events.GroupBy(e => new DateOnly(e.Day.Year, e.Day.Month, 1)).OrderBy(g => g.Key).Select(g => $"{Day(g.Key)}={g.Count()}"),
            byYear.Body.GetProperty("results").EnumerateArray().Where(r => r.GetProperty("metrics")[0].GetInt64() > 0)
                .Select(r => $"{r.GetProperty("dimensions")[0].GetString()}={r.GetProperty("metrics")[0].GetInt64()}").Order(StringComparer.Ordinal));

        // Visit metrics by entry page: from the scan, then (enriched events expired) from the visit rollup.
        // Each visitor has one visit, starting on "/"; a bounce has one pageview and no signup.
        var entries = await QueryAsync(host, new { site_id = host.Site.PublicId, date_range = new[] { from, to }, metrics = new[] { "visits", "bounce_rate" }, dimensions = new[] { "entry_page" } });
        Assert.True(entries.Status == HttpStatusCode.OK, entries.Body.ToString());
        long bounces = events.GroupBy(e => e.Visitor).Count(v => v.Count(e => e.Page is not null) <= 1 && v.All(e => e.Page is not null));
        Assert.Equal($"/ => {visitors}, {Math.Round(bounces * 100m / visitors, 1, MidpointRounding.AwayFromZero).ToString("0.#", CultureInfo.InvariantCulture)}",
            string.Join("; ", entries.Body.GetProperty("results").EnumerateArray().Select(r =>
                $"{r.GetProperty("dimensions")[0].GetString()} => {r.GetProperty("metrics")[0].GetInt64()}, {r.GetProperty("metrics")[1].GetDecimal().ToString("0.#", CultureInfo.InvariantCulture)}")));

        var aggregate = await host.Http.GetFromJsonAsync<JsonElement>($"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews,events,visits,visitors&from={from}&to={to}", Ct);
        var results = aggregate.GetProperty("results");
        Assert.Equal((pageviews, (long)events.Count, visitors, visitors),
            (results.GetProperty("pageviews").GetInt64(), results.GetProperty("events").GetInt64(), results.GetProperty("visits").GetInt64(), results.GetProperty("visitors").GetInt64()));
    }

    private static async Task WaitForStoredAsync(TestHost host, int events)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        long stored = 0;
        while (DateTime.UtcNow < deadline)
        {
            // A round writes the event tables before the rollups: wait for the last of them too.
            var rows = await host.App.Services.GetRequiredService<IColumnStore>().QueryRowsAsync(
                $"SELECT least((SELECT count() FROM {host.Database}.events_enriched), (SELECT sum(events) FROM {host.Database}.rollup_minute), " +
                $"(SELECT sum(events) FROM {host.Database}.rollup_hour), (SELECT sum(events) FROM {host.Database}.rollup_day), " +
                $"(SELECT sum(events) FROM {host.Database}.rollup_dims_day WHERE dimension = ''), (SELECT sum(events) FROM {host.Database}.rollup_visits_day))", Ct);
            stored = rows[0][0].GetInt64();
            if (stored == events) return;
            await Task.Delay(100, Ct);
        }
        Assert.Fail($"{stored} of {events} events stored after 60 s");
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> QueryAsync(TestHost host, object query)
    {
        using var response = await host.Http.PostAsJsonAsync("/v1/query", query, Ct);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>(Ct));
    }

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
