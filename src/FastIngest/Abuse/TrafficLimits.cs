using Analytics.FastIngest.Validation;

namespace Analytics.FastIngest.Abuse;

/// <summary>
/// Limits shared by every connection and request of this server: open WebSocket connections in
/// total and per IP address, and events per second per IP address and per site (token buckets).
/// Contract: a batch takes its events (at least one token, however few events it has) from the
/// IP's bucket before its site key is even looked up, then, once the site is known and the origin
/// allowed, from the site's; a batch that does not fit is refused whole (RETRY with the wait; HTTP 429 + Retry-After) and nothing of it
/// is kept. The IP is checked first so that one flooding address is stopped before it drains the
/// bucket its site shares with everyone else; tokens an IP paid for a batch the site then refuses
/// are not given back (the flooder pays, never the site). IPv6 addresses count per /64, the
/// block one subscriber gets. Limits are per node, not across a deployment.
///
/// The buckets are <see cref="TokenBuckets{TKey}"/>: computed on demand, no timer, nothing
/// allocated per batch once a key has its bucket (System.Threading.RateLimiting's partitioned
/// limiter, used before, allocated 80 B per batch; docs/security.md).
/// </summary>
public sealed class TrafficLimits : IDisposable
{
    private readonly TokenBuckets<UInt128>? _perIp;
    private readonly TokenBuckets<long>? _perSite;
    private readonly int _ipBurst, _siteBurst;
    private readonly int _maxConnections, _maxConnectionsPerIp;
    private readonly Dictionary<UInt128, int> _connectionsPerIp = [];
    private readonly Lock _connectionsLock = new();
    private int _connections;

    public TrafficLimits(IngestLimits limits)
    {
        (_perIp, _ipBurst) = Buckets<UInt128>(limits.MaxEventsPerSecondPerIp, limits.EventBurstPerIp);
        (_perSite, _siteBurst) = Buckets<long>(limits.MaxEventsPerSecondPerSite, limits.EventBurstPerSite);
        _maxConnections = limits.MaxConnections;
        _maxConnectionsPerIp = limits.MaxConnectionsPerIp;
    }

    private static (TokenBuckets<T>?, int) Buckets<T>(double perSecond, double burst) where T : notnull
    {
        if (perSecond <= 0) return (null, 0);
        int limit = (int)Math.Clamp(burst, 1, int.MaxValue);
        return (new TokenBuckets<T>(perSecond, limit), limit);
    }

    /// <summary>Takes <paramref name="events"/> (at least one: every batch costs) from the IP's
    /// bucket; false with the wait. Asked before the site key is resolved, so a flood of unknown
    /// keys or empty batches is limited like one of events.</summary>
    public bool TryAcquireIp(UInt128 ip, int events, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        return _perIp is null || _perIp.TryAcquire(ip, Math.Clamp(events, 1, _ipBurst), out retryAfter);
    }

    /// <summary>Takes <paramref name="events"/> (at least one) from the site's bucket, after the IP's; false with the wait.</summary>
    public bool TryAcquireSite(long siteId, int events, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        return _perSite is null || _perSite.TryAcquire(siteId, Math.Clamp(events, 1, _siteBurst), out retryAfter);
    }

    public enum ConnectionRefusal { None, ServerFull, IpFull }

    /// <summary>Counts a new WebSocket connection of <paramref name="ip"/>, unless a limit is reached.
    /// Every <see cref="ConnectionRefusal.None"/> must be paired with <see cref="CloseConnection"/>.</summary>
    public ConnectionRefusal TryOpenConnection(UInt128 ip)
    {
        if (Interlocked.Increment(ref _connections) > _maxConnections && _maxConnections > 0)
        {
            Interlocked.Decrement(ref _connections);
            return ConnectionRefusal.ServerFull;
        }
        if (_maxConnectionsPerIp <= 0) return ConnectionRefusal.None;
        lock (_connectionsLock)
        {
            _connectionsPerIp.TryGetValue(ip, out int open);
            if (open >= _maxConnectionsPerIp)
            {
                Interlocked.Decrement(ref _connections);
                return ConnectionRefusal.IpFull;
            }
            _connectionsPerIp[ip] = open + 1;
        }
        return ConnectionRefusal.None;
    }

    public void CloseConnection(UInt128 ip)
    {
        Interlocked.Decrement(ref _connections);
        if (_maxConnectionsPerIp <= 0) return;
        lock (_connectionsLock)
        {
            if (_connectionsPerIp.TryGetValue(ip, out int open) && open > 1) _connectionsPerIp[ip] = open - 1;
            else _connectionsPerIp.Remove(ip);
        }
    }

    /// <summary>Nothing to release any more (the buckets hold no timer); kept for the host's and tests' using.</summary>
    public void Dispose()
    {
    }
}
