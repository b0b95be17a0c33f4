using System.Text;
using Analytics.Contracts.V1;

namespace Analytics.FastIngest;

/// <summary>
/// Ingest counters, exported in Prometheus text format at GET /metrics. Plain Interlocked
/// counters: the hot path pays one atomic add per batch and per rejection, nothing per event.
/// </summary>
public sealed class IngestMetrics
{
    private static readonly BatchRefusal[] Refusals = Enum.GetValues<BatchRefusal>();
    private readonly long[] _refusedByReason = new long[Refusals.Length];

    private static readonly RejectionReason[] Reasons = Enum.GetValues<RejectionReason>();
    private readonly long[] _rejectedByReason = new long[Reasons.Max(r => (int)r) + 1];
    private long _batches, _accepted, _retryBatches, _malformedBatches, _unknownSiteBatches, _oversizeMessages, _connections, _openConnections, _rateLimitedBatches;

    public long AcceptedEvents => Interlocked.Read(ref _accepted);

    internal void Batch(int accepted) { Interlocked.Increment(ref _batches); Interlocked.Add(ref _accepted, accepted); }
    internal void Rejected(RejectionReason reason) => Interlocked.Increment(ref _rejectedByReason[(int)reason]);
    internal void Retry() => Interlocked.Increment(ref _retryBatches);
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

    public string ToPrometheusText()
    {
        var sb = new StringBuilder();
        void Counter(string name, string help, long value, string labels = "")
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(name.EndsWith("_total", StringComparison.Ordinal) ? " counter\n" : " gauge\n");
            sb.Append(name).Append(labels).Append(' ').Append(value).Append('\n');
        }
        Counter("analytics_ingest_batches_total", "Batches processed (acked OK).", Interlocked.Read(ref _batches));
        Counter("analytics_ingest_events_accepted_total", "Events made durable and acknowledged.", AcceptedEvents);
        sb.Append("# HELP analytics_ingest_events_rejected_total Events rejected by validation, by reason.\n# TYPE analytics_ingest_events_rejected_total counter\n");
        foreach (var reason in Reasons)
        {
            if (reason == RejectionReason.Unspecified) continue;
            sb.Append("analytics_ingest_events_rejected_total{reason=\"").Append(reason).Append("\"} ").Append(Interlocked.Read(ref _rejectedByReason[(int)reason])).Append('\n');
        }
        Counter("analytics_ingest_batches_retry_total", "Batches answered with RETRY (event log unavailable).", Interlocked.Read(ref _retryBatches));
        Counter("analytics_ingest_batches_rate_limited_total", "Batches answered with RETRY because the connection, IP or site sent faster than its limit.", Interlocked.Read(ref _rateLimitedBatches));
        sb.Append("# HELP analytics_ingest_refused_total Batches, requests and connections refused as a whole, by reason.\n# TYPE analytics_ingest_refused_total counter\n");
        foreach (var refusal in Refusals)
        {
            sb.Append("analytics_ingest_refused_total{reason=\"").Append(refusal.ToString()).Append("\"} ").Append(Interlocked.Read(ref _refusedByReason[(int)refusal])).Append('\n');
        }
        if (DeadLetterCounts?.Invoke() is var (suppressed, dropped, written))
        {
            Counter("analytics_ingest_dead_letters_written_total", "Rejection rows stored for merchants (ingest_rejections).", written);
            Counter("analytics_ingest_dead_letters_suppressed_total", "Rejection rows not stored: over a site's rows per minute.", suppressed);
            Counter("analytics_ingest_dead_letters_dropped_total", "Rejection rows not stored: queue full or store failing.", dropped);
        }
        Counter("analytics_ingest_batches_malformed_total", "Batches that did not decode.", Interlocked.Read(ref _malformedBatches));
        Counter("analytics_ingest_batches_unknown_site_total", "Batches with an unknown site key.", Interlocked.Read(ref _unknownSiteBatches));
        Counter("analytics_ingest_messages_oversize_total", "Messages over the size limit.", Interlocked.Read(ref _oversizeMessages));
        Counter("analytics_ingest_connections_total", "WebSocket connections accepted.", Interlocked.Read(ref _connections));
        Counter("analytics_ingest_connections_open", "WebSocket connections open now.", Interlocked.Read(ref _openConnections));
        Counter("dotnet_gc_allocated_bytes_total", "Bytes allocated by the process (GC.GetTotalAllocatedBytes).", GC.GetTotalAllocatedBytes(false));
        return sb.ToString();
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
    /// <summary>A WebSocket message or HTTP body not complete within its deadline (1008 / 408).</summary>
    SlowSender,
}
