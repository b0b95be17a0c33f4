using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Analytics.EventLog.Telemetry;

/// <summary>
/// The event logs' instruments (meter "Analytics.EventLog") and spans (ActivitySource
/// "Analytics.EventLog", one "log.append" per traced append). Process-wide: a process owns one
/// log. Recorded on the writer thread per group commit and per append, never per record.
/// </summary>
public static class EventLogTelemetry
{
    public const string Name = "Analytics.EventLog";
    public const string AppendSpan = "log.append";

    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);

    // 50 µs .. 10 s: a local fsync is ~0.1-10 ms, a Kafka acknowledgement by all replicas ~1-100 ms.
    private static readonly double[] SecondsBuckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    /// <summary>From an append's call to its records being durable, tag <c>log</c> = local | kafka.</summary>
    public static readonly Histogram<double> AppendDuration = Meter.CreateHistogram("analytics_log_append_duration", "s",
        "From an append to its records being durable (local: fsynced; Kafka: acknowledged by all in-sync replicas).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    /// <summary>One fsync of the local log's segment data.</summary>
    public static readonly Histogram<double> FsyncDuration = Meter.CreateHistogram("analytics_log_fsync_duration", "s",
        "One fsync of the local log's segment data (one per group commit part).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    /// <summary>Records per group commit of the local log (how many appends one fsync serves).</summary>
    public static readonly Histogram<long> GroupCommitRecords = Meter.CreateHistogram("analytics_log_group_commit_records", "{record}",
        "Records written and fsynced together by one group commit of the local log.",
        advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 10, 50, 100, 500, 1000, 5000, 10000, 50000] });

    internal static readonly KeyValuePair<string, object?> Local = new("log", "local");
    public static readonly KeyValuePair<string, object?> Kafka = new("log", "kafka");

    /// <summary>The trace context the current span carries into the log (null when not traced).</summary>
    public static Activity? StartAppend(string system)
    {
        var activity = Source.StartActivity(AppendSpan, ActivityKind.Producer);
        activity?.SetTag("messaging.system", system);
        return activity;
    }
}
