using System.Net;
using Analytics.FastIngest;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace Analytics.Host;

/// <summary>
/// Open TCP connections, counted as Kestrel accepts them, for every endpoint: in total and per peer
/// address (IPv6: per /64). HTTP keep-alive connections hold a socket and Kestrel's buffers as
/// WebSockets do, and the WebSocket limits (IngestLimits.MaxConnections, MaxConnectionsPerIp)
/// count upgrades only.
/// - The total bounds the process's sockets (file descriptors and buffers) against many addresses
///   at once; it counts every connection, trusted proxies' too. Kestrel's own
///   MaxConcurrentConnections would close a connection over it without a word; here it gets 503.
/// - Per address, trusted proxies are not counted: each of their connections carries many
///   clients, which the WebSocket and event-rate limits count by the forwarded address.
/// A connection over a limit is served one answer, 503 (total) or 429 (its address) + Retry-After
/// and Connection: close (by <see cref="RefuseOverLimit"/>, so Kestrel frames it and drains the
/// request as HTTP requires); if it sends no request within <see cref="QuietDeadline"/> it is
/// dropped, so idle connections over a limit do not live for Kestrel's keep-alive timeout (130 s).
/// </summary>
/// <param name="maxRefusing">Connections over a limit held at once while they wait for their answer
/// (or their 5 s): they use file descriptors too, uncounted by the total, so past this many a
/// connection over a limit is closed at once without an answer (<see cref="RefusingAtMost"/>).</param>
public sealed class TcpConnectionLimits(int maxTotal, int maxPerIp, IReadOnlyList<IPAddress> proxies, IReadOnlyList<IPNetwork> networks, TimeProvider clock,
    int maxRefusing = TcpConnectionLimits.DefaultMaxRefusing)
{
    public const int DefaultMaxRefusing = 1_024;
    private int _refusing;

    public static readonly TimeSpan QuietDeadline = TimeSpan.FromSeconds(5);
    public const int RetryAfterSeconds = 5;
    private const string OverLimitItem = "analytics.connection-over-limit";

    private readonly Dictionary<UInt128, int> _open = [];
    private int _total;
    private readonly Lock _lock = new();

    /// <summary>Open connections at most in total; 0: no limit.</summary>
    public int MaxTotal => maxTotal;

    /// <summary>Refusals so far, for /metrics (analytics_ingest_refused_total{reason="TcpConnectionsFull"
    /// or "PeerConnectionsFull"}).</summary>
    public IngestMetrics? Metrics { get; set; }

    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        UInt128? key = maxPerIp > 0 && connection.RemoteEndPoint is IPEndPoint peer && !Trusted(peer.Address) ? Key(peer.Address) : null;
        bool? serverFull = TryOpen(key);
        if (serverFull is null)
        {
            try { await next(connection); }
            finally { Close(key); }
            return;
        }
        var over = new OverLimit(serverFull.Value);
        if (over.ServerFull) Metrics?.TcpConnectionRefused();
        else Metrics?.PeerConnectionRefused();
        try
        {
            if (Interlocked.Increment(ref _refusing) > maxRefusing)
            {
                // A flood of connections over the limits: no answer, the descriptor back at once.
                connection.Abort(new ConnectionAbortedException("over the open connections, too many refusals at once"));
                return;
            }
            connection.Items[OverLimitItem] = over;
            using var quiet = clock.CreateTimer(_ => { if (!over.Answered) connection.Abort(new ConnectionAbortedException("over the open connections, no request")); },
                null, QuietDeadline, Timeout.InfiniteTimeSpan);
            await next(connection);
        }
        finally { Interlocked.Decrement(ref _refusing); }
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
        // The liveness probe is answered anyway: a server full of connections is alive, and an
        // orchestrator that restarted it for a 503 here would drop every connection it holds.
        // (Readiness is refused like the rest: a full node may well be rotated out.)
        if (HttpMethods.IsGet(context.Request.Method) && context.Request.Path.Equals("/livez", StringComparison.Ordinal))
        {
            await next();
            return;
        }
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await (over.ServerFull
            ? Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Too many open connections",
                detail: "The server holds its maximum of open connections; try again later.")
            : Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many connections from this address",
                detail: "This address holds its maximum of open connections; close one or try again later.")).ExecuteAsync(context);
    }

    private sealed class OverLimit(bool serverFull)
    {
        /// <summary>Over the total (503), else over its address's limit (429).</summary>
        public bool ServerFull { get; } = serverFull;
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

    /// <summary>The total kept below the process's open-files limit: past that limit Kestrel's
    /// accept fails and the peer gets no answer at all, while under it an extra connection gets
    /// 503. A fifth of the limit, at least 512, stays for everything else that opens files (the
    /// engine's parts, the log's segments, Kafka's and the control plane's sockets: 392 in an idle
    /// host with all roles and the demo site). 0 (no limit) becomes that bound too.</summary>
    public static int WithinOpenFiles(int configured, long? openFiles)
    {
        if (openFiles is not { } files) return configured;
        long bound = Math.Max(1, files - Reserve(files));
        return configured > 0 && configured <= bound ? configured : (int)Math.Min(bound, int.MaxValue);
    }

    /// <summary>Connections over a limit held at once while they are answered: an eighth of the
    /// files kept out of the total (<see cref="WithinOpenFiles"/>), so refusing cannot use up the
    /// descriptors the engine and the log need; 1,024 where the limit is unknown.</summary>
    public static int RefusingAtMost(long? openFiles) =>
        openFiles is { } files ? (int)Math.Min(Reserve(files) / 8, DefaultMaxRefusing) : DefaultMaxRefusing;

    private static long Reserve(long files) => Math.Max(512, files / 5);

    /// <summary>The soft limit of open files (RLIMIT_NOFILE) from /proc/self/limits, which the
    /// runtime has raised to the hard limit at start; null where unknown or unlimited.</summary>
    public static long? OpenFilesLimit()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/limits"))
            {
                if (!line.StartsWith("Max open files", StringComparison.Ordinal)) continue;
                var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && long.TryParse(fields[0], System.Globalization.CultureInfo.InvariantCulture, out long soft) ? soft : null;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>Counts the connection in; null when it fits, else whether the total (true) or its
    /// address (false) is full. <paramref name="key"/> null: not counted per address.</summary>
    private bool? TryOpen(UInt128? key)
    {
        lock (_lock)
        {
            if (maxTotal > 0 && _total >= maxTotal) return true;
            if (key is { } k)
            {
                _open.TryGetValue(k, out int open);
                if (open >= maxPerIp) return false;
                _open[k] = open + 1;
            }
            _total++;
            return null;
        }
    }

    private void Close(UInt128? key)
    {
        lock (_lock)
        {
            _total--;
            if (key is not { } k) return;
            if (_open.TryGetValue(k, out int open) && open > 1) _open[k] = open - 1;
            else _open.Remove(k);
        }
    }
}
