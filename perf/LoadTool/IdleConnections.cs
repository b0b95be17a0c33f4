using System.Net.WebSockets;

namespace Analytics.LoadTool;

/// <summary>
/// Memory per idle connection: the server's RSS growth from before opening N WebSockets to /v1/ws
/// to after they are all open and settled, divided by N. What a site with many open tabs costs.
/// </summary>
public static class IdleConnections
{
    public sealed record Result(int Connections, long RssBeforeBytes, long RssAfterBytes, double BytesPerConnection);

    public static async Task<Result> RunAsync(Uri baseAddress, Func<long> serverRss, int count, CancellationToken ct)
    {
        var ws = new UriBuilder(baseAddress) { Scheme = "ws", Path = "/v1/ws" }.Uri;
        GC.Collect();
        await Task.Delay(1000, ct);
        long before = serverRss();
        var sockets = new List<ClientWebSocket>(count);
        try
        {
            // Connect in small waves: a burst of 10k handshakes only measures the accept queue.
            for (int i = 0; i < count; i += 200)
            {
                var wave = Enumerable.Range(i, Math.Min(200, count - i)).Select(async _ =>
                {
                    var socket = new ClientWebSocket();
                    socket.Options.SetRequestHeader("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36");
                    await socket.ConnectAsync(ws, ct);
                    return socket;
                });
                sockets.AddRange(await Task.WhenAll(wave));
            }
            await Task.Delay(2000, ct);
            long after = serverRss();
            return new Result(count, before, after, (after - before) / (double)count);
        }
        finally
        {
            foreach (var socket in sockets) socket.Abort();
            foreach (var socket in sockets) socket.Dispose();
        }
    }
}
