using System.Buffers;
using System.IO.Pipelines;
using Analytics.Contracts.V1;
using Analytics.Contracts;
using Analytics.ControlPlane;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Validation;
using Analytics.FastIngest.Enrichment;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.ObjectPool;

namespace Analytics.FastIngest.Transport;

/// <summary>
/// POST /v1/events: the same EventBatch as a request body, for navigator.sendBeacon, fetch
/// keepalive and clients that cannot hold a WebSocket. The body is read from Kestrel's pipe and
/// parsed in place when it arrived in one segment (the common case for small bodies). Answers:
/// 200 Ack; 400 undecodable (problem+json); 403 unknown site or forbidden origin (Ack); 408 a
/// body not complete within <see cref="Validation.IngestLimits.MessageReceiveTimeout"/>; 413 over
/// the size limit; 415 wrong content type; 429 + Retry-After over the IP's or the site's events
/// per second (Ack RETRY); 503 + Retry-After when the log refused the write or the control plane
/// failed the site lookup (Ack RETRY).
/// Content types: application/x-protobuf, or text/plain because sendBeacon may only send
/// CORS-safelisted types without a preflight.
///
/// CORS answers come from the site's allowed origins (<see cref="OriginPolicy"/>): an Ack names the
/// caller's origin in Access-Control-Allow-Origin only when the site allows it, so a foreign page
/// can neither read the answer nor (the batch being refused first) send events; refusals that
/// depend on no site are readable by any page (<see cref="AllowReading"/>), a 403 by none. A
/// preflight carries no body and so no site key; with <c>?site=KEY</c> in the URL it is answered
/// from that site's list (403 for a foreign origin), without it the preflight is granted and the
/// POST that follows is checked.
/// </summary>
internal static class HttpIngest
{
    public static async Task HandleAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics, IngestDrain drain, ObjectPool<IngestScratch> scratches)
    {
        var request = context.Request;
        var response = context.Response;
        response.Headers.Vary = "Origin";
        if (drain.IsDraining)
        {
            AllowReading(context);
            await IngestDrain.RefuseAsync(context, metrics);
            return;
        }
        string? contentType = request.ContentType;
        if (contentType is null || !(contentType.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) || contentType.StartsWith("text/plain", StringComparison.OrdinalIgnoreCase)))
        {
            metrics.Refused(BatchRefusal.UnsupportedContentType);
            AllowReading(context);
            await Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported content type", detail: "Send an EventBatch as application/x-protobuf (or text/plain from sendBeacon).").ExecuteAsync(context);
            return;
        }
        int max = processor.Limits.MaxMessageBytes;
        if (request.ContentLength > max)
        {
            metrics.Oversize();
            AllowReading(context);
            await TooLarge(context, max);
            return;
        }

        PipeReader reader = request.BodyReader;
        // Usually the whole body came with the headers: then no deadline is needed (it costs a
        // linked token source and a timer per request).
        bool started = reader.TryRead(out var read);
        if (!started || !(read.IsCompleted || read.IsCanceled) || read.Buffer.Length > max)
        {
            if (started) reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            if (await ReadWithinDeadlineAsync(context, processor, metrics, reader, max) is not { } whole) return;
            read = whole;
        }

        var body = read.Buffer;
        byte[]? copy = null;
        IngestScratch? scratch = null;
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
            scratch = scratches.Get();
            scratch.TraceParent = IngestTelemetry.ParentOf(context);
            var result = await processor.ProcessAsync(message, client, scratch, context.RequestAborted);
            // Passed the origin check, or refused before the site was known: the page may read
            // the answer. A 403 (unknown key, foreign origin) stays unreadable.
            if (scratch.AllowedOrigins is not null || result.Status is AckStatus.Malformed or AckStatus.Retry) AllowReading(context);
            switch (result.Status)
            {
                case AckStatus.Malformed:
                    await Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Malformed batch", detail: "The body is not a valid analytics.v1.EventBatch.").ExecuteAsync(context);
                    return;
                case AckStatus.UnknownSite or AckStatus.ForbiddenOrigin:
                    response.StatusCode = StatusCodes.Status403Forbidden;
                    break;
                case AckStatus.Retry:
                    response.StatusCode = result.RetryReason is RetryReason.LogUnavailable or RetryReason.ControlPlaneUnavailable ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status429TooManyRequests;
                    // Whole seconds, rounded up: Retry-After has no finer unit.
                    response.Headers.RetryAfter = Math.Max(1, (result.RetryAfterMs + 999) / 1000).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    break;
                default:
                    response.StatusCode = StatusCodes.Status200OK;
                    break;
            }
            response.ContentType = "application/x-protobuf";
            response.ContentLength = result.Ack.Length;
            await response.Body.WriteAsync(result.Ack, context.RequestAborted);
            // Only after a normal end: a scratch whose batch ended in an exception is not reused.
            scratches.Return(scratch);
            scratch = null;
        }
        finally
        {
            scratch?.Dispose();
            reader.AdvanceTo(body.End);
            if (copy is not null) ArrayPool<byte>.Shared.Return(copy);
        }
    }

    /// <summary>The rest of the body, or null once the answer was written (408, 413).</summary>
    private static async ValueTask<ReadResult?> ReadWithinDeadlineAsync(HttpContext context, IngestProcessor processor, IngestMetrics metrics, PipeReader reader, int max)
    {
        // The whole body within the deadline: Kestrel's MinRequestBodyDataRate alone lets a body
        // trickle at 240 bytes/s for as long as it likes.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        deadline.CancelAfter(processor.Limits.MessageReceiveTimeout);
        while (true)
        {
            ReadResult read;
            try
            {
                read = await reader.ReadAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
            {
                metrics.Refused(BatchRefusal.SlowSender);
                context.Response.Headers.Connection = "close";
                AllowReading(context);
                await Results.Problem(statusCode: StatusCodes.Status408RequestTimeout, title: "Body too slow",
                    detail: $"The body must arrive within {processor.Limits.MessageReceiveTimeout.TotalSeconds:0} s.").ExecuteAsync(context);
                return null;
            }
            if (read.Buffer.Length > max)
            {
                metrics.Oversize();
                reader.AdvanceTo(read.Buffer.End);
                AllowReading(context);
                await TooLarge(context, max);
                return null;
            }
            if (read.IsCompleted || read.IsCanceled) return read;
            // Nothing consumed, everything examined: wake up when more arrives.
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    /// <summary>
    /// Lets the page that sent the request read the answer: its status and Retry-After (not a
    /// CORS-safelisted header, so it must be exposed). Given to answers that depend on no site
    /// (415, 413, 408, 400, 503 draining, and a RETRY before the site was known: this IP's or
    /// connection's rate, the control plane down) and to the site's own origins. Without it a
    /// browser hides the status from the agent, which then cannot tell a batch refused for what
    /// it is (drop it) from a network error (resend it), nor wait as long as it is told.
    /// </summary>
    private static void AllowReading(HttpContext context)
    {
        if (context.Request.Headers.Origin is not { Count: 1 } origin) return;
        context.Response.Headers.AccessControlAllowOrigin = origin;
        context.Response.Headers.AccessControlExposeHeaders = "Retry-After";
    }

    private static Task TooLarge(HttpContext context, int max) =>
        Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Batch too large", detail: $"A batch may have at most {max} bytes.").ExecuteAsync(context);

    /// <summary>CORS preflight for browsers posting application/x-protobuf from merchants' pages.
    /// With ?site= it may ask the store, so it is charged to the caller's IP like a batch (429),
    /// looks up only keys in a site key's format (else 400), and answers 503 when the store fails.</summary>
    public static void Preflight(HttpContext context, SiteRegistry sites, IngestMetrics metrics, TrafficLimits traffic, IngestLimits limits)
    {
        var headers = context.Response.Headers;
        headers.Vary = "Origin";
        string? origin = context.Request.Headers.Origin;
        string? key = context.Request.Query["site"];
        if (origin is null)
        {
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }
        if (!string.IsNullOrEmpty(key))
        {
            if (!SiteKeys.IsValid(key.AsSpan()) || key.Length > limits.MaxSiteKeyBytes)
            {
                metrics.Refused(BatchRefusal.PreflightMalformedSiteKey);
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }
            if (!traffic.TryAcquireIp(ClientInfo.FromRequest(context, limits.MaxUserAgentBytes).RateKey, 1, out var wait))
            {
                metrics.Refused(BatchRefusal.RateLimitedIp);
                RetryAfter(context, StatusCodes.Status429TooManyRequests, wait);
                return;
            }
            SiteAccess? access;
            try
            {
                access = sites.ResolveAccess(System.Text.Encoding.ASCII.GetBytes(key));
            }
            catch (ControlPlaneUnavailableException)
            {
                metrics.Refused(BatchRefusal.ControlPlaneUnavailable);
                RetryAfter(context, StatusCodes.Status503ServiceUnavailable, TimeSpan.FromMilliseconds(IngestProcessor.RetryAfterMs));
                return;
            }
            if (access is not null && !access.Origins.Allows(origin))
            {
                metrics.Refused(BatchRefusal.ForbiddenOrigin);
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                return;
            }
        }
        headers.AccessControlAllowOrigin = origin;
        headers.AccessControlAllowMethods = "POST, OPTIONS";
        headers.AccessControlAllowHeaders = "Content-Type";
        headers.AccessControlMaxAge = "86400";
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    private static void RetryAfter(HttpContext context, int status, TimeSpan wait)
    {
        context.Response.StatusCode = status;
        // Whole seconds, rounded up: Retry-After has no finer unit.
        context.Response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
