using System.IO.Pipelines;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Enrichment;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Validation;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;

namespace Analytics.FastIngest.Transport;

/// <summary>
/// GET /v1/ws: one persistent WebSocket per page. Each binary message is one EventBatch; the
/// answer is one Ack, sent after the accepted events are durable. Batches on one socket are
/// processed in order. Limits answer with close codes: 1003 for a text message, 1007 for a
/// batch that does not decode, 1009 for a message over the size limit, 1002 for a frame that
/// breaks the protocol (unmasked, reserved bits, bad control frame), 1008 for a message not
/// complete within <see cref="IngestLimits.MessageReceiveTimeout"/> of its first byte (a slow
/// sender: Kestrel's body-rate limits stop at the upgrade); a peer that reads nothing of what it
/// is sent (Acks, pongs) for as long is dropped without a close frame (a slow reader). The upgrade itself is refused with
/// 503 + Retry-After when the server holds <see cref="IngestLimits.MaxConnections"/>, 429 +
/// Retry-After when the sender's IP holds <see cref="IngestLimits.MaxConnectionsPerIp"/>.
/// Origins are checked per batch (the site key travels in the batch): FORBIDDEN_ORIGIN acks.
///
/// A batch answered RETRY for a rate limit (this connection's, its IP's or its site's) pauses the
/// connection: its next frame is not read until the Ack's retry_after_ms has passed (at most
/// <see cref="MaxRetryPause"/>). A client that waits as told (the agent waits at least twice that)
/// never notices; one that ignores the wait gets one answer per wait instead of one per batch it
/// can send. What it sends meanwhile stays unread in Kestrel's transport buffer (at most 1 MiB per
/// connection, SocketTransportOptions.MaxReadBufferSize, which a client that never reads its Acks
/// could hold already) and then the kernel's, until TCP flow control blocks the sender: the flood
/// costs the server a timer and one batch per wait, not a frame read, a parse and an Ack per batch
/// it can send. Such a connection is paused, not closed: a closed flooder reconnects at once, and
/// an upgrade costs more than the one batch per wait a paused connection gets (docs/security.md,
/// "Abuse").
///
/// Memory: an idle connection holds no message buffer of its own (only Kestrel's pipe); a message
/// buffer is rented from the shared pool while messages flow (see PipeWebSocket), and the batch
/// buffers (IngestScratch) keep at most 64 KiB each between batches.
/// The server sends no pings: the agent reconnects (with backoff) if an idle connection drops.
/// When the node drains (<see cref="IngestDrain"/>), upgrades are refused with 503 and open
/// sockets are closed with 1001 after answering the batch in hand.
/// </summary>
internal static class WebSocketIngest
{

    /// <summary>Seconds a client refused for too many connections should wait before trying again.</summary>
    private const int ConnectionRetryAfterSeconds = 5;

    /// <summary>
    /// The longest a rate-limited connection is paused. The retry-after is already bounded by its
    /// bucket (the time to refill a burst: 5 s with the default limits, since a batch never waits
    /// for more than a burst); this holds whatever the configuration, and equals the agent's
    /// longest backoff, so a well-behaved client is never paused longer than it waits anyway.
    /// </summary>
    internal static readonly TimeSpan MaxRetryPause = TimeSpan.FromSeconds(30);

    /// <remarks>
    /// The checks before the upgrade are synchronous and the socket's whole life is one async
    /// method: each async method still awaiting holds its frame for as long as the socket is open
    /// (three nested ones held ~280 B more per idle connection).
    /// </remarks>
    public static Task HandleAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics, TrafficLimits traffic, IngestDrain drain)
    {
        // A draining node refuses before anything else, so the agent goes to another node at once.
        if (!drain.TryOpen()) return IngestDrain.RefuseAsync(context, metrics);
        ClientInfo client;
        TrafficLimits.ConnectionRefusal refusal;
        try
        {
            if (!context.WebSockets.IsWebSocketRequest) return ClosedAfter(UpgradeRequiredAsync(context, metrics), drain);
            client = ClientInfo.FromRequest(context, processor.Limits.MaxUserAgentBytes);
            refusal = traffic.TryOpenConnection(client.RateKey);
        }
        catch
        {
            drain.ConnectionClosed();
            throw;
        }
        if (refusal != TrafficLimits.ConnectionRefusal.None) return ClosedAfter(RefuseConnectionAsync(context, metrics, refusal), drain);
        return ServeAsync(context, processor, metrics, traffic, client, drain);
    }

    private static Task UpgradeRequiredAsync(HttpContext context, IngestMetrics metrics)
    {
        metrics.Refused(BatchRefusal.UpgradeRequired);
        return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "WebSocket upgrade required", detail: "GET /v1/ws must be a WebSocket upgrade request.").ExecuteAsync(context);
    }

    private static Task RefuseConnectionAsync(HttpContext context, IngestMetrics metrics, TrafficLimits.ConnectionRefusal refusal)
    {
        bool full = refusal == TrafficLimits.ConnectionRefusal.ServerFull;
        metrics.Refused(full ? BatchRefusal.ServerConnectionsFull : BatchRefusal.IpConnectionsFull);
        context.Response.Headers.RetryAfter = ConnectionRetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(statusCode: full ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status429TooManyRequests,
            title: full ? "Too many connections" : "Too many connections from this address",
            detail: full ? "The server holds its maximum of WebSocket connections; try again later." : "This address holds its maximum of WebSocket connections.").ExecuteAsync(context);
    }

    /// <summary>Counts the connection out of the drain once <paramref name="answer"/> is written (or failed).</summary>
    private static async Task ClosedAfter(Task answer, IngestDrain drain)
    {
        try
        {
            await answer;
        }
        finally
        {
            drain.ConnectionClosed();
        }
    }

    private static async Task ServeAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics, TrafficLimits traffic, ClientInfo client, IngestDrain drain)
    {
        try
        {
            using var socket = await PipeWebSocket.AcceptAsync(context, processor.Limits.MaxMessageBytes);
            if (socket is null)
            {
                await UpgradeRequiredAsync(context, metrics);
                return;
            }
            // A peer that stops reading (its Acks, pongs, close frame pile up) gets as long as a
            // message may take to arrive, then the connection is dropped.
            socket.WriteTimeout = processor.Limits.MessageReceiveTimeout;
            using var scratch = new IngestScratch
            {
                Metrics = metrics,
                RateLimiter = new EventRateLimiter(processor.Limits.MaxEventsPerSecondPerConnection, processor.Limits.EventBurstPerConnection),
                TraceParent = IngestTelemetry.ParentOf(context),
            };
            var aborted = context.RequestAborted;
            // Also cancelled when the node drains: the loop then stops waiting for the next batch
            // (a batch being processed is answered first, since the drain never cancels processing).
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(aborted, drain.Draining);
            // Stopwatch timestamp of the first byte of the message being received; 0 between messages.
            long messageStarted = 0;
            // Set after a rate-limited RETRY: how long the next read waits.
            TimeSpan pause = TimeSpan.Zero;
            metrics.ConnectionOpened();
            try
            {
                while (true)
                {
                    // Between messages the idle timeout runs (after a pause, if any); once a message has
                    // begun, its deadline. CancelAfter restarts the one timer: no allocation per read.
                    idle.CancelAfter(messageStarted == 0 ? pause + processor.Limits.WebSocketIdleTimeout
                        : processor.Limits.MessageReceiveTimeout - System.Diagnostics.Stopwatch.GetElapsedTime(messageStarted) is { Ticks: > 0 } left ? left : TimeSpan.FromTicks(1));
                    ReadResult read;
                    try
                    {
                        if (pause > TimeSpan.Zero)
                        {
                            // One timer per wait; a drain or an abort ends the pause (the token).
                            await Task.Delay(pause, idle.Token);
                            pause = TimeSpan.Zero;
                        }
                        read = await socket.Input.ReadAsync(idle.Token);
                    }
                    catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                    {
                        if (drain.IsDraining)
                        {
                            await socket.CloseAsync(WebSocketFrames.CloseGoingAway, "server draining", peerClosedFirst: false, aborted);
                        }
                        else if (messageStarted != 0)
                        {
                            metrics.Refused(BatchRefusal.SlowSender);
                            await socket.CloseAsync(WebSocketFrames.ClosePolicyViolation, $"message not complete within {processor.Limits.MessageReceiveTimeout.TotalSeconds:0} s", peerClosedFirst: false, aborted);
                        }
                        else
                        {
                            await socket.CloseAsync(WebSocketFrames.CloseGoingAway, "idle", peerClosedFirst: false, aborted);
                        }
                        return;
                    }
                    var buffer = read.Buffer;
                    var step = socket.Parse(ref buffer);
                    socket.Input.AdvanceTo(buffer.Start, step == PipeWebSocket.Step.NeedMore ? buffer.End : buffer.Start);
                    if (step == PipeWebSocket.Step.NeedMore)
                    {
                        // Part of a frame is buffered, or a fragmented message is under way: its clock runs.
                        if (messageStarted == 0 && (buffer.Length > 0 || socket.MessageInProgress)) messageStarted = System.Diagnostics.Stopwatch.GetTimestamp();
                    }
                    else
                    {
                        messageStarted = 0;
                    }
                    switch (step)
                    {
                        case PipeWebSocket.Step.NeedMore:
                            if (socket.HasPendingWrites) await socket.FlushAsync(aborted); // pongs
                            if (read.IsCompleted) return;
                            continue;
                        case PipeWebSocket.Step.PeerClosed:
                            await socket.CloseAsync(WebSocketFrames.CloseNormal, "", peerClosedFirst: true, aborted);
                            return;
                        case PipeWebSocket.Step.Error:
                            if (socket.ErrorCode == WebSocketFrames.CloseMessageTooBig) metrics.Oversize();
                            else metrics.Refused(BatchRefusal.WebSocketProtocolError);
                            await socket.CloseAsync(socket.ErrorCode, socket.ErrorCode == WebSocketFrames.CloseMessageTooBig ? $"message over {processor.Limits.MaxMessageBytes} bytes" : "protocol error", peerClosedFirst: false, aborted);
                            return;
                    }
                    if (socket.MessageIsText)
                    {
                        metrics.Refused(BatchRefusal.WebSocketTextMessage);
                        await socket.CloseAsync(WebSocketFrames.CloseUnsupportedData, "binary EventBatch messages only", peerClosedFirst: false, aborted);
                        return;
                    }
                    var result = await processor.ProcessAsync(socket.Message, client, scratch, aborted);
                    socket.MessageDone();
                    if (result.Status == AckStatus.Malformed)
                    {
                        await socket.CloseAsync(WebSocketFrames.CloseInvalidPayload, "message is not a valid EventBatch", peerClosedFirst: false, aborted);
                        return;
                    }
                    socket.WriteFrame(WebSocketFrames.OpBinary, result.Ack.Span);
                    await socket.FlushAsync(aborted);
                    // The Ack is sent: a large batch's buffers go back now, not at the socket's end.
                    scratch.ReleaseLargeBuffers();
                    if (result.Status == AckStatus.Retry && result.RetryReason is RetryReason.RateLimitedConnection or RetryReason.RateLimitedIp or RetryReason.RateLimitedSite)
                    {
                        // Not for LOG_UNAVAILABLE: that wait is the server's doing, and the breaker already answers it without work.
                        pause = TimeSpan.FromMilliseconds(Math.Min(result.RetryAfterMs, MaxRetryPause.TotalMilliseconds));
                    }
                }
            }
            catch (PeerNotReadingException)
            {
                // Nothing more can reach it, not even a close frame. A batch whose Ack did not
                // leave is in the log; the client resends it and the copy is dropped by its id.
                metrics.Refused(BatchRefusal.SlowReader);
                context.Abort();
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ConnectionAbortedException)
            {
                // The client went away (reset, abort); nothing of an unanswered batch was acknowledged.
            }
            finally
            {
                metrics.ConnectionClosed();
            }
        }
        finally
        {
            traffic.CloseConnection(client.RateKey);
            drain.ConnectionClosed();
        }
    }

    /// <summary>
    /// The benchmark baseline: every message straight back, over the same framing and Kestrel
    /// configuration as ingest, with no parsing, validation or log.
    /// </summary>
    public static async Task EchoAsync(HttpContext context)
    {
        using var socket = await PipeWebSocket.AcceptAsync(context, IngestLimits.Default.MaxMessageBytes);
        if (socket is null)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }
        var aborted = context.RequestAborted;
        try
        {
            while (true)
            {
                var read = await socket.Input.ReadAsync(aborted);
                var buffer = read.Buffer;
                var step = socket.Parse(ref buffer);
                socket.Input.AdvanceTo(buffer.Start, step == PipeWebSocket.Step.NeedMore ? buffer.End : buffer.Start);
                if (step == PipeWebSocket.Step.NeedMore)
                {
                    if (socket.HasPendingWrites) await socket.FlushAsync(aborted);
                    if (read.IsCompleted) return;
                    continue;
                }
                if (step != PipeWebSocket.Step.Message)
                {
                    await socket.CloseAsync(step == PipeWebSocket.Step.Error ? socket.ErrorCode : WebSocketFrames.CloseNormal, "", peerClosedFirst: step == PipeWebSocket.Step.PeerClosed, aborted);
                    return;
                }
                socket.WriteFrame(socket.MessageIsText ? WebSocketFrames.OpText : WebSocketFrames.OpBinary, socket.Message.Span);
                socket.MessageDone();
                await socket.FlushAsync(aborted);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ConnectionAbortedException)
        {
        }
    }
}
