using System.Net;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Real WebSocket clients → FastIngest → local log → Rollup → chDB → query API, in one host.
/// </summary>
public class IngestToQueryTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Thousands_of_events_over_several_connections_are_counted_exactly_as_acknowledged()
    {
        await using var host = await TestHost.StartAsync(engine);
        const int connections = 6, batchesPerConnection = 40, eventsPerBatch = 25;
        long acceptedPageviews = 0, acceptedCustom = 0, rejected = 0;

        var clients = Enumerable.Range(0, connections).Select(async c =>
        {
            // Each connection is one browser: its own User-Agent, so its own visitor.
            using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent + " client/" + c);
            for (int b = 0; b < batchesPerConnection; b++)
            {
                var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = (ulong)b };
                var sentKinds = new List<string>();
                for (int e = 0; e < eventsPerBatch; e++)
                {
                    Event evt = (e % 10) switch
                    {
                        0 => Wire.Custom("signup"),
                        7 => Wire.Pageview(),
                        _ => Wire.Pageview("/p/" + e),
                    };
                    if (e % 10 == 7) evt.Url = "not-a-url"; // invalid: rejected alone
                    batch.Events.Add(evt);
                    sentKinds.Add(e % 10 == 0 ? "custom" : e % 10 == 7 ? "bad" : "pageview");
                }
                var ack = await Wire.SendAsync(socket, batch);
                Assert.Equal(AckStatus.Ok, ack.Status);
                Assert.Equal((ulong)b, ack.Seq);
                var rejectedIndexes = ack.Rejections.Select(r => (int)r.Index).ToHashSet();
                Assert.All(ack.Rejections, r => Assert.Equal(RejectionReason.UrlInvalid, r.Reason));
                for (int i = 0; i < sentKinds.Count; i++)
                {
                    Assert.Equal(sentKinds[i] == "bad", rejectedIndexes.Contains(i));
                    if (rejectedIndexes.Contains(i)) continue;
                    if (sentKinds[i] == "custom") Interlocked.Increment(ref acceptedCustom);
                    else Interlocked.Increment(ref acceptedPageviews);
                }
                Interlocked.Add(ref rejected, ack.Rejected);
                Assert.Equal((uint)eventsPerBatch, ack.Accepted + ack.Rejected);
            }
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        });
        await Task.WhenAll(clients);

        long accepted = acceptedPageviews + acceptedCustom;
        Assert.Equal(connections * batchesPerConnection * eventsPerBatch, accepted + rejected);
        var totals = await host.WaitForAggregateAsync(t => t["events"] >= accepted);
        Assert.Equal(accepted, totals["events"]);
        Assert.Equal(acceptedPageviews, totals["pageviews"]);
        Assert.Equal(connections, totals["visitors"]);
        Assert.Equal(connections, totals["visits"]);

        var signups = await host.AggregateAsync("events");
        Assert.Equal(accepted, signups["events"]);
        var onlySignups = await host.Http.GetStringAsync($"/v1/sites/{host.Site.PublicId}/aggregate?metrics=events,visitors&event=signup&from={DateTime.UtcNow:yyyy-MM-dd}&to={DateTime.UtcNow:yyyy-MM-dd}", Ct);
        Assert.Contains($"\"events\":{acceptedCustom}", onlySignups);
    }

    [Fact]
    public async Task Numbers_are_visible_within_seconds_of_the_ack()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        batch.Events.Add(Wire.Pageview());
        var ack = await Wire.SendAsync(socket, batch);
        var acked = DateTime.UtcNow;
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] == 1);
        var delay = DateTime.UtcNow - acked;
        Assert.Equal(1, totals["pageviews"]);
        Assert.True(delay < TimeSpan.FromSeconds(10), $"visible after {delay.TotalMilliseconds:0} ms");
        TestContext.Current.TestOutputHelper?.WriteLine($"visible {delay.TotalMilliseconds:0} ms after the ack");
        Assert.Equal(1u, ack.Accepted);
    }

    [Fact]
    public async Task Resending_a_batch_after_a_lost_ack_counts_its_events_once()
    {
        await using var host = await TestHost.StartAsync(engine);
        var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 1 };
        for (int i = 0; i < 10; i++) batch.Events.Add(Wire.Pageview("/" + i));

        using (var first = await host.ConnectAsync()) Assert.Equal(10u, (await Wire.SendAsync(first, batch)).Accepted);
        // Wait until the first copy is stored, so the resend is checked against the store,
        // then resend on a new connection (what an agent does when the ack was lost).
        await host.WaitForAggregateAsync(t => t["pageviews"] == 10);
        using (var second = await host.ConnectAsync()) Assert.Equal(10u, (await Wire.SendAsync(second, batch)).Accepted);
        // And a copy in the same log round as another new event.
        using (var third = await host.ConnectAsync())
        {
            var again = batch.Clone();
            again.Events.Add(Wire.Pageview("/new"));
            Assert.Equal(11u, (await Wire.SendAsync(third, again)).Accepted);
        }

        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= 11);
        await Task.Delay(1000, Ct); // give a wrong double count the time to show
        totals = await host.AggregateAsync();
        Assert.Equal(11, totals["pageviews"]);
    }

    [Fact]
    public async Task A_batch_fragmented_at_every_byte_boundary_is_read_as_one_message()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var template = new EventBatch { SiteKey = host.Site.SiteKey };
        template.Events.Add(Wire.Pageview("/fragmented"));
        int length = template.ToByteArray().Length;
        for (int split = 1; split < length; split++)
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = (ulong)split };
            batch.Events.Add(Wire.Pageview("/fragmented"));
            var bytes = batch.ToByteArray();
            int cut = Math.Min(split, bytes.Length - 1);
            await socket.SendAsync(bytes.AsMemory(0, cut), WebSocketMessageType.Binary, false, Ct);
            await socket.SendAsync(bytes.AsMemory(cut), WebSocketMessageType.Binary, true, Ct);
            var ack = await Wire.ReceiveAckAsync(socket);
            Assert.Equal(AckStatus.Ok, ack.Status);
            Assert.Equal((ulong)split, ack.Seq);
            Assert.Equal(1u, ack.Accepted);
        }
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= length - 1);
        Assert.Equal(length - 1, totals["pageviews"]);
    }

    [Fact]
    public async Task Bots_are_stored_raw_but_not_counted()
    {
        await using var host = await TestHost.StartAsync(engine);
        using (var bot = await host.ConnectAsync("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"))
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            batch.Events.Add(Wire.Pageview());
            Assert.Equal(1u, (await Wire.SendAsync(bot, batch)).Accepted);
        }
        using (var human = await host.ConnectAsync())
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            batch.Events.Add(Wire.Pageview());
            Assert.Equal(1u, (await Wire.SendAsync(human, batch)).Accepted);
        }
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= 1);
        await Task.Delay(500, Ct);
        totals = await host.AggregateAsync();
        Assert.Equal(1, totals["pageviews"]);
        Assert.Equal(1, totals["visitors"]);
    }

    [Fact]
    public async Task Http_post_takes_the_same_batches()
    {
        await using var host = await TestHost.StartAsync(engine);
        var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 77 };
        batch.Events.Add(Wire.Pageview());
        batch.Events.Add(Wire.Custom("signup"));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent(batch.ToByteArray()) };
        request.Content.Headers.ContentType = new("application/x-protobuf");
        request.Headers.UserAgent.ParseAdd(TestHost.BrowserUserAgent);
        // A page of the site's own domain: CORS grants exactly that origin (never "*").
        request.Headers.Add("Origin", "https://shop.example");
        using var response = await host.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("https://shop.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var ack = Ack.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync(Ct));
        Assert.Equal(77ul, ack.Seq);
        Assert.Equal(2u, ack.Accepted);
        var totals = await host.WaitForAggregateAsync(t => t["events"] == 2);
        Assert.Equal(1, totals["pageviews"]);
    }
}
