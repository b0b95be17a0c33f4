using System.Globalization;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Analytics.Rollup;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The real Prometheus scrapes a real host's /metrics over loopback while real WebSocket clients
/// send traffic; the series, histogram buckets included, are read back through Prometheus's HTTP
/// API. Expected values are the test's own counts of what it sent and what the Acks said.
/// </summary>
public sealed class PrometheusScrapeTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Prometheus_scrapes_ingest_log_rollup_store_and_query_series_with_histogram_buckets()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var prometheus = await PrometheusServer.StartAsync([new Uri(host.BaseAddress).Authority], Ct);

        const int connections = 2, batchesPerConnection = 10, eventsPerBatch = 10;
        long accepted = 0, rejected = 0, batches = 0;
        for (int c = 0; c < connections; c++)
        {
            using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent + " prometheus/" + c);
            for (int b = 0; b < batchesPerConnection; b++)
            {
                var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = (ulong)b };
                for (int e = 0; e < eventsPerBatch; e++)
                {
                    var evt = Wire.Pageview("/p/" + e);
                    if (e == 3) evt.Url = "not-a-url"; // one invalid event per batch: UrlInvalid
                    batch.Events.Add(evt);
                }
                var ack = await Wire.SendAsync(socket, batch);
                Assert.Equal(AckStatus.Ok, ack.Status);
                accepted += ack.Accepted;
                rejected += ack.Rejected;
                batches++;
            }
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        Assert.Equal(connections * batchesPerConnection * (eventsPerBatch - 1), accepted);
        await host.WaitForAggregateAsync(r => r["events"] == accepted);

        string Job(string selector) => selector.Contains('{', StringComparison.Ordinal)
            ? selector.Replace("{", "{job=\"analytics\",", StringComparison.Ordinal)
            : selector + "{job=\"analytics\"}";
        async Task<double> Wait(string selector, Func<double, bool> done, bool asWritten = false)
        {
            var answer = await prometheus.WaitForAsync(asWritten ? selector : Job(selector), done, Ct);
            if (answer.Count == 1 && done(answer[0].Value))
                return answer[0].Value;
            // What the host itself says, to tell a scrape problem from a stalled Rollup.
            var rollup = host.App.Services.GetRequiredService<RollupStatus>();
            Assert.Fail($"{selector}: {string.Join("; ", answer.Select(a => a.Value.ToString(CultureInfo.InvariantCulture)))}\n" +
                $"Rollup in the host: {rollup.EventsStored} events stored, {rollup.DuplicatesSkipped} duplicates, {rollup.Rounds} rounds, " +
                $"lag {rollup.Lag}, last error {rollup.LastError ?? "none"}\nPrometheus:\n{prometheus.Log}");
            return answer[0].Value;
        }

        Assert.Equal(1, await Wait("up", v => v == 1));
        // Counters kept their names and labels from before OpenTelemetry.
        await Wait("analytics_ingest_events_accepted_total", v => v == accepted);
        await Wait("analytics_ingest_events_rejected_total{reason=\"UrlInvalid\"}", v => v == rejected);
        await Wait("analytics_ingest_batches_total", v => v == batches);
        await Wait("analytics_ingest_connections_total", v => v == connections);
        await Wait("analytics_ingest_connections_open", v => v == 0);
        await Wait("analytics_rollup_events_stored_total", v => v == accepted);

        // Ack latency: a bucket per bound plus +Inf, cumulative, +Inf = every answered batch.
        await Wait("analytics_ingest_ack_duration_seconds_count{status=\"ok\"}", v => v == batches);
        var ackBuckets = await prometheus.QueryAsync(Job("analytics_ingest_ack_duration_seconds_bucket{status=\"ok\"}"), Ct);
        Assert.Equal(17, ackBuckets.Count);
        var cumulative = ackBuckets.OrderBy(b => b.Labels["le"] == "+Inf" ? double.PositiveInfinity : double.Parse(b.Labels["le"], CultureInfo.InvariantCulture)).Select(b => b.Value).ToList();
        Assert.Equal(cumulative.Order(), cumulative);
        Assert.Equal(batches, cumulative[^1]);

        // Batch size: every batch had 10 events, so the le="10" bucket holds them all and le="5" none.
        // (Prometheus scrapes the OpenMetrics format, whose bounds read "10.0".)
        await Wait("analytics_ingest_batch_events_sum", v => v == batches * eventsPerBatch);
        await Wait("analytics_ingest_batch_events_bucket{le=~\"10(\\\\.0)?\"}", v => v == batches);
        await Wait("analytics_ingest_batch_events_bucket{le=~\"5(\\\\.0)?\"}", v => v == 0);

        // Process-wide instruments (other tests' hosts in this process add to them): present and counting.
        await Wait("analytics_log_append_duration_seconds_bucket{log=\"local\",le=\"+Inf\"}", v => v >= batches);
        await Wait("analytics_log_fsync_duration_seconds_count", v => v >= 1);
        await Wait("analytics_rollup_round_duration_seconds_count", v => v >= 1);
        await Wait("analytics_store_insert_duration_seconds_count{store=\"embedded\",table=\"events_raw\",outcome=\"ok\"}", v => v >= 1);
        await Wait("sum(analytics_enrichment_cache_requests_total{job=\"analytics\",cache=\"user_agent\"})", v => v >= accepted, asWritten: true);

        // Query latency by route template, never by the site's id.
        await host.AggregateAsync();
        await Wait("analytics_query_duration_seconds_count{job=\"analytics\",endpoint=\"/v1/sites/{site}/aggregate\",outcome=\"ok\"}", v => v >= 1, asWritten: true);
        Assert.Empty(await prometheus.QueryAsync($"{{__name__=~\"analytics_.*\",endpoint=~\".*{host.Site.PublicId}.*\"}}", Ct));
    }
}
