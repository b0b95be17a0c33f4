using System.Net;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// User-agent client hints travel from the request headers (WebSocket upgrade or HTTP POST)
/// through the log into events_raw, as sent, each cut to 64 bytes; absent hints are empty.
/// </summary>
public class ClientHintsTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Hints_of_the_websocket_upgrade_and_of_an_http_post_are_stored_with_every_event()
    {
        await using var host = await TestHost.StartAsync(engine);

        using (var socket = new ClientWebSocket())
        {
            socket.Options.SetRequestHeader("User-Agent", TestHost.BrowserUserAgent + " ws");
            socket.Options.SetRequestHeader("Sec-CH-UA-Mobile", "?1");
            socket.Options.SetRequestHeader("Sec-CH-UA-Platform", "\"Android\"");
            socket.Options.SetRequestHeader("Sec-CH-UA-Model", "\"Pixel 8\"");
            socket.Options.SetRequestHeader("Sec-CH-UA-Form-Factors", "\"Mobile\"");
            await socket.ConnectAsync(host.WebSocketUri, Ct);
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            batch.Events.Add(Wire.Pageview("/ws-1"));
            batch.Events.Add(Wire.Pageview("/ws-2"));
            Assert.Equal(2u, (await Wire.SendAsync(socket, batch)).Accepted);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }

        var post = new EventBatch { SiteKey = host.Site.SiteKey };
        post.Events.Add(Wire.Pageview("/http"));
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent(post.ToByteArray()) })
        {
            request.Content.Headers.ContentType = new("application/x-protobuf");
            request.Headers.UserAgent.ParseAdd(TestHost.BrowserUserAgent);
            request.Headers.Add("Sec-CH-UA-Mobile", "?0");
            request.Headers.Add("Sec-CH-UA-Platform", "\"Windows\"");
            request.Headers.Add("Sec-CH-UA-Model", "\"" + new string('m', 200) + "\""); // hostile length: cut
            using var response = await host.Http.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var bare = await host.ConnectAsync(TestHost.BrowserUserAgent + " bare"))
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            batch.Events.Add(Wire.Pageview("/bare"));
            Assert.Equal(1u, (await Wire.SendAsync(bare, batch)).Accepted);
            await bare.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }

        await host.WaitForAggregateAsync(t => t["pageviews"] >= 4);
        var rows = await engine.Store.QueryRowsAsync(
            $"SELECT url, ch_ua_mobile, ch_ua_platform, ch_ua_model, ch_ua_form_factors FROM {host.Database}.events_raw ORDER BY url", Ct);
        var byPath = rows.ToDictionary(r => new Uri(r[0].GetString()!).AbsolutePath, r => r.Skip(1).Select(v => v.GetString()!).ToArray());
        Assert.Equal(["", "", "", ""], byPath["/bare"]);
        Assert.Equal(["?0", "\"Windows\"", "\"" + new string('m', 63), ""], byPath["/http"]);
        Assert.Equal(["?1", "\"Android\"", "\"Pixel 8\"", "\"Mobile\""], byPath["/ws-1"]);
        Assert.Equal(byPath["/ws-1"], byPath["/ws-2"]);
    }
}
