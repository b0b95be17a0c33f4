using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Analytics.ControlPlane;
using Analytics.EventLog;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Transport;
using Analytics.FastIngest.Validation;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// The ingest endpoints alone on Kestrel on a free loopback port, as the host maps them, over a
/// control plane the test scripts (<see cref="Analytics.Tests.Shared.ScriptedControlPlaneStore"/>)
/// and a real local log: transport tests talk to it over real sockets.
/// </summary>
internal sealed class IngestServer : IAsyncDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ingest-server-" + Guid.NewGuid().ToString("N"));
    private WebApplication _app = null!;
    private LocalLog _log = null!;

    public Uri Http { get; private set; } = null!;
    public Uri WebSocket => new(Http.ToString().Replace("http://", "ws://", StringComparison.Ordinal) + "v1/ws");
    public IngestMetrics Metrics { get; } = new();
    public IngestDrain Drain { get; } = new();

    public static async Task<IngestServer> StartAsync(IControlPlaneStore store, IngestLimits? limits = null, DeadLetters? deadLetters = null)
    {
        var server = new IngestServer();
        Directory.CreateDirectory(server._dir);
        server._log = LocalLog.Open(Path.Combine(server._dir, "log"), new LocalLogOptions { Fsync = FsyncMode.Never });
        limits ??= IngestLimits.Default;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var registry = new SiteRegistry(store);
        builder.Services.AddSingleton(registry);
        builder.Services.AddSingleton(server.Metrics);
        builder.Services.AddSingleton(server.Drain);
        builder.Services.AddSingleton(new TrafficLimits(limits));
        builder.Services.AddSingleton(sp => new IngestProcessor(registry, server._log, limits, server.Metrics, TimeProvider.System,
            sp.GetRequiredService<TrafficLimits>(), deadLetters));
        var app = builder.Build();
        app.UseWebSockets();
        app.MapFastIngest(enableEcho: false);
        await app.StartAsync(TestContext.Current.CancellationToken);
        server._app = app;
        server.Http = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
        return server;
    }

    /// <summary>A WebSocket upgrade by hand on <paramref name="tcp"/> (for frames no client
    /// library sends); returns the stream after the 101 answer.</summary>
    public async Task<System.Net.Sockets.NetworkStream> UpgradeRawAsync(System.Net.Sockets.TcpClient tcp)
    {
        var ct = TestContext.Current.CancellationToken;
        await tcp.ConnectAsync(Http.Host, Http.Port, ct);
        var stream = tcp.GetStream();
        string upgrade = $"GET /v1/ws HTTP/1.1\r\nHost: {Http.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(upgrade), ct);
        var head = new System.Text.StringBuilder();
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            int b = stream.ReadByte();
            Assert.True(b >= 0, "the connection closed during the upgrade: " + head);
            head.Append((char)b);
        }
        Assert.StartsWith("HTTP/1.1 101", head.ToString(), StringComparison.Ordinal);
        return stream;
    }

    public async Task<ClientWebSocket> ConnectAsync(string? origin = null)
    {
        var socket = new ClientWebSocket();
        if (origin is not null) socket.Options.SetRequestHeader("Origin", origin);
        await socket.ConnectAsync(WebSocket, TestContext.Current.CancellationToken);
        return socket;
    }

    public static async Task<Ack> SendAsync(ClientWebSocket socket, EventBatch batch)
    {
        var ct = TestContext.Current.CancellationToken;
        await socket.SendAsync(batch.ToByteArray(), WebSocketMessageType.Binary, true, ct);
        // Room for the largest Ack: a batch of the maximum size with every event rejected.
        var buffer = new byte[1024 * 1024];
        int length = 0;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(length), ct);
            if (result.MessageType == WebSocketMessageType.Close) throw new InvalidOperationException($"closed: {socket.CloseStatus} {socket.CloseStatusDescription}");
            length += result.Count;
            if (result.EndOfMessage) return Ack.Parser.ParseFrom(buffer, 0, length);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
        await _log.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
