using System.Buffers;
using System.IO.Pipelines;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Enrichment;
using Microsoft.AspNetCore.Http;

namespace Analytics.FastIngest.Transport;

/// <summary>
/// POST /v1/events: the same EventBatch as a request body, for navigator.sendBeacon, fetch
/// keepalive and clients that cannot hold a WebSocket. The body is read from Kestrel's pipe and
/// parsed in place when it arrived in one segment (the common case for small bodies). Answers:
/// 200 Ack; 400 undecodable (problem+json); 403 unknown site (Ack); 413 over the size limit;
/// 415 wrong content type; 503 + Retry-After when the log refused the write (Ack RETRY).
/// Content types: application/x-protobuf, or text/plain because sendBeacon may only send
/// CORS-safelisted types without a preflight.
/// </summary>
internal static class HttpIngest
{
    public static async Task HandleAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics)
    {
        var request = context.Request;
        var response = context.Response;
        response.Headers.AccessControlAllowOrigin = "*";
        string? contentType = request.ContentType;
        if (contentType is null || !(contentType.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) || contentType.StartsWith("text/plain", StringComparison.OrdinalIgnoreCase)))
        {
            await Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported content type", detail: "Send an EventBatch as application/x-protobuf (or text/plain from sendBeacon).").ExecuteAsync(context);
            return;
        }
        int max = processor.Limits.MaxMessageBytes;
        if (request.ContentLength > max)
        {
            metrics.Oversize();
            await TooLarge(context, max);
            return;
        }

        PipeReader reader = request.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await reader.ReadAsync(context.RequestAborted);
            if (read.Buffer.Length > max)
            {
                metrics.Oversize();
                reader.AdvanceTo(read.Buffer.End);
                await TooLarge(context, max);
                return;
            }
            if (read.IsCompleted || read.IsCanceled) break;
            // Nothing consumed, everything examined: wake up when more arrives.
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        var body = read.Buffer;
        byte[]? copy = null;
        try
        {
            ReadOnlyMemory<byte> message;
            if (body.IsSingleSegment)
            {
                message = body.First;
            }
            else
            {
                copy = ArrayPool<byte>.Shared.Rent((int)body.Length);
                body.CopyTo(copy);
                message = copy.AsMemory(0, (int)body.Length);
            }
            var client = ClientInfo.FromRequest(context, processor.Limits.MaxUserAgentBytes);
            using var scratch = new IngestScratch { TraceParent = IngestTelemetry.ParentOf(context) };
            var result = await processor.ProcessAsync(message, client, scratch, context.RequestAborted);
            switch (result.Status)
            {
                case AckStatus.Malformed:
                    await Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Malformed batch", detail: "The body is not a valid analytics.v1.EventBatch.").ExecuteAsync(context);
                    return;
                case AckStatus.UnknownSite:
                    response.StatusCode = StatusCodes.Status403Forbidden;
                    break;
                case AckStatus.Retry:
                    response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                    response.Headers.RetryAfter = Math.Max(1, IngestProcessor.RetryAfterMs / 1000).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    break;
                default:
                    response.StatusCode = StatusCodes.Status200OK;
                    break;
            }
            response.ContentType = "application/x-protobuf";
            response.ContentLength = result.Ack.Length;
            await response.Body.WriteAsync(result.Ack, context.RequestAborted);
        }
        finally
        {
            reader.AdvanceTo(body.End);
            if (copy is not null) ArrayPool<byte>.Shared.Return(copy);
        }
    }

    private static Task TooLarge(HttpContext context, int max) =>
        Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Batch too large", detail: $"A batch may have at most {max} bytes.").ExecuteAsync(context);

    /// <summary>CORS preflight for browsers posting application/x-protobuf from merchants' pages.</summary>
    public static void Preflight(HttpContext context)
    {
        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = "*";
        headers.AccessControlAllowMethods = "POST, OPTIONS";
        headers.AccessControlAllowHeaders = "Content-Type";
        headers.AccessControlMaxAge = "86400";
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }
}
