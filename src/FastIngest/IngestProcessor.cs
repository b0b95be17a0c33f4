using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Analytics.Contracts.V1;
using Analytics.EventLog;
using Analytics.FastIngest.Enrichment;
using Analytics.FastIngest.Protocol;
using Analytics.ControlPlane;
using Analytics.FastIngest.Validation;
using Analytics.FastIngest.Abuse;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ObjectPool;

namespace Analytics.FastIngest;

/// <summary>
/// One batch, transport-independent: parse (zero-copy), resolve the site, validate each event,
/// enrich, encode log records, append to the event log, and build the Ack. The Ack says OK only
/// after the log reported the records durable; if the log refuses, the Ack says RETRY and
/// nothing of the batch counts as accepted (a resend is safe: events are deduplicated by id).
/// The synchronous part runs on spans; only the log append is awaited.
///
/// Refusals before any event is looked at, in this order: undecodable (MALFORMED), over the
/// connection's or the IP's events per second (RETRY with the wait and the reason; every batch
/// costs at least one event), unknown or revoked site key (UNKNOWN_SITE), a web page of an origin
/// the site does not allow (FORBIDDEN_ORIGIN), over the site's events per second (RETRY), the
/// control plane failing the key or salt lookup (RETRY, CONTROL_PLANE_UNAVAILABLE). Events rejected by validation and batches refused for their
/// origin are also handed to <see cref="DeadLetters"/> for the merchant to read.
///
/// Tracing: each batch is a span "ingest.batch" (child of the request's trace context) whose
/// context is written into every record of the batch (field trace_context), so Rollup's round
/// can link to it; with tracing off nothing is started or written.
/// </summary>
public sealed class IngestProcessor(SiteRegistry sites, IEventLog log, IngestLimits limits, IngestMetrics metrics, TimeProvider clock,
    TrafficLimits? traffic = null, DeadLetters? deadLetters = null, ILogger<IngestProcessor>? logger = null)
{
    private readonly LogRefusals _refusals = new(logger ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
    private readonly ControlPlaneRefusals _controlPlaneRefusals = new(logger ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    private readonly VisitorIdHasher _visitorIds = new(sites);

    /// <summary>How long a client should wait before resending after the log refused writes.</summary>
    public const uint RetryAfterMs = 1000;

    public IngestLimits Limits => limits;

    public ValueTask<IngestResult> ProcessAsync(ReadOnlyMemory<byte> message, ClientInfo client, IngestScratch scratch, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        if (IngestTelemetry.Source.HasListeners()) return ProcessTraced(message, client, scratch, started, cancellationToken);
        return Process(message, client, scratch, started, null, cancellationToken);
    }

    private ValueTask<IngestResult> Process(ReadOnlyMemory<byte> message, ClientInfo client, IngestScratch scratch, long started, Activity? activity, CancellationToken cancellationToken)
    {
        var prepared = Prepare(message.Span, client, scratch, activity);
        // Synchronous answer without touching the log: refused batches (malformed, unknown site,
        // rate limited) and batches whose every event was rejected.
        if (prepared.Status != AckStatus.Ok || prepared.RecordCount == 0)
        {
            return ValueTask.FromResult(Finish(prepared, scratch, started, activity));
        }
        // Traced batches keep the async method (tracing is opt-in; its span must end in the batch's own context).
        if (activity is not null) return AppendAsync(prepared, scratch, started, activity, cancellationToken);
        ValueTask append;
        try
        {
            append = log.AppendAsync(prepared.MerchantId, scratch.Records.AsMemory(0, scratch.RecordsLength), prepared.RecordCount, cancellationToken);
        }
        catch (EventLogUnavailableException e)
        {
            return ValueTask.FromResult(LogRefused(prepared, scratch, started, null, e));
        }
        if (append.IsCompleted) return ValueTask.FromResult(Appended(append, prepared, scratch, started));
        return (scratch.PendingAppend ??= new PendingAppend(this, scratch)).Await(append, prepared, started);
    }

    /// <summary>The outcome of an append that has completed (GetResult also releases a pooled log waiter).</summary>
    private IngestResult Appended(ValueTask append, Prepared prepared, IngestScratch scratch, long started)
    {
        try
        {
            append.GetAwaiter().GetResult();
        }
        catch (EventLogUnavailableException e)
        {
            return LogRefused(prepared, scratch, started, null, e);
        }
        _refusals.Accepted();
        return Finish(prepared, scratch, started, null);
    }

    private IngestResult LogRefused(Prepared prepared, IngestScratch scratch, long started, Activity? activity, EventLogUnavailableException e)
    {
        metrics.Retry();
        _refusals.Refused(e);
        activity?.SetStatus(ActivityStatusCode.Error, e.Message);
        return Finish(prepared with { Status = AckStatus.Retry, RetryReason = RetryReason.LogUnavailable }, scratch, started, activity);
    }

    /// <summary>
    /// Awaits one connection's (one scratch's) append that has not completed yet, and answers
    /// through the ValueTask the caller awaits, without an async method: an async method's frame
    /// is allocated at each batch whose append suspends, which is nearly every batch (the log's
    /// group commit); ~240 B per batch, 4.8 B per event of a 50-event batch. One instance per
    /// scratch, made at its first suspended append and reused: a scratch serves one batch at a
    /// time. The log's completion flows the batch's ExecutionContext (OnCompleted, not
    /// UnsafeOnCompleted) as an await would.
    /// </summary>
    internal sealed class PendingAppend : IValueTaskSource<IngestResult>
    {
        private readonly IngestProcessor _processor;
        private readonly IngestScratch _scratch;
        private readonly Action _completed;
        private ManualResetValueTaskSourceCore<IngestResult> _core;
        private ConfiguredValueTaskAwaitable.ConfiguredValueTaskAwaiter _append;
        private Prepared _prepared;
        private long _started;

        public PendingAppend(IngestProcessor processor, IngestScratch scratch)
        {
            _processor = processor;
            _scratch = scratch;
            _completed = Completed;
        }

        internal ValueTask<IngestResult> Await(ValueTask append, Prepared prepared, long started)
        {
            _prepared = prepared;
            _started = started;
            // ConfigureAwait(false), as the async method awaited: no scheduling context is captured.
            _append = append.ConfigureAwait(false).GetAwaiter();
            _append.OnCompleted(_completed);
            return new ValueTask<IngestResult>(this, _core.Version);
        }

        private void Completed()
        {
            var append = _append;
            _append = default;
            IngestResult result;
            try
            {
                try
                {
                    append.GetResult();
                }
                catch (EventLogUnavailableException e)
                {
                    result = _processor.LogRefused(_prepared, _scratch, _started, null, e);
                    _core.SetResult(result);
                    return;
                }
                _processor._refusals.Accepted();
                result = _processor.Finish(_prepared, _scratch, _started, null);
            }
            catch (Exception e)
            {
                _core.SetException(e);
                return;
            }
            _core.SetResult(result);
        }

        public IngestResult GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    private ValueTask<IngestResult> ProcessTraced(ReadOnlyMemory<byte> message, ClientInfo client, IngestScratch scratch, long started, CancellationToken cancellationToken)
    {
        // The batch's parent is the connection's context, never the previous batch: Activity.Current
        // is cleared while the span starts (a default parent means a new root) and restored after,
        // since this synchronous method shares the caller's async context.
        var previous = Activity.Current;
        Activity.Current = null;
        try
        {
            var activity = IngestTelemetry.Source.StartActivity(IngestTelemetry.BatchSpan, ActivityKind.Server, scratch.TraceParent);
            return Process(message, client, scratch, started, activity, cancellationToken);
        }
        finally
        {
            Activity.Current = previous;
        }
    }

    private async ValueTask<IngestResult> AppendAsync(Prepared prepared, IngestScratch scratch, long started, Activity? activity, CancellationToken cancellationToken)
    {
        try
        {
            await log.AppendAsync(prepared.MerchantId, scratch.Records.AsMemory(0, scratch.RecordsLength), prepared.RecordCount, cancellationToken).ConfigureAwait(false);
        }
        catch (EventLogUnavailableException e)
        {
            return LogRefused(prepared, scratch, started, activity, e);
        }
        _refusals.Accepted();
        return Finish(prepared, scratch, started, activity);
    }

    internal readonly record struct Prepared(AckStatus Status, ulong Seq, ulong MerchantId, int RecordCount, int EventCount = 0, uint RetryAfterMs = RetryAfterMs,
        RetryReason RetryReason = RetryReason.Unspecified);

    private Prepared Prepare(ReadOnlySpan<byte> message, ClientInfo client, IngestScratch scratch, Activity? activity)
    {
        scratch.Reset();
        if (!BatchView.TryParse(message, out var batch))
        {
            metrics.Malformed();
            return new Prepared(AckStatus.Malformed, 0, 0, 0);
        }
        // Every batch costs at least one token of its connection and its IP before anything that
        // costs more than the parse (the key lookup, which may ask the store; the origin check;
        // the HMAC; the Ack), so a flood of empty batches, unknown keys or a foreign origin is
        // limited (and paused) like a flood of events.
        int cost = Math.Max(1, batch.EventCount);
        if (scratch.RateLimiter is { } limiter && !limiter.TryAcquire(cost, out var wait))
        {
            metrics.Refused(BatchRefusal.RateLimitedConnection);
            return RateLimited(batch, wait, RetryReason.RateLimitedConnection);
        }
        if (traffic is not null && !traffic.TryAcquireIp(client.RateKey, cost, out wait))
        {
            metrics.Refused(BatchRefusal.RateLimitedIp);
            return RateLimited(batch, wait, RetryReason.RateLimitedIp);
        }
        SiteAccess? access;
        try
        {
            access = EventValidator.IsSiteKeyFormat(batch.SiteKey, limits) ? sites.ResolveAccess(batch.SiteKey) : null;
        }
        catch (ControlPlaneUnavailableException e)
        {
            return ControlPlaneRefused(batch, e);
        }
        if (access is null)
        {
            metrics.UnknownSite();
            return new Prepared(AckStatus.UnknownSite, batch.Seq, 0, 0);
        }
        var site = access.Site;
        // One check per connection and site policy: the socket's origin does not change, so a
        // policy object already allowed (same reference: the cache entry was not replaced) passes.
        if (client.Origin is { } origin && !ReferenceEquals(scratch.AllowedOrigins, access.Origins))
        {
            if (!access.Origins.Allows(origin))
            {
                metrics.Refused(BatchRefusal.ForbiddenOrigin);
                var at = clock.GetUtcNow();
                if (deadLetters is not null && deadLetters.AdmitOriginRefusal(site.SiteId, at))
                    deadLetters.Add(new DeadLetter(site.MerchantId, site.SiteId, at, "FORBIDDEN_ORIGIN", origin, batch.EventCount, ""));
                return new Prepared(AckStatus.ForbiddenOrigin, batch.Seq, 0, 0);
            }
            scratch.AllowedOrigins = access.Origins;
        }
        // The site's bucket only once the origin passed: a foreign page must not drain what the
        // site's own pages share.
        if (traffic is not null && !traffic.TryAcquireSite(site.SiteId, cost, out wait))
        {
            metrics.Refused(BatchRefusal.RateLimitedSite);
            return RateLimited(batch, wait, RetryReason.RateLimitedSite);
        }

        var receivedAt = clock.GetUtcNow();
        if (batch.EventCount > 0)
        {
            // The day's salt is asked of the store by the first batch after midnight UTC: asked
            // here, before any event is counted, so a failing store refuses the batch whole.
            try
            {
                sites.GetSalt(DateOnly.FromDateTime(receivedAt.UtcDateTime));
            }
            catch (ControlPlaneUnavailableException e)
            {
                return ControlPlaneRefused(batch, e);
            }
        }
        // The visitor id (an HMAC) is computed at the first event kept: a batch whose every event
        // is rejected does not pay for it.
        var enrichment = new StoredEventWriter.Enrichment(
            (ulong)site.MerchantId, (ulong)site.SiteId, receivedAt.ToUnixTimeMilliseconds(), 0, client)
        {
            TraceContext = activity is { Recorded: true } ? scratch.TraceContextBytes(activity.Context) : default,
        };

        int index = 0;
        int records = 0;
        foreach (var raw in batch.GetEvents())
        {
            RejectionReason reason;
            if (index >= limits.MaxEventsPerBatch) reason = RejectionReason.TooManyEvents;
            else if (!EventView.TryParse(raw, out var evt)) reason = RejectionReason.MalformedEvent;
            else
            {
                reason = EventValidator.Validate(evt, limits);
                if (reason == RejectionReason.Unspecified)
                {
                    if (records == 0) enrichment = enrichment with { VisitorId = _visitorIds.Compute(client, site.SiteId, receivedAt) };
                    var destination = scratch.ReserveRecord(StoredEventWriter.MaxEncodedSize(raw.Length, client));
                    int written = StoredEventWriter.Write(destination[4..], evt, enrichment);
                    BinaryPrimitives.WriteInt32LittleEndian(destination, written);
                    scratch.CommitRecord(4 + written);
                    records++;
                }
            }
            if (reason != RejectionReason.Unspecified)
            {
                scratch.AddRejection(new Rejected(index, reason));
                metrics.Rejected(reason);
                if (deadLetters is not null && deadLetters.Admit(site.SiteId, receivedAt))
                    deadLetters.Add(new DeadLetter(site.MerchantId, site.SiteId, receivedAt, DeadLetter.NameOf(reason), client.Origin ?? "", 1, DeadLetterDetail(raw, index)));
            }
            index++;
        }
        return new Prepared(AckStatus.Ok, batch.Seq, (ulong)site.MerchantId, records, index);
    }

    private static Prepared RateLimited(in BatchView batch, TimeSpan wait, RetryReason reason) =>
        new(AckStatus.Retry, batch.Seq, 0, 0, batch.EventCount, (uint)Math.Ceiling(wait.TotalMilliseconds), reason);

    /// <summary>The store behind the site registry failed: RETRY, as for a log that refuses (the
    /// client resends; nothing of the batch was counted).</summary>
    private Prepared ControlPlaneRefused(in BatchView batch, ControlPlaneUnavailableException e)
    {
        metrics.Refused(BatchRefusal.ControlPlaneUnavailable);
        _controlPlaneRefusals.Refused(e);
        return new Prepared(AckStatus.Retry, batch.Seq, 0, 0, batch.EventCount, RetryAfterMs, RetryReason.ControlPlaneUnavailable);
    }

    private IngestResult Finish(Prepared prepared, IngestScratch scratch, long started, Activity? activity)
    {
        metrics.Answered(prepared.Status, started, prepared.EventCount);
        if (activity is not null)
        {
            activity.SetTag("analytics.merchant_id", prepared.MerchantId);
            activity.SetTag("analytics.events", prepared.EventCount);
            activity.SetTag("analytics.accepted", prepared.Status == AckStatus.Ok ? prepared.RecordCount : 0);
            activity.SetTag("analytics.ack_status", prepared.Status.ToString());
            activity.Dispose();
        }
        bool ok = prepared.Status == AckStatus.Ok;
        if (ok) metrics.Batch(prepared.RecordCount);
        var rejections = ok ? scratch.Rejections : default;
        int accepted = ok ? prepared.RecordCount : 0;
        uint retryAfter = prepared.Status == AckStatus.Retry ? prepared.RetryAfterMs : 0;
        var ackBuffer = scratch.AckBuffer(AckWriter.MaxEncodedSize(rejections.Length));
        int length = AckWriter.Write(ackBuffer, prepared.Seq, prepared.Status, accepted, rejections, retryAfter, prepared.RetryReason);
        return new IngestResult(prepared.Status, prepared.Seq, accepted, rejections.Length, scratch.AckMemory(length), retryAfter, prepared.RetryReason);
    }

    /// <summary>What a merchant needs to find a rejected event: its index in the batch and, when it
    /// decodes, its name (cut to 128 characters). Built only for rows the dead-letter quota admits.</summary>
    private static string DeadLetterDetail(ReadOnlySpan<byte> raw, int index)
    {
        if (!EventView.TryParse(raw, out var evt)) return $"event {index}";
        var name = evt.Name;
        string text = System.Text.Encoding.UTF8.GetString(name[..Math.Min(name.Length, 128)]);
        return $"event {index}: {text}";
    }
}

public readonly record struct IngestResult(AckStatus Status, ulong Seq, int Accepted, int Rejected, ReadOnlyMemory<byte> Ack,
    uint RetryAfterMs = 0, RetryReason RetryReason = RetryReason.Unspecified);

/// <summary>
/// Buffers reused across the batches of one connection (or request): encoded records,
/// rejections and the Ack. Rented from the shared pool so idle connections hold little: after
/// each batch, a buffer grown past <see cref="RetainedBufferBytes"/> (a large batch) is given back
/// (<see cref="ReleaseLargeBuffers"/>), so one large batch does not pin its buffers for the rest
/// of a connection's life. What scratches hold is <see cref="IngestMetrics.ScratchBytes"/>.
/// </summary>
public sealed class IngestScratch : IDisposable
{
    /// <summary>The most a buffer keeps between batches (records, Ack): 64 KiB, a batch of ~200 typical events.</summary>
    public const int RetainedBufferBytes = 64 * 1024;

    /// <summary>The most rejections kept between batches; a batch of a few thousand tiny events past
    /// the 500th grows the array to megabytes otherwise.</summary>
    private const int RetainedRejections = 1024;

    private byte[] _records = [];
    private Rejected[] _rejections = [];

    /// <summary>Where the bytes this scratch holds are counted; null: nowhere (benchmarks, unit tests).</summary>
    public IngestMetrics? Metrics { get; init; }

    /// <summary>Set for WebSocket connections: their event rate limit.</summary>
    public EventRateLimiter? RateLimiter { get; init; }

    /// <summary>The last site origin policy this connection's origin passed (see IngestProcessor).</summary>
    internal Analytics.ControlPlane.OriginPolicy? AllowedOrigins { get; set; }

    /// <summary>The request's trace context (W3C traceparent), parent of each batch's span;
    /// default: each batch starts a trace of its own.</summary>
    public ActivityContext TraceParent { get; set; }

    private byte[]? _traceContext;

    /// <summary>Made at the first batch whose log append suspends (see IngestProcessor.PendingAppend).</summary>
    internal IngestProcessor.PendingAppend? PendingAppend { get; set; }

    /// <summary>The binary trace context (schemas/stored_event.proto, trace_context) of the batch's span.</summary>
    internal ReadOnlyMemory<byte> TraceContextBytes(ActivityContext context)
    {
        _traceContext ??= new byte[IngestTelemetry.TraceContextBytes];
        IngestTelemetry.WriteTraceContext(context, _traceContext);
        return _traceContext;
    }
    private int _rejectionCount;
    private byte[] _ack = [];

    internal byte[] Records => _records;
    internal int RecordsLength { get; private set; }
    internal ReadOnlySpan<Rejected> Rejections => _rejections.AsSpan(0, _rejectionCount);

    internal void Reset()
    {
        RecordsLength = 0;
        _rejectionCount = 0;
    }

    internal Span<byte> ReserveRecord(int maxBytes)
    {
        int needed = RecordsLength + 4 + maxBytes;
        if (needed > _records.Length) Grow(ref _records, needed, RecordsLength);
        return _records.AsSpan(RecordsLength, 4 + maxBytes);
    }

    internal void CommitRecord(int bytes) => RecordsLength += bytes;

    internal void AddRejection(Rejected rejection)
    {
        if (_rejectionCount == _rejections.Length)
        {
            int before = _rejections.Length;
            Array.Resize(ref _rejections, Math.Max(16, before * 2));
            Metrics?.ScratchResized((_rejections.Length - before) * Unsafe.SizeOf<Rejected>());
        }
        _rejections[_rejectionCount++] = rejection;
    }

    internal Span<byte> AckBuffer(int maxBytes)
    {
        if (_ack.Length < maxBytes) Grow(ref _ack, maxBytes, 0);
        return _ack;
    }

    internal ReadOnlyMemory<byte> AckMemory(int length) => _ack.AsMemory(0, length);

    private void Grow(ref byte[] buffer, int needed, int keep)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Max(4096, buffer.Length * 2)));
        buffer.AsSpan(0, keep).CopyTo(bigger);
        Metrics?.ScratchResized(bigger.Length - buffer.Length);
        if (buffer.Length > 0) ArrayPool<byte>.Shared.Return(buffer);
        buffer = bigger;
    }

    /// <summary>
    /// After a batch (its Ack sent): gives back each buffer grown past what a connection keeps
    /// between batches. Three compares when nothing is large; the next large batch rents again.
    /// </summary>
    public void ReleaseLargeBuffers()
    {
        if (_records.Length > RetainedBufferBytes) Release(ref _records);
        if (_ack.Length > RetainedBufferBytes) Release(ref _ack);
        if (_rejections.Length > RetainedRejections)
        {
            Metrics?.ScratchResized(-_rejections.Length * Unsafe.SizeOf<Rejected>());
            _rejections = [];
        }
    }

    private void Release(ref byte[] buffer)
    {
        if (buffer.Length == 0) return;
        Metrics?.ScratchResized(-buffer.Length);
        ArrayPool<byte>.Shared.Return(buffer);
        buffer = [];
    }

    /// <summary>
    /// Scratches for HTTP requests, one per request in flight and reused: a WebSocket keeps one for
    /// its life, but over HTTP a new one per request (and its PendingAppend) was a third of what a
    /// single-event beacon allocated. One pool per processor, since a scratch's PendingAppend
    /// belongs to the processor that made it. A scratch goes back without its large buffers
    /// (<see cref="ReleaseLargeBuffers"/>).
    /// </summary>
    public static ObjectPool<IngestScratch> NewPool(IngestMetrics? metrics = null) =>
        new DefaultObjectPool<IngestScratch>(new PoolPolicy(metrics), maximumRetained: 1024);

    private sealed class PoolPolicy(IngestMetrics? metrics) : PooledObjectPolicy<IngestScratch>
    {
        public override IngestScratch Create() => new() { Metrics = metrics };

        public override bool Return(IngestScratch scratch)
        {
            // What the last request learnt about its caller must not reach the next one.
            scratch.AllowedOrigins = null;
            scratch.TraceParent = default;
            scratch.Reset();
            scratch.ReleaseLargeBuffers();
            return true;
        }
    }

    public void Dispose()
    {
        Release(ref _records);
        Release(ref _ack);
        Metrics?.ScratchResized(-_rejections.Length * Unsafe.SizeOf<Rejected>());
        _rejections = [];
    }
}
