using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Validation;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>Every limit answers with its documented close code or status, over real sockets.</summary>
public class LimitsTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<WebSocketCloseStatus?> WaitForCloseAsync(ClientWebSocket socket)
    {
        var buffer = new byte[1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, Ct);
            if (result.MessageType == WebSocketMessageType.Close) return result.CloseStatus;
        }
    }

    [Fact]
    public async Task A_message_over_the_size_limit_closes_the_socket_with_1009()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var huge = new byte[IngestLimits.Default.MaxMessageBytes + 1];
        await socket.SendAsync(huge, WebSocketMessageType.Binary, true, Ct);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, await WaitForCloseAsync(socket));
    }

    [Fact]
    public async Task A_message_of_exactly_the_size_limit_is_accepted()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        batch.Events.Add(Wire.Pageview());
        // Pad with an unknown field (number 100) up to the limit exactly.
        int padding = IngestLimits.Default.MaxMessageBytes - batch.CalculateSize() - 2 - 3; // 2-byte tag, 3-byte length
        var output = new MemoryStream();
        var o = new CodedOutputStream(output);
        batch.WriteTo(o);
        o.WriteTag(100, WireFormat.WireType.LengthDelimited);
        o.WriteBytes(ByteString.CopyFrom(new byte[padding]));
        o.Flush();
        var bytes = output.ToArray();
        Assert.Equal(IngestLimits.Default.MaxMessageBytes, bytes.Length);
        await socket.SendAsync(bytes, WebSocketMessageType.Binary, true, Ct);
        Assert.Equal(1u, (await Wire.ReceiveAckAsync(socket)).Accepted);
    }

    [Fact]
    public async Task A_text_message_closes_the_socket_with_1003()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        await socket.SendAsync("{\"events\":[]}"u8.ToArray(), WebSocketMessageType.Text, true, Ct);
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, await WaitForCloseAsync(socket));
    }

    [Fact]
    public async Task An_undecodable_batch_closes_the_socket_with_1007()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        await socket.SendAsync(new byte[] { 0x0A, 0xFF, 0xFF }, WebSocketMessageType.Binary, true, Ct);
        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, await WaitForCloseAsync(socket));
    }

    [Fact]
    public async Task An_unknown_site_key_is_answered_unknown_site_and_nothing_is_kept()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = "nobody-has-this-key", Seq = 4 };
        batch.Events.Add(Wire.Pageview());
        var ack = await Wire.SendAsync(socket, batch);
        Assert.Equal(AckStatus.UnknownSite, ack.Status);
        Assert.Equal(0u, ack.Accepted);
        // The socket stays usable for a correct batch.
        batch.SiteKey = host.Site.SiteKey;
        Assert.Equal(1u, (await Wire.SendAsync(socket, batch)).Accepted);
    }

    [Fact]
    public async Task Http_errors_have_specific_statuses()
    {
        await using var host = await TestHost.StartAsync(engine);
        async Task<HttpResponseMessage> Post(byte[] body, string contentType)
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new(contentType);
            return await host.Http.PostAsync("/v1/events", content, Ct);
        }
        var valid = new EventBatch { SiteKey = host.Site.SiteKey };
        valid.Events.Add(Wire.Pageview());

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await Post(valid.ToByteArray(), "application/json")).StatusCode);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await Post(new byte[IngestLimits.Default.MaxMessageBytes + 1], "application/x-protobuf")).StatusCode);
        var malformed = await Post([0x0A, 0xFF, 0xFF], "application/x-protobuf");
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal("application/problem+json", malformed.Content.Headers.ContentType?.MediaType);
        var unknown = new EventBatch { SiteKey = "nope" };
        unknown.Events.Add(Wire.Pageview());
        var forbidden = await Post(unknown.ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal(AckStatus.UnknownSite, Ack.Parser.ParseFrom(await forbidden.Content.ReadAsByteArrayAsync(Ct)).Status);
        // sendBeacon can only send CORS-safelisted types: text/plain is accepted too.
        Assert.Equal(HttpStatusCode.OK, (await Post(valid.ToByteArray(), "text/plain")).StatusCode);
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/events");
        var answer = await host.Http.SendAsync(preflight, Ct);
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
    }

    [Fact]
    public async Task Rejections_are_counted_by_reason_in_metrics()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = host.Site.SiteKey };
        var bad = Wire.Pageview();
        bad.Id = ByteString.CopyFrom(new byte[3]);
        batch.Events.Add(bad);
        await Wire.SendAsync(socket, batch);
        Assert.Equal(1, await host.MetricAsync("analytics_ingest_events_rejected_total{reason=\"InvalidId\"}"));
    }

    [Theory]
    [InlineData("metrics=", "metrics is required")]
    [InlineData("metrics=pageviews,bounce", "unknown metric 'bounce'")]
    [InlineData("metrics=pageviews&interval=week", "interval: 'week'")]
    [InlineData("metrics=pageviews&tz=Mars/Olympus", "unknown time zone")]
    [InlineData("metrics=pageviews&from=yesterday", "from: 'yesterday'")]
    [InlineData("metrics=pageviews&from=2026-02-01&to=2026-01-01", "must be before")]
    [InlineData("metrics=pageviews&interval=minute&from=2020-01-01&to=2026-01-01", "more than 10000 buckets")]
    [InlineData("metrics=pageviews&merchant=2", "merchant: unknown parameter")]
    [InlineData("metrics=pageviews&to=9999-12-31", "to: '9999-12-31' is outside the years")]
    [InlineData("metrics=pageviews&to=0001-01-01T00:00:00Z", "to: '0001-01-01T00:00:00Z' is outside the years")]
    [InlineData("metrics=pageviews&from=0001-01-01&to=2026-01-01", "from: '0001-01-01' is outside the years")]
    [InlineData("metrics=pageviews&from=2026-01-01&to=9999-12-31T23:00:00Z", "to: '9999-12-31T23:00:00Z' is outside the years")]
    public async Task Wrong_query_parameters_get_a_400_saying_what_is_wrong(string query, string message)
    {
        await using var host = await TestHost.StartAsync(engine);
        var response = await host.Http.GetAsync($"/v1/sites/{host.Site.PublicId}/timeseries?{query}", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Contains(message, problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Unknown_sites_are_404()
    {
        await using var host = await TestHost.StartAsync(engine);
        // Neither a well-formed id nobody holds nor an internal (sequential) id names a site.
        foreach (var site in new[] { "aaaaaaaaaaaaaaaa", "999999", host.Site.SiteId.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            var response = await host.Http.GetAsync($"/v1/sites/{site}/aggregate?metrics=pageviews", Ct);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
    }
}

public class RateLimitTests(EngineFixture engine)
{
    [Fact]
    public async Task A_connection_over_its_event_rate_gets_retry_with_a_wait_and_nothing_is_kept()
    {
        var limits = new IngestLimits { MaxEventsPerSecondPerConnection = 100, EventBurstPerConnection = 100 };
        await using var host = await TestHost.StartAsync(engine, limits);
        using var socket = await host.ConnectAsync();
        var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 1 };
        for (int i = 0; i < 80; i++) batch.Events.Add(Wire.Pageview("/" + i));
        Assert.Equal(80u, (await Wire.SendAsync(socket, batch)).Accepted);

        var second = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 2 };
        for (int i = 0; i < 80; i++) second.Events.Add(Wire.Pageview("/" + i));
        var refused = await Wire.SendAsync(socket, second);
        Assert.Equal(AckStatus.Retry, refused.Status);
        Assert.Equal(0u, refused.Accepted);
        Assert.InRange(refused.RetryAfterMs, 1u, 600u); // at most 60 missing events at 100/s

        await Task.Delay((int)refused.RetryAfterMs + 50, TestContext.Current.CancellationToken);
        Assert.Equal(80u, (await Wire.SendAsync(socket, second)).Accepted);
        var totals = await host.WaitForAggregateAsync(t => t["pageviews"] >= 160);
        Assert.Equal(160, totals["pageviews"]);
        Assert.Equal(1, await host.MetricAsync("analytics_ingest_batches_rate_limited_total"));
    }
}
