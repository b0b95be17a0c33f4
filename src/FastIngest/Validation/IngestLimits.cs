namespace Analytics.FastIngest.Validation;

/// <summary>
/// Every limit the ingest path enforces; the numbers are the public contract documented in
/// schemas/events.proto. Limits are applied before parsing where possible (message size), so a
/// hostile client cannot make the server buffer or parse more than this.
/// </summary>
public sealed class IngestLimits
{
    /// <summary>256 KiB: 500 events of typical size (~300 bytes) fit with room; larger means abuse.</summary>
    public int MaxMessageBytes { get; init; } = 256 * 1024;
    public int MaxEventsPerBatch { get; init; } = 500;
    public int MaxSiteKeyBytes { get; init; } = 64;
    public int MaxNameBytes { get; init; } = 128;
    public int MaxUrlBytes { get; init; } = 2048;
    public int MaxReferrerBytes { get; init; } = 2048;
    public int MaxProperties { get; init; } = 30;
    public int MaxPropertyKeyBytes { get; init; } = 128;
    public int MaxPropertyValueBytes { get; init; } = 512;
    public uint MaxScreenWidth { get; init; } = 20_000;
    public uint MaxEngagementMs { get; init; } = 86_400_000;
    /// <summary>2299-12-31T23:59:59.999Z, the end of DateTime64's documented range in the
    /// ClickHouse the store runs (chDB 26.5: [1900-01-01, 2299-12-31 23:59:59.99999999]), which
    /// holds client_time; a client clock later than that is no clock.</summary>
    public long MaxClientTimeMs { get; init; } = 10_413_791_999_999;
    /// <summary>10^15 micros, a billion currency units per event: 9,223 such events fit in an Int64
    /// sum, and a real day of a site stays far below that; negative amounts (refunds) are not events.</summary>
    public long MaxRevenueMicros { get; init; } = 1_000_000_000_000_000;
    /// <summary>User-Agent bytes kept with the raw event; longer ones are cut (never rejected: the client does not choose it).</summary>
    public int MaxUserAgentBytes { get; init; } = 512;
    /// <summary>
    /// Events per second one WebSocket may send (refill) and at once (burst). A browser sends a
    /// few per minute; 20,000/s leaves room for server-side clients and load tests while one
    /// runaway socket cannot take more than a small share of a node (~0.5-1M events/s).
    /// </summary>
    public double MaxEventsPerSecondPerConnection { get; init; } = 20_000;
    public double EventBurstPerConnection { get; init; } = 100_000;
    /// <summary>
    /// A WebSocket that sends nothing for this long is closed with 1001. The server sends no
    /// pings, so this is what frees half-open connections (a phone that left the network); the
    /// agent reconnects on its next event.
    /// </summary>
    public TimeSpan WebSocketIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>
    /// A WebSocket message (from its first byte to its last frame) or an HTTP body must arrive
    /// within this, or the socket is closed with 1008 (HTTP: 408). The agent's batches are at most
    /// ~13 KB, which a 2G link (~50 kbit/s) carries in about 2 s; a sender trickling bytes to hold
    /// a connection and a buffer is cut off here. Kestrel's MinRequestBodyDataRate does not apply
    /// once a connection is upgraded, so this is the only deadline a WebSocket frame has.
    /// </summary>
    public TimeSpan MessageReceiveTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>WebSocket connections open at once on this server; past it the upgrade gets 503.
    /// Idle sockets cost ~12 KiB each (perf/README.md), so 100,000 is ~1.2 GiB. 0: no limit.</summary>
    public int MaxConnections { get; init; } = 100_000;
    /// <summary>Open WebSocket connections per IP address (IPv6: per /64); past it the upgrade gets
    /// 429. A browser holds one per tab; 1,000 leaves room for carrier-grade NAT. 0: no limit.</summary>
    public int MaxConnectionsPerIp { get; init; } = 1_000;
    /// <summary>Open TCP connections per peer address (IPv6: per /64), HTTP and WebSocket alike, on
    /// every endpoint; trusted proxies are not counted. Past it a connection's request gets 429 and
    /// the connection is closed (TcpConnectionLimits). A browser holds up to 6 HTTP connections
    /// per host beside a WebSocket per tab: 2,000 leaves room for carrier-grade NAT, twice the
    /// WebSockets. 0: no limit.</summary>
    public int MaxPeerConnectionsPerIp { get; init; } = 2_000;
    /// <summary>Open TCP connections on this server, HTTP and WebSocket alike, every peer counted
    /// (trusted proxies too): past it a connection's request gets 503 and the connection is closed
    /// (TcpConnectionLimits). Bounds the process's sockets against many addresses at once: the
    /// WebSockets' 100,000 (MaxConnections) plus 10,000 plain HTTP connections. The host keeps it
    /// below the process's open-files limit (ulimit -n) less a fifth of it (at least 512), since past
    /// that limit accepting fails without an answer (TcpConnectionLimits.WithinOpenFiles); 0 means
    /// that bound alone.</summary>
    public int MaxTcpConnections { get; init; } = 110_000;
    /// <summary>Events per second (refill) and burst per IP address (IPv6: per /64), over every
    /// connection and request of that address. The same as one connection's: one address must not
    /// take more than one runaway socket can. 0: no limit.</summary>
    public double MaxEventsPerSecondPerIp { get; init; } = 20_000;
    public double EventBurstPerIp { get; init; } = 100_000;
    /// <summary>Events per second (refill) and burst per site: a site flooded with a copied key
    /// cannot take the whole node (~1M events/s). 0: no limit.</summary>
    public double MaxEventsPerSecondPerSite { get; init; } = 200_000;
    public double EventBurstPerSite { get; init; } = 1_000_000;

    public static IngestLimits Default { get; } = new();
}
