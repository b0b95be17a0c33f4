using System.Net;
using System.Net.Http.Headers;
using Analytics.Contracts.V1;
using Analytics.Tests.Shared;
using Google.Protobuf;

namespace Analytics.FastIngest.Tests;

/// <summary>A control plane whose store fails, over real sockets: RETRY / 503, counted, the socket kept.</summary>
public sealed class ControlPlaneFailureTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static EventBatch Batch(string key, ulong seq)
    {
        var batch = new EventBatch { SiteKey = key, Seq = seq };
        batch.Events.Add(Samples.ValidPageview());
        return batch;
    }

    private static async Task<HttpResponseMessage> PostAsync(HttpClient http, EventBatch batch)
    {
        var content = new ByteArrayContent(batch.ToByteArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        return await http.PostAsync("v1/events", content, Ct);
    }

    private static async Task<HttpResponseMessage> PreflightAsync(HttpClient http, string key)
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "v1/events?site=" + key);
        preflight.Headers.Add("Origin", "https://shop.example");
        return await http.SendAsync(preflight, Ct);
    }

    [Fact]
    public async Task A_failing_key_lookup_answers_retry_on_the_socket_503_over_http_and_is_counted()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        await using var server = await IngestServer.StartAsync(store);
        script.FailKeys = true;
        using var socket = await server.ConnectAsync();
        for (ulong seq = 1; seq <= 2; seq++)
        {
            var ack = await IngestServer.SendAsync(socket, Batch("some-key", seq));
            Assert.Equal((AckStatus.Retry, RetryReason.ControlPlaneUnavailable, seq, 1000u), (ack.Status, ack.RetryReason, ack.Seq, ack.RetryAfterMs));
        }

        using var http = new HttpClient { BaseAddress = server.Http };
        using var response = await PostAsync(http, Batch("some-key", 3));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        Assert.Equal(RetryReason.ControlPlaneUnavailable, Ack.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync(Ct)).RetryReason);

        using var preflighted = await PreflightAsync(http, "some-key");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, preflighted.StatusCode);
        Assert.Equal(4, server.Metrics.RefusedCount(BatchRefusal.ControlPlaneUnavailable));

        // The store is back: the same socket is served.
        script.FailKeys = false;
        var ok = await IngestServer.SendAsync(socket, Batch(ScriptedControlPlaneStore.KnownSite.SiteKey, 5));
        Assert.Equal((AckStatus.Ok, 1u), (ok.Status, ok.Accepted));
    }

    [Fact]
    public async Task A_failing_salt_lookup_at_the_day_change_answers_retry_and_keeps_nothing()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        await using var server = await IngestServer.StartAsync(store);
        script.FailSalt = true;
        using var socket = await server.ConnectAsync();
        var ack = await IngestServer.SendAsync(socket, Batch(ScriptedControlPlaneStore.KnownSite.SiteKey, 1));
        Assert.Equal((AckStatus.Retry, RetryReason.ControlPlaneUnavailable, 0u), (ack.Status, ack.RetryReason, ack.Accepted));
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.ControlPlaneUnavailable));
        Assert.Equal(0, server.Metrics.AcceptedEvents);
    }

    [Fact]
    public async Task A_preflight_with_a_key_not_in_the_key_format_gets_400_without_a_lookup()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        await using var server = await IngestServer.StartAsync(store);
        using var http = new HttpClient { BaseAddress = server.Http };
        foreach (string key in new[] { "has%20space", "dot.dot", new string('k', 65), "%C3%A9t%C3%A9" })
        {
            using var response = await PreflightAsync(http, key);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }
        Assert.Equal(0, script.KeyLookups);
        Assert.Equal(4, server.Metrics.RefusedCount(BatchRefusal.PreflightMalformedSiteKey));
    }
}
