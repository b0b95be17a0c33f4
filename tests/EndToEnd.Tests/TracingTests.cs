using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Analytics.EventLog.Kafka;
using Analytics.Host;
using OpenTelemetry.Trace;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// One trace from the browser's request to Rollup: a WebSocket client sends a W3C traceparent
/// with its upgrade request; OpenTelemetry's in-memory exporter collects the host's spans. Each
/// batch's "ingest.batch" span belongs to the client's trace, its "log.append" span is the batch's
/// child, and a "rollup.round" span links to every batch whose records it stored, through the local
/// log's record field and through Kafka's headers (librdkafka's mock cluster).
/// </summary>
public sealed class TracingTests(EngineFixture engine) : IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly MockKafkaCluster _cluster = MockKafkaCluster.Start(brokers: 1);

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public Task The_trace_goes_from_the_websocket_request_through_the_local_log_into_a_linked_rollup_round() =>
        TraceChainAsync(kafka: null);

    [Fact]
    public Task The_trace_goes_from_the_websocket_request_through_kafka_headers_into_a_linked_rollup_round()
    {
        string topic = "traced-" + Guid.NewGuid().ToString("N")[..8];
        _cluster.CreateTopic(topic, partitions: 2, replicationFactor: 1);
        return TraceChainAsync(new KafkaLogOptions
        {
            BootstrapServers = _cluster.BootstrapServers,
            Topic = topic,
            DeliveryTimeout = TimeSpan.FromSeconds(5),
            SessionTimeout = TimeSpan.FromSeconds(6),
        });
    }

    private async Task TraceChainAsync(KafkaLogOptions? kafka)
    {
        var spans = new LockedCollection<Activity>();
        await using var host = await TestHost.StartAsync(engine, kafka: kafka,
            telemetry: new TelemetrySettings { ConfigureTracing = t => t.AddInMemoryExporter(spans) });
        var traceId = ActivityTraceId.CreateRandom();
        var clientSpan = ActivitySpanId.CreateRandom();

        const int batches = 3, eventsPerBatch = 5;
        using (var socket = await host.ConnectAsync(TestHost.BrowserUserAgent, ("traceparent", $"00-{traceId}-{clientSpan}-01")))
        {
            for (int b = 0; b < batches; b++)
            {
                var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = (ulong)b };
                for (int e = 0; e < eventsPerBatch; e++) batch.Events.Add(Wire.Pageview("/t/" + e));
                Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, batch)).Status);
            }
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        await host.WaitForAggregateAsync(r => r["events"] == batches * eventsPerBatch);

        // Spans end (and are exported) a moment after the work they describe.
        List<Activity> ingest = [], appends = [], rounds = [];
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var all = spans.Snapshot();
            ingest = all.Where(s => s.OperationName == "ingest.batch" && s.TraceId == traceId).ToList();
            var batchSpans = ingest.Select(s => s.SpanId).ToHashSet();
            appends = all.Where(s => s.OperationName == "log.append" && batchSpans.Contains(s.ParentSpanId)).ToList();
            rounds = all.Where(s => s.OperationName == "rollup.round" && s.Links.Any(l => batchSpans.Contains(l.Context.SpanId))).ToList();
            if (ingest.Count == batches && appends.Count == batches
                && batchSpans.All(id => rounds.Any(r => r.Links.Any(l => l.Context.SpanId == id)))) break;
            await Task.Delay(100, Ct);
        }

        // ingest: one span per batch, in the client's trace (under the upgrade request's span).
        Assert.Equal(batches, ingest.Count);
        var request = spans.Snapshot().Single(s => s.TraceId == traceId && s.Source.Name == "Microsoft.AspNetCore");
        Assert.Equal(clientSpan, request.ParentSpanId);
        Assert.All(ingest, s => Assert.Equal(request.SpanId, s.ParentSpanId));
        Assert.All(ingest, s => Assert.Equal(eventsPerBatch, s.GetTagItem("analytics.accepted")));
        // log append: the batch's child, in the same trace.
        Assert.Equal(batches, appends.Count);
        Assert.All(appends, s => Assert.Equal(traceId, s.TraceId));
        Assert.All(appends, s => Assert.Equal(kafka is null ? "local" : "kafka", s.GetTagItem("messaging.system")));
        // rollup round: a trace of its own, linked to every batch it stored.
        Assert.NotEmpty(rounds);
        Assert.All(rounds, r => Assert.NotEqual(traceId, r.TraceId));
        Assert.All(ingest, s => Assert.Contains(rounds, r => r.Links.Any(l => l.Context.TraceId == traceId && l.Context.SpanId == s.SpanId)));
        Assert.Equal(batches * eventsPerBatch, rounds.Sum(r => (int)r.GetTagItem("analytics.stored")!));
    }

    /// <summary>The exporter adds from the threads that end spans; the test reads snapshots.</summary>
    private sealed class LockedCollection<T> : Collection<T>
    {
        protected override void InsertItem(int index, T item)
        {
            lock (this) base.InsertItem(index, item);
        }

        public List<T> Snapshot()
        {
            lock (this) return [.. this];
        }
    }
}
