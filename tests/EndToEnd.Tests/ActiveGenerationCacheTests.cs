using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.QueryService.PreAggregates;
using Analytics.QueryService.Query;
using Analytics.Rollup;
using Analytics.Store;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The query engine keeps each site's active generations between questions and reads them again
/// after an activation (ActiveGenerationCache, GenerationActivations). A stale map would answer
/// from a generation that reprocessing superseded, and deleted: these tests make that visible.
/// </summary>
public class ActiveGenerationCacheTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly DateTimeOffset Day = new(2026, 2, 10, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Through the host: a planned question (whole UTC days, from the dimension rollup) is asked,
    /// which keeps the site's generations; the day is reprocessed through the admin API, whose job
    /// activates a new generation and deletes the old one's rows; the same question then answers
    /// the same numbers, from the new generation.
    /// </summary>
    [Fact]
    public async Task A_question_after_reprocessing_reads_the_generation_the_job_activated()
    {
        var clock = new ManualClock(Day.AddHours(9));
        await using var host = await TestHost.StartAsync(engine, clock: clock);
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        for (int i = 0; i < 7; i++) batch.Events.Add(Wire.Pageview("/p" + (i % 3)));
        await host.SendAllAsync(batch);
        await host.WaitForAggregateAsync(t => t["pageviews"] == 7);
        var question = new
        {
            site_id = host.Site.PublicId, date_range = new[] { "2026-02-10", "2026-02-10" }, timezone = "UTC",
            metrics = new[] { "visitors", "pageviews" }, dimensions = new[] { "page" },
        };
        var expected = new[] { "/p0 1 3", "/p1 1 2", "/p2 1 2" };
        Assert.Equal(expected, await AskAsync(host, question));
        var planned = new NormalQuery(host.Site.MerchantId, host.Site.SiteId, host.Site.PublicId, Day, Day.AddDays(1), TimeZoneInfo.Utc,
            ["visitors", "pageviews"], [QueryVocabulary.ParseDimension("page")!], null, [new("visitors", true)], 10_000, 0, false, null, [], "custom");
        Assert.True(NormalQueryPlanner.TryPlanRaw(planned, host.Database, 10, out var reason) is not null, $"the question is not planned: {reason}");

        await host.ReprocessAsync(new { merchantId = host.Site.MerchantId, from = "2026-02-10", to = "2026-02-10" });

        // The job deleted the superseded generation's rows (the engine, in the background, once
        // the job was done): an answer from it would be empty.
        await engine.WaitForMutationsAsync(host.Database, Ct);
        var store = host.App.Services.GetRequiredService<IColumnStore>();
        var generations = await store.QueryRowsAsync(
            $"SELECT groupUniqArray(generation) FROM {host.Database}.rollup_dims_day WHERE site_id = {host.Site.SiteId}", Ct);
        Assert.DoesNotContain(0UL, generations[0][0].EnumerateArray().Select(g => g.GetUInt64()));
        Assert.Equal(expected, await AskAsync(host, question));
    }

    /// <summary>
    /// The engine on its own: rows of generation 0 and of generation 7 for one day; generation 0
    /// answers until 7 is activated through Generations (counted), then 7 does. An activation row
    /// written past the count (not how the product activates) is not seen by the engine that keeps
    /// the map, which shows that it keeps it, while an engine without the count reads it at once.
    /// </summary>
    [Fact]
    public async Task The_kept_generations_are_read_again_after_an_activation_and_only_then()
    {
        string db = "gencache_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        const long merchant = 5, site = 50;
        foreach (var (generation, visitors, pageviews) in new[] { (0UL, 2, 5), (7UL, 3, 9) })
        {
            await engine.Store.ExecuteAsync(
                $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation) " +
                $"SELECT {merchant}, {site}, '', toDate('2026-02-10'), '', {pageviews}, {pageviews}, {visitors}, 0, " +
                $"arrayReduce('uniqExactState', arrayMap(x -> toUInt64(x), range(1, {visitors + 1}))), {generation}", Ct);
        }
        var activations = new GenerationActivations();
        var keeping = new QueryEngine(engine.Store, db) { GenerationActivations = activations };
        var reading = new QueryEngine(engine.Store, db);
        var q = new NormalQuery(merchant, site, "site", Day, Day.AddDays(1), TimeZoneInfo.Utc, ["visitors", "pageviews"], [], null,
            [new("visitors", true)], 10_000, 0, false, null, [], "custom");
        Assert.True(NormalQueryPlanner.TryPlanRaw(q, db, 10, out var reason) is not null, $"the question is not planned: {reason}");

        Assert.Equal("2 5", await TotalsAsync(keeping, q));
        Assert.Equal("2 5", await TotalsAsync(reading, q));

        await new Generations(engine.Store, db, activations).ActivateAsync((ulong)merchant, (ulong)site, DateOnly.FromDateTime(Day.UtcDateTime), 7, ProcessingLogic.Current, 9, Ct);
        Assert.True(activations.TryQuiet(out long started) && started == 1);
        Assert.Equal("3 9", await TotalsAsync(keeping, q));
        Assert.Equal("3 9", await TotalsAsync(reading, q));

        // Back to generation 0 behind the count's back: the kept map still says 7.
        await engine.Store.ExecuteAsync($"INSERT INTO {db}.generations VALUES ({merchant}, {site}, '2026-02-10', 0, {ProcessingLogic.Current}, 5, now64(6) + 1)", Ct);
        Assert.Equal("3 9", await TotalsAsync(keeping, q));
        Assert.Equal("2 5", await TotalsAsync(reading, q));
        // Another site's activation moves the count: every site's map is read again.
        await new Generations(engine.Store, db, activations).ActivateAsync(9, 90, DateOnly.FromDateTime(Day.UtcDateTime), 1, ProcessingLogic.Current, 0, Ct);
        Assert.Equal("2 5", await TotalsAsync(keeping, q));

        // While an activation runs (its insert may be visible already) nothing kept is used.
        activations.Starting();
        await engine.Store.ExecuteAsync($"INSERT INTO {db}.generations VALUES ({merchant}, {site}, '2026-02-10', 7, {ProcessingLogic.Current}, 9, now64(6) + 2)", Ct);
        Assert.Equal("3 9", await TotalsAsync(keeping, q));
        activations.Finished();
        Assert.Equal("3 9", await TotalsAsync(keeping, q));
    }

    /// <summary>Makes the planned statement wait, as it may for an engine session, once it is about to run.</summary>
    private sealed class HeldStore(IColumnStore inner) : Analytics.Tests.Shared.DelegatingColumnStore(inner)
    {
        public volatile TaskCompletionSource? Hold;
        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, CancellationToken ct = default)
        {
            if (Hold is { } hold && sql.Contains("rollup_dims_day", StringComparison.Ordinal))
            {
                Reached.TrySetResult();
                await hold.Task;
            }
            return await base.QueryRowsAsync(sql, ct);
        }
    }

    /// <summary>
    /// A reprocess step activates a new generation and the superseded rows are deleted while the
    /// planned statement, given the old generation, waits to run: it must not answer from the
    /// deleted rows (zeros), but as a statement reading the generations itself does.
    /// </summary>
    [Fact]
    public async Task An_activation_while_the_statement_waits_makes_the_question_be_asked_again()
    {
        string db = "genrace_" + Guid.NewGuid().ToString("N")[..12];
        await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
        const long merchant = 5, site = 50;
        async Task RowsAsync(ulong generation, int visitors, int pageviews) => await engine.Store.ExecuteAsync(
            $"INSERT INTO {db}.rollup_dims_day (merchant_id, site_id, dimension, bucket, value, events, pageviews, visit_starts, bots, visitors, generation) " +
            $"SELECT {merchant}, {site}, '', toDate('2026-02-10'), '', {pageviews}, {pageviews}, {visitors}, 0, " +
            $"arrayReduce('uniqExactState', arrayMap(x -> toUInt64(x), range(1, {visitors + 1}))), {generation}", Ct);
        await RowsAsync(0, 2, 5);
        var activations = new GenerationActivations();
        var held = new HeldStore(engine.Store);
        var keeping = new QueryEngine(held, db) { GenerationActivations = activations };
        var q = new NormalQuery(merchant, site, "site", Day, Day.AddDays(1), TimeZoneInfo.Utc, ["visitors", "pageviews"], [], null,
            [new("visitors", true)], 10_000, 0, false, null, [], "custom");
        Assert.Equal("2 5", await TotalsAsync(keeping, q));

        await RowsAsync(7, 3, 9); // a rebuild's rows, not active yet
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        held.Hold = hold;
        var asking = TotalsAsync(keeping, q);
        await held.Reached.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await new Generations(engine.Store, db, activations).ActivateAsync((ulong)merchant, (ulong)site, DateOnly.FromDateTime(Day.UtcDateTime), 7, ProcessingLogic.Current, 9, Ct);
        await engine.Store.ExecuteAsync($"DELETE FROM {db}.rollup_dims_day WHERE merchant_id = {merchant} AND site_id = {site} AND generation != 7", Ct);
        held.Hold = null;
        hold.SetResult();
        Assert.Equal("3 9", await asking.WaitAsync(TimeSpan.FromSeconds(30), Ct));

        // Asked while an activation runs (counted as started, its insert not sent yet), and held
        // until it has finished and the superseded rows are gone: nothing kept may be used then
        // either, since the start was counted before the question looked.
        await RowsAsync(8, 4, 11);
        activations.Starting();
        hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        held = new HeldStore(engine.Store) { Hold = hold };
        keeping = new QueryEngine(held, db) { GenerationActivations = activations };
        asking = TotalsAsync(keeping, q);
        await held.Reached.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await engine.Store.ExecuteAsync($"INSERT INTO {db}.generations VALUES ({merchant}, {site}, '2026-02-10', 8, {ProcessingLogic.Current}, 11, now64(6) + 1)", Ct);
        activations.Finished();
        await engine.Store.ExecuteAsync($"DELETE FROM {db}.rollup_dims_day WHERE merchant_id = {merchant} AND site_id = {site} AND generation != 8", Ct);
        held.Hold = null;
        hold.SetResult();
        Assert.Equal("4 11", await asking.WaitAsync(TimeSpan.FromSeconds(30), Ct));
    }

    private static async Task<string> TotalsAsync(QueryEngine engine, NormalQuery q)
    {
        var results = (await engine.AnswerAsync(q, Ct))["results"]!.AsArray();
        var metrics = Assert.Single(results)!["metrics"]!.AsArray();
        return $"{metrics[0]} {metrics[1]}";
    }

    private static async Task<string[]> AskAsync(TestHost host, object question)
    {
        using var response = await host.Http.PostAsJsonAsync("/v1/query", question, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
        return body.GetProperty("results").EnumerateArray()
            .Select(r => $"{r.GetProperty("dimensions")[0].GetString()} {r.GetProperty("metrics")[0]} {r.GetProperty("metrics")[1]}")
            .Order(StringComparer.Ordinal).ToArray();
    }
}
