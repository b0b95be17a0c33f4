using System.Diagnostics;

namespace Analytics.EventLog.Telemetry;

/// <summary>
/// The trace context a log record carries from ingest to Rollup (schemas/stored_event.proto,
/// field 22 <c>trace_context</c>): the W3C traceparent's fields in binary, 16 bytes trace id,
/// 8 bytes span id, 1 byte trace flags (25 bytes instead of the 55 characters of the text form).
/// Records without it (written before tracing existed, or with tracing off) simply have none.
/// </summary>
public static class TraceContextCodec
{
    public const int Bytes = 25;

    public static void Write(ActivityContext context, Span<byte> destination)
    {
        context.TraceId.CopyTo(destination[..16]);
        context.SpanId.CopyTo(destination.Slice(16, 8));
        destination[24] = (byte)context.TraceFlags;
    }

    /// <summary>False for anything but 25 bytes with non-zero ids: such a record is still stored, only unlinked.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out ActivityContext context)
    {
        context = default;
        if (source.Length != Bytes) return false;
        var traceId = ActivityTraceId.CreateFromBytes(source[..16]);
        var spanId = ActivitySpanId.CreateFromBytes(source.Slice(16, 8));
        if (traceId == default || spanId == default) return false;
        context = new ActivityContext(traceId, spanId, (ActivityTraceFlags)(source[24] & 1), isRemote: true);
        return true;
    }
}
