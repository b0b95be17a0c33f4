namespace Analytics.EventLog;

/// <summary>
/// The event log between FastIngest and Rollup. Contract: when <see cref="AppendAsync"/>
/// completes, every record of the call is durable (fsynced locally, or acknowledged by all
/// in-sync replicas in Kafka) and will be delivered to every consumer group at least once.
/// Records of one call stay in order. Exactly-once counting is the consumers' job: they
/// deduplicate by event id, so a replay after a crash never double counts.
/// </summary>
public interface IEventLog : IAsyncDisposable
{
    /// <summary>
    /// Appends <paramref name="recordCount"/> records and completes once they are durable.
    /// <paramref name="records"/> holds the records back to back, each prefixed with its length
    /// as a 4-byte little-endian integer. <paramref name="partitionKey"/> (the merchant id) keeps
    /// one merchant's records ordered where the log has partitions. Thread-safe: concurrent
    /// appends are group-committed (one fsync for many callers).
    /// Throws <see cref="EventLogUnavailableException"/> when the log cannot take writes now
    /// (disk full, broker down): nothing of the call is acknowledged and the caller must ask the
    /// client to retry.
    /// </summary>
    ValueTask AppendAsync(ulong partitionKey, ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken = default);

    /// <summary>
    /// Opens a consumer that resumes from the group's last committed position. In Kafka, every
    /// consumer of a group reads a share of the partitions and shares move on rebalances.
    /// </summary>
    IEventLogConsumer OpenConsumer(string group);
}

/// <summary>
/// Reads the log in order for one consumer group. Not thread-safe: one reader loop per consumer.
/// Positions are committed durably; after a crash the consumer resumes at the last commit, so
/// records between the last commit and the crash are delivered again.
/// </summary>
public interface IEventLogConsumer : IAsyncDisposable
{
    /// <summary>
    /// Waits up to <paramref name="maxWait"/> for records after the current position and
    /// returns at most <paramref name="maxRecords"/> of them (an empty batch when none came).
    /// The batch's memory is valid until the next call to ReadAsync. An empty batch has
    /// FirstOffset = NextOffset = the consumer's current position.
    /// </summary>
    ValueTask<LogBatch> ReadAsync(int maxRecords, TimeSpan maxWait, CancellationToken cancellationToken = default);

    /// <summary>Durably records that everything up to and including the batch is processed.</summary>
    ValueTask CommitAsync(LogBatch batch, CancellationToken cancellationToken = default);

    /// <summary>Records appended but not yet committed by this group (consumer lag), over the sources this consumer reads.</summary>
    long Lag { get; }

    /// <summary>Consumer lag per source this consumer reads now (one entry for the local log, one per assigned Kafka partition).</summary>
    IReadOnlyList<KeyValuePair<string, long>> LagBySource { get; }
}

/// <summary>A run of consecutive records. Offsets are per log (per partition in Kafka).</summary>
public sealed class LogBatch
{
    public LogBatch(IReadOnlyList<ReadOnlyMemory<byte>> records, long firstOffset, long nextOffset, string source = "local", bool resumed = false)
    {
        Records = records;
        FirstOffset = firstOffset;
        NextOffset = nextOffset;
        Source = source;
        Resumed = resumed;
    }

    public IReadOnlyList<ReadOnlyMemory<byte>> Records { get; }

    /// <summary>Offset of Records[0]; consecutive records have consecutive offsets.</summary>
    public long FirstOffset { get; }

    /// <summary>The position to resume from after this batch.</summary>
    public long NextOffset { get; }

    /// <summary>Names the log (and partition) the offsets belong to, e.g. "local" or "events/3".</summary>
    public string Source { get; }

    public bool IsEmpty => Records.Count == 0;

    /// <summary>
    /// True for the first batch of a source after this consumer started reading it (opened, or
    /// was assigned the partition in a rebalance). It starts at the group's committed position,
    /// so another reader (or this one before a crash) may have been part-way through a range
    /// from there: the reader must look for work it left in flight before going on.
    /// </summary>
    public bool Resumed { get; }

    /// <summary>Records [start, start + count) of this batch as a batch of their own (same memory).</summary>
    public LogBatch Slice(int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, Records.Count);
        var records = new ReadOnlyMemory<byte>[count];
        for (int i = 0; i < count; i++) records[i] = Records[start + i];
        return new LogBatch(records, FirstOffset + start, FirstOffset + start + count, Source, Resumed && start == 0);
    }
}

public sealed class EventLogUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A record this reader cannot take yet (e.g. written with a newer schema). The consumer stays at
/// it: the reader must retry later, never skip it.
/// </summary>
public sealed class EventLogRecordException(string source, string message) : Exception(message)
{
    /// <summary>The source (partition) that stopped; its next batch is marked Resumed.</summary>
    public string LogSource { get; } = source;
}
