using System.Diagnostics;
using System.Net;
using Analytics.Contracts.V1;
using Analytics.EventLog.Kafka;
using Analytics.Host;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The circuit breakers with real faults: the embedded ClickHouse engine losing the table the
/// query API and Rollup use (DETACH TABLE, then ATTACH), every broker of librdkafka's mock
/// cluster stopped, and the local log's file system full (a 4 MiB tmpfs filled to the last
/// byte). While a breaker is open callers get fast 503s with Retry-After (a RETRY ack on the
/// WebSocket), /healthz names the dependency and /readyz is 503 with the reason; after the fault
/// clears the next probe closes it and readiness is back, with no restart; every event
/// acknowledged before, during and after is counted exactly once.
/// </summary>
public sealed class CircuitBreakerTests(EngineFixture engine) : IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly CircuitBreakerSettings Fast = new() { MinimumThroughput = 3, BreakDuration = TimeSpan.FromSeconds(1), SamplingDuration = TimeSpan.FromSeconds(5) };
    private readonly MockKafkaCluster _cluster = MockKafkaCluster.Start(brokers: 3);

    public void Dispose() => _cluster.Dispose();

    private static async Task<HttpResponseMessage> PostAsync(TestHost host, int events)
    {
        var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 1 };
        for (int i = 0; i < events; i++) batch.Events.Add(Wire.Pageview("/b" + i));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent(batch.ToByteArray()) };
        request.Content.Headers.ContentType = new("application/x-protobuf");
        request.Headers.TryAddWithoutValidation("User-Agent", TestHost.BrowserUserAgent);
        return await host.Http.SendAsync(request, Ct);
    }

    private static Task<HttpResponseMessage> QueryAsync(TestHost host) =>
        host.Http.GetAsync($"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews&from={DateTime.UtcNow.AddDays(-1):yyyy-MM-dd}&to={DateTime.UtcNow.AddDays(1):yyyy-MM-dd}", Ct);

    private static async Task<(HttpStatusCode Status, string Body)> HealthAsync(TestHost host)
    {
        using var response = await host.Http.GetAsync("/healthz", Ct);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
    }

    private static async Task<(HttpStatusCode Status, string Body)> ReadyAsync(TestHost host)
    {
        using var response = await host.Http.GetAsync("/readyz", Ct);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
    }

    /// <summary>Readiness turns false (naming <paramref name="reason"/>) while the breaker refuses.
    /// Polled: it is true again once the break is over, which a slow machine may reach first if
    /// no call reopened the breaker meanwhile, so the caller keeps the fault hit.</summary>
    private static async Task<string> WaitNotReadyAsync(TestHost host, string reason, Func<Task> hit)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var (status, body) = await ReadyAsync(host);
            if (status == HttpStatusCode.ServiceUnavailable && body.Contains(reason, StringComparison.Ordinal)) return body;
            Assert.True(DateTime.UtcNow < deadline, $"/readyz not 503 with '{reason}' within 10 s; last: {(int)status} {body}");
            await hit();
        }
    }

    private static Task WaitReadyAsync(TestHost host) =>
        WaitUntilAsync(async () => (await ReadyAsync(host)) == (HttpStatusCode.OK, "ready"), "readiness true again", seconds: 10);

    /// <summary>The half-open probe is an ordinary batch: sends one until it is accepted; returns
    /// the events acknowledged.</summary>
    private static async Task<long> WaitAcceptedAgainAsync(TestHost host)
    {
        await WaitUntilAsync(async () => (await PostAsync(host, 2)).StatusCode == HttpStatusCode.OK, "ingest accepted again");
        return 2;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} not within {seconds} s");
            await Task.Delay(100, Ct);
        }
    }

    /// <summary>Sends 20 requests while the breaker is open, checks each answer, and asserts they were fast. After each
    /// break duration spent open the breaker lets one trial through to the broken dependency (half-open), and that one
    /// waits out the dependency's own timeout; so slow requests are allowed one per break duration spent outside them
    /// (the time the breaker was open), plus one for a break that began before the first request, and the rest must
    /// each be answered under <paramref name="limitMs"/>. A breaker that never opened fails: its slow requests leave
    /// no open time. Returns the median.</summary>
    private static async Task<double> AssertFastRefusalsAsync(Func<Task<HttpResponseMessage>> send, Action<HttpResponseMessage> check, double limitMs, string what)
    {
        var each = new List<double>();
        var all = Stopwatch.StartNew();
        for (int i = 0; i < 20; i++)
        {
            var one = Stopwatch.StartNew();
            var r = await send();
            each.Add(one.Elapsed.TotalMilliseconds);
            check(r);
        }
        var slow = each.Where(ms => ms >= limitMs).ToList();
        double openMs = all.Elapsed.TotalMilliseconds - slow.Sum();
        int trials = 1 + (int)(openMs / Fast.BreakDuration.TotalMilliseconds);
        Assert.True(slow.Count <= trials, $"{slow.Count} of 20 {what} took ≥ {limitMs} ms ({string.Join(", ", slow.Select(ms => ms.ToString("0")))}), more than the {trials} half-open trial(s) {openMs:0} ms open allow");
        return each.Order().ElementAt(each.Count / 2);
    }

    [Fact]
    public async Task A_failing_store_gets_fast_503s_on_the_query_api_and_recovers_without_a_restart_losing_no_acknowledged_event()
    {
        await using var host = await TestHost.StartAsync(engine, breakers: Fast);
        long acked = 0;
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(host, 5)).StatusCode);
        acked += 5;
        await host.WaitForAggregateAsync(t => t["pageviews"] == acked);

        // The fault: the daily rollup (read by the aggregate API over whole days, written by Rollup) is gone.
        var store = ((BreakerColumnStore)host.App.Services.GetRequiredService<IColumnStore>()).Inner;
        await store.ExecuteAsync($"DETACH TABLE {host.Database}.rollup_day", Ct);
        // Failures must outweigh the successes still in the sampling window before the breaker opens.
        HttpResponseMessage? refused = null;
        string seen = "";
        var until = DateTime.UtcNow.AddSeconds(15);
        while (refused is null && DateTime.UtcNow < until)
        {
            var r = await QueryAsync(host);
            seen = $"{(int)r.StatusCode} {await r.Content.ReadAsStringAsync(Ct)}";
            if (r.StatusCode == HttpStatusCode.ServiceUnavailable && r.Headers.RetryAfter is not null) refused = r;
            else await Task.Delay(50, Ct);
        }
        Assert.True(refused is not null, "no 503 within 15 s; last answer: " + seen);
        var (status, body) = await HealthAsync(host);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("unavailable: store: circuit open", body);
        Assert.Contains("ClickHouse error 60 (UNKNOWN_TABLE)", body);
        Assert.DoesNotContain(host.Database, body); // /healthz is public: no statement, no tenant
        string notReady = await WaitNotReadyAsync(host, "store: circuit open: ClickHouse error 60 (UNKNOWN_TABLE)", () => QueryAsync(host));
        Assert.DoesNotContain(host.Database, notReady);

        // Open: answered without the engine, fast.
        double msPerRefusal = await AssertFastRefusalsAsync(() => QueryAsync(host),
            r => Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode), limitMs: 50, "refused queries");
        TestContext.Current.TestOutputHelper?.WriteLine($"store open: {msPerRefusal:0.00} ms per 503 (median); /healthz: {body.Trim()}");

        // Ingest goes on (the log is fine): these events wait in the log for the store.
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(host, 7)).StatusCode);
        acked += 7;

        await store.ExecuteAsync($"ATTACH TABLE {host.Database}.rollup_day", Ct);
        // The half-open probe is an ordinary statement (a query here, or Rollup's next round).
        await WaitUntilAsync(async () => (await QueryAsync(host)).IsSuccessStatusCode, "store breaker closed");
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= acked);
        Assert.Equal(acked, totals["pageviews"]);
        Assert.Equal("ok", (await HealthAsync(host)).Body);
        await WaitReadyAsync(host);
    }

    [Fact]
    public async Task Queries_the_engine_refuses_for_themselves_do_not_open_the_store_breaker()
    {
        await using var host = await TestHost.StartAsync(engine, breakers: Fast);
        for (int i = 0; i < 10; i++)
        {
            using var content = new StringContent($$"""{"site_id":"{{host.Site.PublicId}}","date_range":"7d","metrics":["visitors"],"filters":[["matches","page",["(unclosed{{i}}"]]]}""",
                System.Text.Encoding.UTF8, "application/json");
            using var response = await host.Http.PostAsync("/v1/query", content, Ct);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }
        Assert.Equal((HttpStatusCode.OK, "ok"), await HealthAsync(host));
        Assert.Equal(HttpStatusCode.OK, (await QueryAsync(host)).StatusCode);
    }

    [Fact]
    public async Task A_full_disk_under_the_local_log_gets_fast_503s_and_retry_acks_and_recovers_without_a_restart_losing_no_acknowledged_event()
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-e2e-disk-" + Guid.NewGuid().ToString("N"));
        try
        {
            // Declared first, disposed last: the host closes its files before the unmount.
            using var disk = TmpfsMount.Create(Path.Combine(data, "log"), megabytes: 4);
            await using var host = await TestHost.StartAsync(engine, breakers: Fast, dataDirectory: data);
            host.KeepData = true; // removed below, after the unmount
            long acked = 0;
            Assert.Equal(HttpStatusCode.OK, (await PostAsync(host, 5)).StatusCode);
            acked += 5;
            await host.WaitForAggregateAsync(t => t["pageviews"] == acked);

            string filler = Path.Combine(disk.Directory, "filler");
            long filled = TmpfsMount.Fill(filler);
            // The log's last page of tmpfs memory is already allocated: batches that still fit in
            // it are written, durable and acknowledged. Then each batch fails in the log itself
            // (its write), until the failures outweigh the successes in the breaker's window.
            int refused = 0;
            for (int i = 0; (await HealthAsync(host)).Status == HttpStatusCode.OK; i++)
            {
                Assert.True(i < 500, "the breaker is still closed after 500 batches on a full file system");
                var r = await PostAsync(host, 1);
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    Assert.Equal(0, refused);
                    acked += 1;
                    continue;
                }
                Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
                Assert.NotNull(r.Headers.RetryAfter);
                refused++;
            }
            var (status, body) = await HealthAsync(host);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Contains("unavailable: event log: circuit open", body);
            string notReady = await WaitNotReadyAsync(host, "event log: circuit open", () => PostAsync(host, 1));

            double msPerRefusal = await AssertFastRefusalsAsync(() => PostAsync(host, 1), r =>
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
                Assert.True(r.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), "Retry-After: " + r.Headers.RetryAfter);
            }, limitMs: 100, "refused batches");
            // The WebSocket's equivalent: a RETRY ack naming the log, with the wait.
            using (var socket = await host.ConnectAsync())
            {
                var ack = await Wire.SendAsync(socket, new EventBatch { SiteKey = host.Site.SiteKey, Seq = 9, Events = { Wire.Pageview("/ws") } });
                Assert.Equal((AckStatus.Retry, RetryReason.LogUnavailable, 9ul, 0u), (ack.Status, ack.RetryReason, ack.Seq, ack.Accepted));
                Assert.True(ack.RetryAfterMs > 0);
            }
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"disk full ({filled:N0} filler bytes): {msPerRefusal:0.00} ms per 503 (median); /healthz: {body.Trim()}; /readyz: {notReady.Trim()}");

            File.Delete(filler);
            acked += await WaitAcceptedAgainAsync(host);
            using (var socket = await host.ConnectAsync())
            {
                var ack = await Wire.SendAsync(socket, new EventBatch { SiteKey = host.Site.SiteKey, Seq = 10, Events = { Wire.Pageview("/ws"), Wire.Pageview("/ws2") } });
                Assert.Equal((AckStatus.Ok, 2u), (ack.Status, ack.Accepted));
                acked += 2;
            }
            Assert.Equal("ok", (await HealthAsync(host)).Body);
            await WaitReadyAsync(host);
            await host.WaitForAggregateAsync(t => t["pageviews"] >= acked);
            await Task.Delay(500, Ct); // a double count would show now
            Assert.Equal(acked, (await host.AggregateAsync())["pageviews"]);
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_stopped_kafka_cluster_gets_fast_503s_at_ingest_and_recovers_without_a_restart_losing_no_acknowledged_event()
    {
        string topic = "events-" + Guid.NewGuid().ToString("N")[..8];
        _cluster.CreateTopic(topic, 3, replicationFactor: 3);
        await using var host = await TestHost.StartAsync(engine, breakers: Fast, kafka: new KafkaLogOptions
        {
            BootstrapServers = _cluster.BootstrapServers,
            Topic = topic,
            DeliveryTimeout = TimeSpan.FromSeconds(2),
            SessionTimeout = TimeSpan.FromSeconds(6),
        });
        long acked = 0;
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(host, 5)).StatusCode);
        acked += 5;

        for (int b = 1; b <= 3; b++) _cluster.SetBrokerDown(b);
        // Until the breaker opens each batch waits out the delivery timeout (2 s) in the producer.
        var slow = Stopwatch.StartNew();
        var first = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => PostAsync(host, 1)));
        Assert.All(first, r => Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode));
        TestContext.Current.TestOutputHelper?.WriteLine($"broker down, breaker closed: {slow.Elapsed.TotalMilliseconds:0} ms for the first refusals");
        var (status, body) = await HealthAsync(host);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("unavailable: event log: circuit open", body);
        await WaitNotReadyAsync(host, "event log: circuit open", () => PostAsync(host, 1));

        // A half-open trial waits out the delivery timeout (2 s); the helper allows one per break duration (1 s).
        double msPerRefusal = await AssertFastRefusalsAsync(() => PostAsync(host, 1), r =>
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
            Assert.NotNull(r.Headers.RetryAfter);
        }, limitMs: 100, "refused batches");
        TestContext.Current.TestOutputHelper?.WriteLine($"log open: {msPerRefusal:0.00} ms per 503 (median); /healthz: {body.Trim()}");

        for (int b = 1; b <= 3; b++) _cluster.SetBrokerUp(b);
        acked += await WaitAcceptedAgainAsync(host);
        Assert.Equal("ok", (await HealthAsync(host)).Body);
        await WaitReadyAsync(host);
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= acked);
        await Task.Delay(500, Ct); // a double count would show now
        Assert.Equal(acked, (await host.AggregateAsync())["pageviews"]);
    }
}

/// <summary>The breaker's cost on ingest's hot path, measured against a log that completes at once
/// (a stand-in for the dependency, not for the breaker under test). In the collection that runs
/// alone: one test counts process-wide bytes, which other test classes running beside it added
/// to (38 B per batch over a 46 ms window, once in a full run).</summary>
[Collection(nameof(IngestAllocationTests))]
public sealed class CircuitBreakerCostTests
{
    private sealed class InstantLog : Analytics.EventLog.IEventLog
    {
        public ValueTask AppendAsync(ulong partitionKey, ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
        public Analytics.EventLog.IEventLogConsumer OpenConsumer(string group) => throw new NotSupportedException();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_closed_event_log_breaker_allocates_nothing_per_batch()
    {
        var breakers = new CircuitBreakers(new CircuitBreakerSettings(), TimeProvider.System);
        var log = new BreakerEventLog(new InstantLog(), breakers.EventLog);
        var records = new byte[64];
        var ct = TestContext.Current.CancellationToken;
        for (int i = 0; i < 1000; i++) await log.AppendAsync(1, records, 1, ct); // warm up (Polly's context pool, tiering)
        const int Batches = 100_000;
        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < Batches; i++) await log.AppendAsync(1, records, 1, ct);
        watch.Stop();
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        TestContext.Current.TestOutputHelper?.WriteLine($"closed breaker: {(double)bytes / Batches:0.00} bytes and {watch.Elapsed.TotalNanoseconds / Batches:0} ns per batch");
        Assert.True(bytes < Batches, $"{bytes} bytes over {Batches} batches");
    }

    /// <summary>Completes every append later, on the thread pool, as the local log's group commit
    /// and Kafka's delivery reports do.</summary>
    private sealed class LaterLog : Analytics.EventLog.IEventLog
    {
        public async ValueTask AppendAsync(ulong partitionKey, ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken = default) => await Task.Yield();
        public Analytics.EventLog.IEventLogConsumer OpenConsumer(string group) => throw new NotSupportedException();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_closed_breaker_adds_nothing_to_appends_that_complete_later()
    {
        // Polly's asynchronous path allocated ~1.3 KB per call here (26 B per event of a 50-event
        // batch); then the breaker's own async frame ~144 B (240 measured with the 96 B of the log
        // alone); now a reused observer, nothing. Process-wide bytes: continuations hop threads.
        var breakers = new CircuitBreakers(new CircuitBreakerSettings(), TimeProvider.System);
        var inner = new LaterLog();
        var log = new BreakerEventLog(inner, breakers.EventLog);
        var records = new byte[64];
        var ct = TestContext.Current.CancellationToken;
        const int Batches = 20_000;
        async Task<double> BytesPerBatch(Analytics.EventLog.IEventLog target)
        {
            for (int i = 0; i < 1000; i++) await target.AppendAsync(1, records, 1, ct);
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < Batches; i++) await target.AppendAsync(1, records, 1, ct);
            return (double)(GC.GetTotalAllocatedBytes(precise: true) - before) / Batches;
        }
        double alone = await BytesPerBatch(inner), behind = await BytesPerBatch(log);
        TestContext.Current.TestOutputHelper?.WriteLine($"append completing later: {alone:0} B per batch alone, {behind:0} B behind the breaker");
        Assert.True(behind - alone < 32, $"the breaker adds {behind - alone:0} B per batch ({alone:0} alone, {behind:0} behind it)");
    }
}
