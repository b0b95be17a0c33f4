using System.Diagnostics;
using System.Diagnostics.Metrics;
using Analytics.Contracts.V1;

namespace Analytics.FastIngest;

/// <summary>
/// Ingest's instruments on the meter "Analytics.FastIngest" (the host exports them at GET /metrics
/// through OpenTelemetry). Counters are plain Interlocked fields read by observable instruments at
/// scrape time, so the hot path pays one atomic add per batch and per rejection, nothing per event;
/// the two histograms (ack latency, batch size) cost one Record each per batch.
/// The meter comes from the host's IMeterFactory, so two hosts in one process (tests) keep
/// their numbers apart.
/// </summary>
public sealed class IngestMetrics
{
    public const string MeterName = "Analytics.FastIngest";

    private static readonly BatchRefusal[] Refusals = Enum.GetValues<BatchRefusal>();
    private readonly long[] _refusedByReason = new long[Refusals.Length];

    private static readonly RejectionReason[] Reasons = Enum.GetValues<RejectionReason>();

    // Ack latency from a whole message to its Ack: 100 µs .. 10 s, finer where durable acks sit (1-30 ms).
    private static readonly double[] AckBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    // Events per batch: the protocol's limit is 500 (IngestLimits.MaxEventsPerBatch).
    private static readonly long[] BatchBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

    private readonly long[] _rejectedByReason = new long[Reasons.Max(r => (int)r) + 1];
    private long _batches, _accepted, _retryBatches, _malformedBatches, _unknownSiteBatches, _oversizeMessages, _connections, _openConnections, _rateLimitedBatches, _scratchBytes;
    private readonly Histogram<double> _ackDuration;
    private readonly Histogram<long> _batchEvents;

    /// <summary>Instruments on a meter of <paramref name="meters"/>; without one (benchmarks,
    /// unit tests) on a meter of their own.</summary>
    public IngestMetrics(IMeterFactory? meters = null)
    {
        var meter = meters?.Create(MeterName) ?? new Meter(MeterName);
        meter.CreateObservableCounter("analytics_ingest_batches_total", () => Interlocked.Read(ref _batches), null, "Batches processed (acked OK).");
        meter.CreateObservableCounter("analytics_ingest_events_accepted_total", () => AcceptedEvents, null, "Events made durable and acknowledged.");
        meter.CreateObservableCounter("analytics_ingest_events_rejected_total", RejectedByReason, null, "Events rejected by validation, by reason.");
        meter.CreateObservableCounter("analytics_ingest_batches_retry_total", () => Interlocked.Read(ref _retryBatches), null, "Batches answered with RETRY (event log unavailable).");
        meter.CreateObservableCounter("analytics_ingest_batches_rate_limited_total", () => Interlocked.Read(ref _rateLimitedBatches), null, "Batches answered with RETRY because the connection, IP or site sent faster than its limit.");
        meter.CreateObservableCounter("analytics_ingest_refused_total", RefusedByReason, null, "Batches, requests and connections refused as a whole, by reason.");
        meter.CreateObservableCounter("analytics_ingest_dead_letters_written_total", () => DeadLetterCounts?.Invoke().Written ?? 0, null, "Rejection rows stored for merchants (ingest_rejections).");
        meter.CreateObservableCounter("analytics_ingest_dead_letters_suppressed_total", () => DeadLetterCounts?.Invoke().Suppressed ?? 0, null, "Rejection rows not stored: over a site's rows per minute.");
        meter.CreateObservableCounter("analytics_ingest_dead_letters_dropped_total", () => DeadLetterCounts?.Invoke().Dropped ?? 0, null, "Rejection rows not stored: queue full or store failing.");
        meter.CreateObservableCounter("analytics_ingest_batches_malformed_total", () => Interlocked.Read(ref _malformedBatches), null, "Batches that did not decode.");
        meter.CreateObservableCounter("analytics_ingest_batches_unknown_site_total", () => Interlocked.Read(ref _unknownSiteBatches), null, "Batches with an unknown site key.");
        meter.CreateObservableCounter("analytics_ingest_messages_oversize_total", () => Interlocked.Read(ref _oversizeMessages), null, "Messages over the size limit.");
        meter.CreateObservableCounter("analytics_ingest_connections_total", () => Interlocked.Read(ref _connections), null, "WebSocket connections accepted.");
        meter.CreateObservableUpDownCounter("analytics_ingest_connections_open", () => Interlocked.Read(ref _openConnections), null, "WebSocket connections open now.");
        meter.CreateObservableUpDownCounter("analytics_ingest_scratch_bytes", () => ScratchBytes, "By", "Bytes held by ingest's per-connection and per-request buffers (records, Acks, rejections) now.");
        _ackDuration = meter.CreateHistogram("analytics_ingest_ack_duration", "s", "From a whole batch received to its Ack ready (includes the durable log append), by Ack status.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = AckBuckets });
        _batchEvents = meter.CreateHistogram("analytics_ingest_batch_events", "{event}", "Events per batch (accepted and rejected).",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = BatchBuckets });
    }

    public long AcceptedEvents => Interlocked.Read(ref _accepted);

    internal void Batch(int accepted) { Interlocked.Increment(ref _batches); Interlocked.Add(ref _accepted, accepted); }
    internal void Rejected(RejectionReason reason) => Interlocked.Increment(ref _rejectedByReason[(int)reason]);
    internal void Retry() => Interlocked.Increment(ref _retryBatches);
    /// <summary>A connection over its peer address's limit (the host's TcpConnectionLimits).</summary>
    public void PeerConnectionRefused() => Refused(BatchRefusal.PeerConnectionsFull);
    /// <summary>A connection over the server's open TCP connections (the host's TcpConnectionLimits).</summary>
    public void TcpConnectionRefused() => Refused(BatchRefusal.TcpConnectionsFull);

    /// <summary>A batch, request or connection refused as a whole for <paramref name="reason"/>.</summary>
    internal void Refused(BatchRefusal reason)
    {
        Interlocked.Increment(ref _refusedByReason[(int)reason]);
        if (reason is BatchRefusal.RateLimitedConnection or BatchRefusal.RateLimitedIp or BatchRefusal.RateLimitedSite)
            Interlocked.Increment(ref _rateLimitedBatches);
    }

    public long RefusedCount(BatchRefusal reason) => Interlocked.Read(ref _refusedByReason[(int)reason]);

    /// <summary>Dead letters (DeadLetters): rows over a site's quota and rows dropped on a full queue, set by the host.</summary>
    public Func<(long Suppressed, long Dropped, long Written)>? DeadLetterCounts { get; set; }
    internal void Malformed() => Interlocked.Increment(ref _malformedBatches);
    internal void UnknownSite() => Interlocked.Increment(ref _unknownSiteBatches);
    internal void Oversize() => Interlocked.Increment(ref _oversizeMessages);
    internal void ConnectionOpened() { Interlocked.Increment(ref _connections); Interlocked.Increment(ref _openConnections); }
    internal void ConnectionClosed() => Interlocked.Decrement(ref _openConnections);
    /// <summary>A scratch grew or gave back a buffer (not per batch: only when a size changes).</summary>
    internal void ScratchResized(long bytes) => Interlocked.Add(ref _scratchBytes, bytes);
    public long ScratchBytes => Interlocked.Read(ref _scratchBytes);

    /// <summary>One answered batch: its latency since <paramref name="startTimestamp"/> (Stopwatch) and size.</summary>
    internal void Answered(AckStatus status, long startTimestamp, int events)
    {
        if (_ackDuration.Enabled)
            _ackDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, new KeyValuePair<string, object?>("status", StatusLabel(status)));
        if (events > 0) _batchEvents.Record(events);
    }

    // Cached strings: Enum.ToString would allocate per batch.
    private static string StatusLabel(AckStatus status) => status switch
    {
        AckStatus.Ok => "ok",
        AckStatus.Retry => "retry",
        AckStatus.Malformed => "malformed",
        AckStatus.UnknownSite => "unknown_site",
        _ => "other",
    };

    private IEnumerable<Measurement<long>> RefusedByReason()
    {
        foreach (var refusal in Refusals)
            yield return new Measurement<long>(Interlocked.Read(ref _refusedByReason[(int)refusal]), new KeyValuePair<string, object?>("reason", refusal.ToString()));
    }

    private IEnumerable<Measurement<long>> RejectedByReason()
    {
        foreach (var reason in Reasons)
        {
            if (reason == RejectionReason.Unspecified) continue;
            yield return new Measurement<long>(Interlocked.Read(ref _rejectedByReason[(int)reason]), new KeyValuePair<string, object?>("reason", reason.ToString()));
        }
    }
}

/// <summary>Why a whole batch, request or connection was refused (the label of analytics_ingest_refused_total).</summary>
public enum BatchRefusal
{
    ForbiddenOrigin,
    RateLimitedConnection,
    RateLimitedIp,
    RateLimitedSite,
    /// <summary>WebSocket upgrade refused: the server holds its maximum of connections (503).</summary>
    ServerConnectionsFull,
    /// <summary>WebSocket upgrade refused: the IP holds its maximum of connections (429).</summary>
    IpConnectionsFull,
    /// <summary>A TCP connection over the open connections per peer address (429 to its request, or
    /// dropped if it sends none within 5 s; TcpConnectionLimits in the host).</summary>
    PeerConnectionsFull,
    /// <summary>A TCP connection over the server's open connections (503 to its request, or dropped
    /// if it sends none within 5 s; TcpConnectionLimits in the host).</summary>
    TcpConnectionsFull,
    /// <summary>A WebSocket message or HTTP body not complete within its deadline (1008 / 408).</summary>
    SlowSender,
    /// <summary>The control plane's store failed the site key or salt lookup a batch needed (RETRY
    /// CONTROL_PLANE_UNAVAILABLE / 503), or a preflight's key lookup (503).</summary>
    ControlPlaneUnavailable,
    /// <summary>A CORS preflight whose ?site= is not in a site key's format (400).</summary>
    PreflightMalformedSiteKey,
    /// <summary>A WebSocket peer that read nothing of what it was sent (Acks, pongs) within the
    /// message deadline: the connection is dropped.</summary>
    SlowReader,
    /// <summary>A WebSocket frame against the protocol (close 1002: unmasked, a bad opcode or length).</summary>
    WebSocketProtocolError,
    /// <summary>A text WebSocket message (close 1003: EventBatch messages are binary).</summary>
    WebSocketTextMessage,
    /// <summary>GET /v1/ws without a WebSocket upgrade (400).</summary>
    UpgradeRequired,
    /// <summary>POST /v1/events with a content type other than protobuf or text/plain (415).</summary>
    UnsupportedContentType,
    /// <summary>A batch, request or connection refused while the node drains (503 + Retry-After).</summary>
    Draining,
}
