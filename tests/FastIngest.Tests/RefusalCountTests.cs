using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Analytics.Tests.Shared;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// Every refusal that is not an Ack is counted under its own reason of
/// analytics_ingest_refused_total, over real sockets: a text WebSocket message (1003), a frame
/// against the protocol (1002), a GET of /v1/ws without an upgrade (400), a POST of another
/// content type (415), and WebSocket and HTTP while the node drains (503). Before, none of these
/// was counted anywhere.
/// </summary>
public sealed class RefusalCountTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Each_refusal_outside_an_ack_is_counted_under_its_reason()
    {
        var (store, _) = ScriptedControlPlaneStore.Create();
        await using var server = await IngestServer.StartAsync(store);

        using (var socket = await server.ConnectAsync())
        {
            await socket.SendAsync("hello"u8.ToArray(), WebSocketMessageType.Text, true, Ct);
            var closed = await socket.ReceiveAsync(new byte[64], Ct);
            Assert.Equal(WebSocketMessageType.Close, closed.MessageType);
            Assert.Equal(WebSocketCloseStatus.InvalidMessageType, socket.CloseStatus);
        }
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.WebSocketTextMessage));

        Assert.Equal(1002, await UnmaskedFrameCloseCodeAsync(server));
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.WebSocketProtocolError));

        using var http = new HttpClient { BaseAddress = server.Http };
        using (var plainGet = await http.GetAsync("v1/ws", Ct)) Assert.Equal(HttpStatusCode.BadRequest, plainGet.StatusCode);
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.UpgradeRequired));

        using (var json = await http.PostAsync("v1/events", new StringContent("{}", Encoding.UTF8, "application/json"), Ct))
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.UnsupportedContentType));

        server.Drain.Begin();
        using (var post = await http.PostAsync("v1/events", new ByteArrayContent([]) { Headers = { ContentType = new("application/x-protobuf") } }, Ct))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, post.StatusCode);
        using var refused = new ClientWebSocket();
        await Assert.ThrowsAsync<WebSocketException>(() => refused.ConnectAsync(server.WebSocket, Ct));
        Assert.Equal(2, server.Metrics.RefusedCount(BatchRefusal.Draining));
    }

    /// <summary>Upgrades by hand and sends a binary frame without the mask every client frame must
    /// have (RFC 6455 5.1); returns the close code the server answers with.</summary>
    private static async Task<int> UnmaskedFrameCloseCodeAsync(IngestServer server)
    {
        using var tcp = new TcpClient();
        var stream = await server.UpgradeRawAsync(tcp);
        await stream.WriteAsync(new byte[] { 0x82, 0x01, 0x00 }, Ct); // FIN + binary, length 1, no mask bit
        var frame = new byte[4];
        await stream.ReadExactlyAsync(frame, Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(0x88, frame[0]); // FIN + close
        return frame[2] << 8 | frame[3];
    }
}
