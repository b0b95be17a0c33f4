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

/// <summary>
/// Logs the control plane's failures at most once a minute, with how many batches were answered
/// RETRY since the last line: during an outage keys already cached keep being served, so no
/// batch marks its end the way an accepted append ends a log outage (<see cref="LogRefusals"/>).
/// </summary>
internal sealed partial class ControlPlaneRefusals(ILogger logger)
{
    private long _refused;
    private long _nextLineAt;

    public void Refused(Exception error)
    {
        Interlocked.Increment(ref _refused);
        long now = Environment.TickCount64;
        long due = Volatile.Read(ref _nextLineAt);
        if (now < due || Interlocked.CompareExchange(ref _nextLineAt, now + 60_000, due) != due) return;
        LogFailure(logger, Interlocked.Exchange(ref _refused, 0), error);
    }

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "The control plane failed a lookup ingest needed (a site key or the day's visitor salt); {Refused} batches answered RETRY since the last such line")]
    private static partial void LogFailure(ILogger logger, long refused, Exception error);
}
