using System.Net;
using Analytics.FastIngest;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace Analytics.Host;

/// <summary>
/// Open TCP connections per peer address (IPv6: per /64), counted as Kestrel accepts them, for
/// every endpoint: HTTP keep-alive connections hold a socket and Kestrel's buffers as WebSockets
/// do, and the WebSocket limits (IngestLimits.MaxConnectionsPerIp) count upgrades only. Trusted
/// proxies are not counted: each of their connections carries many clients, which the
/// WebSocket and event-rate limits count by the forwarded address.
/// A connection over the limit is served one answer, 429 + Retry-After and Connection: close
/// (by <see cref="RefuseOverLimit"/>, so Kestrel frames it and drains the request as HTTP
/// requires); if it sends no request within <see cref="QuietDeadline"/> it is dropped, so
/// idle connections over the limit do not live for Kestrel's keep-alive timeout (130 s).
/// </summary>
public sealed class PeerConnectionLimit(int maxPerIp, IReadOnlyList<IPAddress> proxies, IReadOnlyList<IPNetwork> networks, TimeProvider clock)
{
    public static readonly TimeSpan QuietDeadline = TimeSpan.FromSeconds(5);
    public const int RetryAfterSeconds = 5;
    private const string OverLimitItem = "analytics.peer-over-limit";

    private readonly Dictionary<UInt128, int> _open = [];
    private readonly Lock _lock = new();

    /// <summary>Refusals so far, for /metrics (analytics_ingest_refused_total{reason="PeerConnectionsFull"}).</summary>
    public IngestMetrics? Metrics { get; set; }

    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        if (maxPerIp <= 0 || connection.RemoteEndPoint is not IPEndPoint peer || Trusted(peer.Address))
        {
            await next(connection);
            return;
        }
        UInt128 key = Key(peer.Address);
        if (TryOpen(key))
        {
            try { await next(connection); }
            finally { Close(key); }
            return;
        }
        var over = new OverLimit();
        connection.Items[OverLimitItem] = over;
        Metrics?.PeerConnectionRefused();
        using var quiet = clock.CreateTimer(_ => { if (!over.Answered) connection.Abort(new ConnectionAbortedException("over the connections per address, no request")); },
            null, QuietDeadline, Timeout.InfiniteTimeSpan);
        await next(connection);
    };

    /// <summary>The first middleware: answers every request of a connection over the limit.</summary>
    public static async Task RefuseOverLimit(HttpContext context, Func<Task> next)
    {
        if (context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(OverLimitItem, out var item) != true || item is not OverLimit over)
        {
            await next();
            return;
        }
        over.Answered = true;
        // HTTP/1.x closes after this answer; HTTP/2 and 3 forbid the header: the connection is
        // asked to close (GOAWAY) once its streams are answered.
        if (HttpProtocol.IsHttp2(context.Request.Protocol) || HttpProtocol.IsHttp3(context.Request.Protocol))
            context.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
        else
            context.Response.Headers.Connection = "close";
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many connections from this address",
            detail: "This address holds its maximum of open connections; close one or try again later.").ExecuteAsync(context);
    }

    private sealed class OverLimit
    {
        public volatile bool Answered;
    }

    /// <summary>The peer as written (a network may be written IPv4-mapped) or as plain IPv4.</summary>
    private bool Trusted(IPAddress address) => Listed(address) || (address.IsIPv4MappedToIPv6 && Listed(address.MapToIPv4()));

    private bool Listed(IPAddress address)
    {
        foreach (var proxy in proxies) if (proxy.Equals(address)) return true;
        foreach (var network in networks) if (network.Contains(address)) return true;
        return false;
    }

    /// <summary>IPv4 alone, IPv6 by its /64 (one subscriber's block), as the other per-IP limits.</summary>
    private static UInt128 Key(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        Span<byte> bytes = stackalloc byte[16];
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            bytes[10] = bytes[11] = 0xFF;
            address.TryWriteBytes(bytes[12..], out _);
        }
        else
        {
            address.TryWriteBytes(bytes, out _);
            bytes[8..].Clear();
        }
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    private bool TryOpen(UInt128 key)
    {
        lock (_lock)
        {
            _open.TryGetValue(key, out int open);
            if (open >= maxPerIp) return false;
            _open[key] = open + 1;
            return true;
        }
    }

    private void Close(UInt128 key)
    {
        lock (_lock)
        {
            if (_open.TryGetValue(key, out int open) && open > 1) _open[key] = open - 1;
            else _open.Remove(key);
        }
    }
}
