namespace Analytics.FastIngest.Transport;

/// <summary>
/// Graceful drain of the ingest endpoints (the host starts it on SIGTERM).
///
/// Contract: once <see cref="Begin"/> is called, new WebSocket upgrades and HTTP batches are
/// refused with 503 + Retry-After (the load balancer sends the client elsewhere, or the client
/// backs off and retries); every open WebSocket finishes the batch it is processing (its answer,
/// OK or RETRY, is sent as usual) and is then closed with 1001 (going away). Batches the client
/// sent after that are never acknowledged, so the client resends them to another node; the
/// event id makes a batch that was both stored and resent count once. Nothing acknowledged is
/// lost because an acknowledgement still means "durable in the log" during the drain.
/// <see cref="WhenConnectionsClosedAsync"/> tells the host when no WebSocket is left.
/// </summary>
public sealed class IngestDrain
{
    /// <summary>What a refused client is told to wait: long enough for the balancer's health check
    /// to take this node out, short enough that an agent does not notice.</summary>
    public const int RetryAfterSeconds = 1;

    // Never disposed: it has no timer, and a handler still running while the host is disposed
    // must be able to read its token.
    private readonly CancellationTokenSource _draining = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _open;

    public bool IsDraining => _draining.IsCancellationRequested;

    /// <summary>Cancelled when the drain begins: open WebSockets stop waiting for their next batch.</summary>
    public CancellationToken Draining => _draining.Token;

    /// <summary>WebSocket connections open now.</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    public void Begin()
    {
        _draining.Cancel();
        if (Volatile.Read(ref _open) == 0) _closed.TrySetResult();
    }

    /// <summary>Completes when the drain has begun and no WebSocket is open (or when
    /// <paramref name="cancellationToken"/> gives up first: then it throws).</summary>
    public Task WhenConnectionsClosedAsync(CancellationToken cancellationToken) => _closed.Task.WaitAsync(cancellationToken);

    /// <summary>Counts a new connection in, unless the drain has begun (then the caller refuses
    /// it). Counting first and checking after leaves no moment where a drain that just began
    /// misses a connection.</summary>
    internal bool TryOpen()
    {
        Interlocked.Increment(ref _open);
        if (!IsDraining) return true;
        ConnectionClosed();
        return false;
    }

    internal void ConnectionClosed()
    {
        if (Interlocked.Decrement(ref _open) == 0 && IsDraining) _closed.TrySetResult();
    }

    /// <summary>The refusal while draining: 503 with Retry-After, as for a log that refuses.</summary>
    internal static Task RefuseAsync(Microsoft.AspNetCore.Http.HttpContext context, IngestMetrics metrics)
    {
        metrics.Refused(BatchRefusal.Draining);
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Microsoft.AspNetCore.Http.Results.Problem(statusCode: Microsoft.AspNetCore.Http.StatusCodes.Status503ServiceUnavailable,
            title: "Draining", detail: "This node is shutting down; retry (another node will answer).").ExecuteAsync(context);
    }
}
