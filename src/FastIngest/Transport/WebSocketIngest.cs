using System.IO.Pipelines;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Enrichment;
using Analytics.FastIngest.Validation;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;

namespace Analytics.FastIngest.Transport;

/// <summary>
/// GET /v1/ws: one persistent WebSocket per page. Each binary message is one EventBatch; the
/// answer is one Ack, sent after the accepted events are durable. Batches on one socket are
/// processed in order. Limits answer with close codes: 1003 for a text message, 1007 for a
/// batch that does not decode, 1009 for a message over the size limit, 1002 for a frame that
/// breaks the protocol (unmasked, reserved bits, bad control frame).
///
/// Memory: an idle connection holds no buffer of its own (only Kestrel's pipe); a message buffer
/// is rented from the shared pool while messages flow (see PipeWebSocket).
/// The server sends no pings: the agent reconnects (with backoff) if an idle connection drops.
/// </summary>
internal static class WebSocketIngest
{

    public static async Task HandleAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics)
    {
        using var socket = await PipeWebSocket.AcceptAsync(context, processor.Limits.MaxMessageBytes);
        if (socket is null)
        {
            await Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "WebSocket upgrade required", detail: "GET /v1/ws must be a WebSocket upgrade request.").ExecuteAsync(context);
            return;
        }
        var client = ClientInfo.FromRequest(context, processor.Limits.MaxUserAgentBytes);
        using var scratch = new IngestScratch
        {
            RateLimiter = new EventRateLimiter(processor.Limits.MaxEventsPerSecondPerConnection, processor.Limits.EventBurstPerConnection),
            TraceParent = IngestTelemetry.ParentOf(context),
        };
        var aborted = context.RequestAborted;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        metrics.ConnectionOpened();
        try
        {
            while (true)
            {
                idle.CancelAfter(processor.Limits.WebSocketIdleTimeout); // restarts the one timer; no allocation per read
                ReadResult read;
                try
                {
                    read = await socket.Input.ReadAsync(idle.Token);
                }
                catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                {
                    await socket.CloseAsync(WebSocketFrames.CloseGoingAway, "idle", peerClosedFirst: false, aborted);
                    return;
                }
                var buffer = read.Buffer;
                var step = socket.Parse(ref buffer);
                socket.Input.AdvanceTo(buffer.Start, step == PipeWebSocket.Step.NeedMore ? buffer.End : buffer.Start);
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
                        await socket.CloseAsync(socket.ErrorCode, socket.ErrorCode == WebSocketFrames.CloseMessageTooBig ? $"message over {processor.Limits.MaxMessageBytes} bytes" : "protocol error", peerClosedFirst: false, aborted);
                        return;
                }
                if (socket.MessageIsText)
                {
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
            }
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
