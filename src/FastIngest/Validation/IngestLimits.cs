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

    public static IngestLimits Default { get; } = new();
}
