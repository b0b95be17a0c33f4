using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Analytics.Store;

/// <summary>
/// The stores' instruments (meter "Analytics.Store"): one histogram of RowBinary insert latency,
/// tagged with the store kind and the table's name without its database (a handful of values).
/// Process-wide: a process opens one store. One Record per insert, i.e. per table per Rollup round.
/// </summary>
public static class StoreTelemetry
{
    public const string MeterName = "Analytics.Store";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Histogram<double> InsertDuration = Meter.CreateHistogram("analytics_store_insert_duration", "s",
        "One RowBinary insert (a Rollup round inserts raw and enriched rows per day), by store and table.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });

    /// <summary>Times one insert; <paramref name="store"/> is "embedded" or "clickhouse".</summary>
    public static async Task<long> TimeInsertAsync(string store, string table, Task<long> insert)
    {
        long started = Stopwatch.GetTimestamp();
        string outcome = "error";
        try
        {
            long rows = await insert.ConfigureAwait(false);
            outcome = "ok";
            return rows;
        }
        finally
        {
            int dot = table.LastIndexOf('.');
            InsertDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new KeyValuePair<string, object?>("store", store),
                new KeyValuePair<string, object?>("table", dot < 0 ? table : table[(dot + 1)..]),
                new KeyValuePair<string, object?>("outcome", outcome));
        }
    }
}
