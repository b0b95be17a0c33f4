using System.Buffers;
using System.Net.WebSockets;
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
/// batch that does not decode, 1009 for a message over the size limit.
///
/// Memory: a connection holds one pooled 4 KiB receive buffer, grown from the pool only while a
/// larger message is being read, so idle connections cost little.
/// </summary>
internal static class WebSocketIngest
{
    private const int InitialBufferBytes = 4096;

    public static async Task HandleAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "WebSocket upgrade required", detail: "GET /v1/ws must be a WebSocket upgrade request.").ExecuteAsync(context);
            return;
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        var client = new ClientInfo(context.Connection.RemoteIpAddress, context.Request.Headers.UserAgent, processor.Limits.MaxUserAgentBytes);
        using var scratch = new IngestScratch
        {
            RateLimiter = new EventRateLimiter(processor.Limits.MaxEventsPerSecondPerConnection, processor.Limits.EventBurstPerConnection),
        };
        int maxMessage = processor.Limits.MaxMessageBytes;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
        var aborted = context.RequestAborted;
        metrics.ConnectionOpened();
        try
        {
            int length = 0;
            while (true)
            {
                // Read at most one byte past the limit: enough to know the message is too big.
                int window = Math.Min(buffer.Length, maxMessage + 1) - length;
                var received = await socket.ReceiveAsync(buffer.AsMemory(length, window), aborted);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, aborted);
                    return;
                }
                if (received.MessageType == WebSocketMessageType.Text)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.InvalidMessageType, "binary EventBatch messages only", aborted);
                    return;
                }
                length += received.Count;
                if (length > maxMessage)
                {
                    metrics.Oversize();
                    await socket.CloseAsync(WebSocketCloseStatus.MessageTooBig, $"message over {maxMessage} bytes", aborted);
                    return;
                }
                if (!received.EndOfMessage)
                {
                    if (length == buffer.Length) buffer = Grow(buffer, length, Math.Min(buffer.Length * 2, maxMessage + 1));
                    continue;
                }

                var result = await processor.ProcessAsync(buffer.AsMemory(0, length), client, scratch, aborted);
                if (result.Status == AckStatus.Malformed)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.InvalidPayloadData, "message is not a valid EventBatch", aborted);
                    return;
                }
                await socket.SendAsync(result.Ack, WebSocketMessageType.Binary, endOfMessage: true, aborted);
                length = 0;
                if (buffer.Length > InitialBufferBytes * 16)
                {
                    // A rare large batch should not pin a large buffer to an idle connection.
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ConnectionAbortedException)
        {
            // The client went away. Batches it sent without an ack are its to resend; the server
            // never acknowledged them, so nothing is lost.
        }
        finally
        {
            metrics.ConnectionClosed();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static byte[] Grow(byte[] buffer, int used, int size)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(size);
        buffer.AsSpan(0, used).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(buffer);
        return bigger;
    }

    /// <summary>
    /// GET /v1/echo (only when enabled, for benchmarks): the same receive loop and buffers, but
    /// every message is sent straight back. The load tool's baseline: what Kestrel's WebSocket
    /// path costs without our parsing, validation and durable log.
    /// </summary>
    public static async Task EchoAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
        try
        {
            int length = 0;
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer.AsMemory(length), context.RequestAborted);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, context.RequestAborted);
                    return;
                }
                length += received.Count;
                if (!received.EndOfMessage)
                {
                    if (length == buffer.Length) buffer = Grow(buffer, length, buffer.Length * 2);
                    continue;
                }
                await socket.SendAsync(buffer.AsMemory(0, length), WebSocketMessageType.Binary, true, context.RequestAborted);
                length = 0;
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ConnectionAbortedException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
