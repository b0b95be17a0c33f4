using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The host process is killed with SIGKILL while clients are sending, then restarted; clients
/// resend what was not acknowledged, as the agent does. Every event must end up counted exactly
/// once: lost = 0 and double counted = 0.
/// </summary>
public class CrashRecoveryTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Acknowledged_events_survive_sigkill_during_load_exactly_once()
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-crash-" + Guid.NewGuid().ToString("N"));
        int port = Ports.Free();
        var server = new ServerProcess(data, port);
        try
        {
            await server.StartAsync();
            var load = new Load(port, clients: 8, eventsPerBatch: 20);
            var running = load.RunAsync();

            for (int kill = 0; kill < 2; kill++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(1500), Ct);
                long ackedBeforeKill = load.AckedEvents;
                server.Kill();
                TestContext.Current.TestOutputHelper?.WriteLine($"kill {kill + 1}: {ackedBeforeKill} events acknowledged before SIGKILL");
                Assert.True(ackedBeforeKill > 0, "load was running");
                await Task.Delay(300, Ct);
                await server.StartAsync();
            }
            await Task.Delay(1000, Ct);
            load.Stop();
            await running;

            long acked = load.AckedEvents;
            long distinctSent = load.DistinctEventsSent;
            Assert.Equal(distinctSent, acked); // every batch was eventually acknowledged after resends
            string site = await server.DemoSitePublicIdAsync();
            string token = await server.DemoTokenAsync();
            long stored = await QueryCounts.WaitForEventsAsync(port, site, token, acked);
            await Task.Delay(1000, Ct); // a double count would show up now
            stored = await QueryCounts.EventsAsync(port, site, token);
            TestContext.Current.TestOutputHelper?.WriteLine($"acknowledged {acked}, stored {stored}, difference {stored - acked}, resent batches {load.ResentBatches}");
            Assert.Equal(0, stored - acked);
            // The kills interrupted batches in flight, so the resend path really ran.
            Assert.True(load.ResentBatches > 0, "no batch needed a resend: the kills missed the load");
        }
        finally
        {
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Clients that behave like the agent: a batch stays pending until its ack arrives; after a
    /// dropped connection they reconnect with backoff and resend every pending batch unchanged.
    /// </summary>
    private sealed class Load(int port, int clients, int eventsPerBatch)
    {
        private readonly CancellationTokenSource _stop = new();
        private long _acked, _sent, _resent;

        public long AckedEvents => Interlocked.Read(ref _acked);
        public long DistinctEventsSent => Interlocked.Read(ref _sent);
        public long ResentBatches => Interlocked.Read(ref _resent);

        public void Stop() => _stop.Cancel();

        public Task RunAsync() => Task.WhenAll(Enumerable.Range(0, clients).Select(ClientAsync));

        private async Task ClientAsync(int client)
        {
            ulong seq = 0;
            EventBatch? pending = null;
            while (true)
            {
                bool stopping = _stop.IsCancellationRequested;
                if (stopping && pending is null) return;
                try
                {
                    using var socket = new ClientWebSocket();
                    socket.Options.SetRequestHeader("User-Agent", TestHost.BrowserUserAgent + " crash-client/" + client);
                    using var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/v1/ws"), connectTimeout.Token);
                    if (pending is not null) Interlocked.Increment(ref _resent);
                    while (true)
                    {
                        if (pending is null)
                        {
                            if (_stop.IsCancellationRequested) break;
                            pending = new EventBatch { SiteKey = "demo-site-key", Seq = ++seq };
                            for (int i = 0; i < eventsPerBatch; i++)
                            {
                                pending.Events.Add(new Event { Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Name = "pageview", Url = $"https://demo.localhost/{client}/{i}" });
                            }
                            Interlocked.Add(ref _sent, eventsPerBatch);
                        }
                        using var ackTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                        await socket.SendAsync(pending.ToByteArray(), WebSocketMessageType.Binary, true, ackTimeout.Token);
                        var buffer = new byte[4096];
                        var result = await socket.ReceiveAsync(buffer, ackTimeout.Token);
                        if (result.MessageType == WebSocketMessageType.Close) throw new WebSocketException("closed");
                        var ack = Ack.Parser.ParseFrom(buffer, 0, result.Count);
                        if (ack.Status == AckStatus.Ok && ack.Seq == pending.Seq)
                        {
                            Interlocked.Add(ref _acked, ack.Accepted);
                            pending = null;
                        }
                    }
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    return;
                }
                catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException or HttpRequestException)
                {
                    await Task.Delay(100, CancellationToken.None);
                }
            }
        }
    }
}
