using System.Net.Sockets;
using Analytics.FastIngest.Validation;
using Analytics.Tests.Shared;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// A WebSocket peer that sends but never reads: its pongs (and Acks) pile up in the socket's
/// buffers until the server's writes wait. Kestrel's data-rate limits stop at the upgrade, so
/// without a write deadline that wait had no end: the connection (and a drain) was held forever.
/// Now it is dropped after the message deadline and counted as SlowReader.
/// </summary>
public sealed class SlowReaderTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_peer_that_never_reads_is_dropped_after_the_deadline_and_counted()
    {
        var (store, _) = ScriptedControlPlaneStore.Create();
        var timeout = TimeSpan.FromSeconds(2);
        await using var server = await IngestServer.StartAsync(store, new IngestLimits { MessageReceiveTimeout = timeout });
        using var tcp = new TcpClient { ReceiveBufferSize = 4096 };
        var stream = await server.UpgradeRawAsync(tcp);

        // Masked pings of 125 bytes (the mask key 0 leaves the payload as it is), 100 per write,
        // until the server stops taking them; never a byte read.
        var ping = new byte[2 + 4 + 125];
        ping[0] = 0x89;
        ping[1] = 0x80 | 125;
        var chunk = Enumerable.Repeat(ping, 100).SelectMany(p => p).ToArray();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var flood = Task.Run(async () =>
        {
            try
            {
                while (!stop.IsCancellationRequested) await stream.WriteAsync(chunk, stop.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
            {
                // The server dropped the connection (or the test ended): what this test waits for.
            }
        }, Ct);

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (server.Metrics.RefusedCount(BatchRefusal.SlowReader) == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "a peer that never reads was still connected after 60 s");
            await Task.Delay(100, Ct);
        }
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.SlowReader));
        await stop.CancelAsync();
        tcp.Close();
        await flood.WaitAsync(TimeSpan.FromSeconds(10), Ct);
    }
}
