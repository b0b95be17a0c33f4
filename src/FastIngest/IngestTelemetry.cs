using System.Diagnostics;
using Analytics.EventLog.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Analytics.FastIngest;

/// <summary>
/// Ingest's tracing: the ActivitySource "Analytics.FastIngest" (one span "ingest.batch" per
/// batch) and where a batch's parent comes from: the request's span when the host traces
/// ASP.NET Core requests, else the request's own W3C <c>traceparent</c> header (the WebSocket
/// upgrade request's for a whole connection), else none (each batch a new trace).
/// </summary>
public static class IngestTelemetry
{
    public const string SourceName = "Analytics.FastIngest";
    public const string BatchSpan = "ingest.batch";
    internal const int TraceContextBytes = TraceContextCodec.Bytes;

    public static readonly ActivitySource Source = new(SourceName);

    internal static void WriteTraceContext(ActivityContext context, Span<byte> destination) => TraceContextCodec.Write(context, destination);

    internal static ActivityContext ParentOf(HttpContext context)
    {
        if (!Source.HasListeners()) return default;
        if (Activity.Current is { } request) return request.Context;
        var headers = context.Request.Headers;
        string? traceparent = headers["traceparent"];
        return traceparent is not null && ActivityContext.TryParse(traceparent, headers["tracestate"], isRemote: true, out var parent) ? parent : default;
    }
}

/// <summary>
/// Logs the log's refusals once per outage, not once per batch: the first refused batch logs a
/// warning with the exception, the first accepted one after it logs how many were refused.
/// </summary>
internal sealed partial class LogRefusals(ILogger logger)
{
    private long _refused;

    public void Refused(Exception error)
    {
        if (Interlocked.Increment(ref _refused) == 1) LogOutage(logger, error);
    }

    public void Accepted()
    {
        // One volatile read on the common path; the exchange only after an outage.
        if (Volatile.Read(ref _refused) == 0) return;
        long refused = Interlocked.Exchange(ref _refused, 0);
        if (refused > 0) LogRecovered(logger, refused);
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "The event log refused a batch; clients are told to retry until it takes writes again")]
    private static partial void LogOutage(ILogger logger, Exception error);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "The event log takes writes again; {Refused} batches were answered with RETRY meanwhile")]
    private static partial void LogRecovered(ILogger logger, long refused);
}
