using System.Diagnostics;
using System.Globalization;
using Analytics.Contracts;
using Analytics.EventLog.Kafka.Avro;
using Analytics.EventLog.Telemetry;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.EventLog.Kafka;

/// <summary>
/// One member of a consumer group on the events topic. Kafka interleaves partitions; this
/// consumer buffers records per partition and returns batches of one partition each (offsets in
/// a batch are consecutive, so a batch names a range "topic/partition:[first, next)"). Offsets are
/// committed only by <see cref="CommitAsync"/>, never automatically.
/// Fair across partitions: a read returns the first full batch (or the biggest buffered one when
/// nothing more has arrived), but a partition that held records when another partition's batch
/// went out is owed the next read, full or not (the longest owed first). Otherwise, under a
/// backlog in one partition, the others' records waited in their buffers until it drained (5-11 s
/// for their first round); now they wait one round, at the cost of more, smaller rounds while
/// the backlog lasts. Only the order of partitions changes: within one, batches stay consecutive.
/// Records Kafka delivers behind an already fetched backlog still wait for it to be pulled:
/// librdkafka keeps one prefetch queue for all of a consumer's partitions.
/// Rebalances: partitions use the cooperative-sticky assignor (only moved partitions stop). A
/// revoked partition's buffer is dropped; a newly assigned one starts at the group's committed
/// offset and its first batch says <see cref="LogBatch.Resumed"/>.
/// Records are decoded from Avro back to the StoredEvent protobuf the rest of the pipeline reads.
/// Not thread-safe: one reader loop.
/// </summary>
internal sealed partial class KafkaLogConsumer : IEventLogConsumer
{
    /// <summary>
    /// Prefix for a record whose value is not a StoredEvent in Avro: byte 0x07 is a protobuf tag
    /// with wire type 7, which no parser accepts, so Rollup quarantines the record (with the
    /// original value after this byte) instead of guessing.
    /// </summary>
    internal const byte UndecodableRecordPrefix = 0x07;

    private readonly IConsumer<Ignore, byte[]> _consumer;

    /// <summary>The librdkafka consumer underneath, for tests that make Kafka itself misbehave
    /// (a seek behind the position, as a restarted fetch would).</summary>
    internal IConsumer<Ignore, byte[]> KafkaConsumer => _consumer;
    private readonly string _topic;
    private readonly int _schemaId;
    private readonly Dictionary<int, PartitionBuffer> _partitions = [];
    private PartitionBuffer? _returned; // the buffer the last batch came from
    private int _returnedCount;
    private long _batches; // batches returned: the turn order of owed partitions
    private bool _disposed;

    private readonly ILogger _logger;

    public KafkaLogConsumer(KafkaLogOptions options, string group, int schemaId, ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _topic = options.Topic;
        _schemaId = schemaId;
        var config = new ConsumerConfig(new Dictionary<string, string>(options.Extra))
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = group,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            SessionTimeoutMs = (int)options.SessionTimeout.TotalMilliseconds,
            HeartbeatIntervalMs = (int)Math.Max(100, options.SessionTimeout.TotalMilliseconds / 5),
        };
        // Rollup reads the value, the offset and the traceparent header: skip marshalling
        // timestamps and topic names. Records without headers cost nothing extra.
        config.Set(ConfigPropertyNames.Consumer.ConsumeResultFields, "headers");
        _consumer = new ConsumerBuilder<Ignore, byte[]>(config)
            .SetPartitionsAssignedHandler((_, assigned) =>
            {
                foreach (var tp in assigned) _partitions[tp.Partition.Value] = new PartitionBuffer(tp);
            })
            .SetPartitionsRevokedHandler((_, revoked) => Drop(revoked.Select(p => p.TopicPartition)))
            .SetPartitionsLostHandler((_, lost) => Drop(lost.Select(p => p.TopicPartition)))
            .SetLogHandler((_, _) => { })
            .SetErrorHandler((_, _) => { })
            .Build();
        _consumer.Subscribe(_topic);
    }

    /// <inheritdoc />
    public long Lag => LagBySource.Sum(p => p.Value);

    /// <inheritdoc />
    /// <remarks>Read it from the reader loop (rebalance callbacks change the partitions there).</remarks>
    public IReadOnlyList<KeyValuePair<string, long>> LagBySource
    {
        get
        {
            var lags = new List<KeyValuePair<string, long>>();
            foreach (var buffer in _partitions.Values.ToList())
            {
                // High watermark as of the last fetch response (no network round trip); unknown
                // (negative) until the first fetch.
                long high = Math.Max(0, _consumer.GetWatermarkOffsets(buffer.Partition).High.Value);
                long done = buffer.Committed ?? buffer.NextToRead ?? high;
                lags.Add(new(buffer.Source, Math.Max(0, high - done)));
            }
            return lags;
        }
    }

    /// <inheritdoc />
    public ValueTask<LogBatch> ReadAsync(int maxRecords, TimeSpan maxWait, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        ObjectDisposedException.ThrowIf(_disposed, this);
        ReleaseReturned();
        ServeGroup();
        if (LongestOwed() is { } owed) return ValueTask.FromResult(Take(owed, maxRecords));
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var full = _partitions.Values.FirstOrDefault(p => p.Ready(maxRecords));
            if (full is not null) return ValueTask.FromResult(Take(full, maxRecords));
            // A record the poll above could not read stops its partition only once nothing else
            // buffered can go out (as when the loop below meets it).
            if (_blocked is { } blocked)
            {
                _blocked = null;
                throw blocked;
            }
            var remaining = maxWait - Stopwatch.GetElapsedTime(start);
            bool haveRecords = _partitions.Values.Any(p => p.Count > 0);
            // Poll in short slices so cancellation is noticed; once records are buffered, only
            // drain what has already arrived.
            var timeout = haveRecords || remaining <= TimeSpan.Zero ? TimeSpan.Zero : Min(remaining, TimeSpan.FromMilliseconds(100));
            ConsumeResult<Ignore, byte[]>? result;
            try
            {
                result = _consumer.Consume(timeout);
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                // Transient (a topic not yet in metadata, a poll interval exceeded, which also
                // revokes our partitions): report nothing this time; the group sorts itself out.
                LastError = e.Error.ToString();
                return ValueTask.FromResult(Take(_partitions.Values.Where(p => p.Count > 0).MaxBy(p => p.Count), maxRecords));
            }
            if (result is null)
            {
                if (haveRecords) return ValueTask.FromResult(Take(_partitions.Values.Where(p => p.Count > 0).MaxBy(p => p.Count)!, maxRecords));
                if (remaining <= TimeSpan.Zero) return ValueTask.FromResult(new LogBatch([], 0, 0, _topic));
                continue;
            }
            if (result.IsPartitionEOF || !_partitions.TryGetValue(result.Partition.Value, out var buffer)) continue;
            buffer.Add(result.Offset.Value, Decode(result));
        }
    }

    /// <summary>
    /// One poll that does not wait, before a batch is chosen. librdkafka runs rebalance callbacks
    /// only inside Consume, and with a batch ready (a buffered backlog) the loop below never calls
    /// it: a member joining or leaving waited until this consumer's buffer drained (8.3 s for a
    /// join, 17 s for a leave under load in KafkaTests), and this consumer's commits failed with a
    /// stale generation meanwhile, so the next owner read those ranges again. Now a revoke runs at
    /// the first read after librdkafka has it. A record the poll returns is buffered like any
    /// other; one that cannot be read (another schema) is held until nothing else can go out.
    /// </summary>
    private void ServeGroup()
    {
        try
        {
            var result = _consumer.Consume(TimeSpan.Zero);
            if (result is not null && !result.IsPartitionEOF && _partitions.TryGetValue(result.Partition.Value, out var buffer))
                buffer.Add(result.Offset.Value, Decode(result));
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            LastError = e.Error.ToString();
        }
        catch (EventLogRecordException e)
        {
            // Its partition is rewound already (Decode); the other partitions' buffered batches
            // still go out first.
            _blocked = e;
        }
    }

    private EventLogRecordException? _blocked;

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>
    /// Avro → the StoredEvent protobuf. A record written with another schema id than ours (a
    /// newer writer during a rolling upgrade, another producer) is not guessed at: the partition
    /// stops at it (<see cref="EventLogRecordException"/>; the worker retries) until a reader
    /// that knows the schema runs, so nothing acknowledged is skipped. A record with our id that
    /// does not decode, or a null value, is a bug or garbage: it goes to quarantine as
    /// undecodable (Rollup keeps its bytes).
    /// </summary>
    private ReadOnlyMemory<byte> Decode(ConsumeResult<Ignore, byte[]> result)
    {
        byte[]? value = result.Message.Value;
        if (value is not null && ConfluentWireFormat.TryReadHeader(value, out int schemaId, out var avro))
        {
            if (schemaId != _schemaId)
            {
                // Rewind the partition to what this consumer has not returned yet (its buffer, then
                // this record) and start it afresh: its next batch says Resumed again.
                var tp = new TopicPartition(_topic, result.Partition);
                long rewindTo = _partitions.TryGetValue(tp.Partition.Value, out var buffer) && buffer.FirstOffset is { } first
                    ? first
                    : result.Offset.Value;
                _consumer.Seek(new TopicPartitionOffset(tp, rewindTo));
                _partitions[tp.Partition.Value] = new PartitionBuffer(tp);
                throw new EventLogRecordException(_partitions[tp.Partition.Value].Source,
                    $"{_topic}/{result.Partition.Value} offset {result.Offset.Value} was written with schema id {schemaId}; this reader knows {_schemaId}. Upgrade this Rollup.");
            }
            try
            {
                var stored = StoredEventAvro.ToProtobuf(avro);
                return result.Message.Headers is { Count: > 0 } headers && headers.TryGetLastBytes(KafkaEventLog.TraceParentHeader, out var traceparent)
                    ? WithTraceContext(stored, traceparent)
                    : stored;
            }
            catch (FormatException)
            {
            }
        }
        value ??= [];
        var undecodable = new byte[value.Length + 1];
        undecodable[0] = UndecodableRecordPrefix;
        value.CopyTo(undecodable, 1);
        return undecodable;
    }

    /// <summary>
    /// Appends the producer's trace context as field 22 (trace_context) of the decoded record,
    /// where the local log keeps it too, so Rollup reads one place for both logs. A field
    /// appended to an encoded message is valid protobuf; an unparsable header is ignored.
    /// </summary>
    private static byte[] WithTraceContext(byte[] stored, byte[] traceparent)
    {
        if (!ActivityContext.TryParse(System.Text.Encoding.ASCII.GetString(traceparent), null, out var context)) return stored;
        const int field = 2 + 1 + TraceContextCodec.Bytes; // two-byte tag of field 22, length, value
        var withTrace = new byte[stored.Length + field];
        stored.CopyTo(withTrace, 0);
        int p = stored.Length;
        p += ProtoWire.WriteVarint(withTrace.AsSpan(p), (22 << 3) | (ulong)ProtoWire.WireLengthDelimited);
        withTrace[p++] = TraceContextCodec.Bytes;
        TraceContextCodec.Write(context, withTrace.AsSpan(p));
        return withTrace;
    }

    /// <summary>The last transient consumer error (null until one happens); also logged.</summary>
    public string? LastError
    {
        get => _lastError;
        private set
        {
            // Logged when the error changes, not on every poll that repeats it.
            if (value is not null && value != _lastError) LogConsumerError(_logger, value);
            _lastError = value;
        }
    }

    private string? _lastError;

    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Kafka consumer: {Error} (transient; the group recovers by itself)")]
    private static partial void LogConsumerError(ILogger logger, string error);

    private LogBatch Take(PartitionBuffer? buffer, int maxRecords)
    {
        if (buffer is null) return new LogBatch([], 0, 0, _topic);
        var batch = buffer.Peek(maxRecords);
        _returned = buffer;
        _returnedCount = batch.Records.Count;
        _batches++;
        buffer.OwedSince = null;
        foreach (var other in _partitions.Values)
        {
            if (other.Count > 0 && other.OwedSince is null && !ReferenceEquals(other, buffer)) other.OwedSince = _batches;
        }
        return batch;
    }

    /// <summary>The partition passed over longest ago that still holds records, if any.</summary>
    private PartitionBuffer? LongestOwed()
    {
        PartitionBuffer? owed = null;
        foreach (var buffer in _partitions.Values)
        {
            if (buffer.OwedSince is { } since && buffer.Count > 0 && (owed is null || since < owed.OwedSince)) owed = buffer;
        }
        return owed;
    }

    /// <summary>The previous batch is processed (the interface's "valid until the next call").</summary>
    private void ReleaseReturned()
    {
        if (_returned is { } buffer && _partitions.TryGetValue(buffer.Partition.Partition.Value, out var current) && ReferenceEquals(current, buffer))
            buffer.Remove(_returnedCount);
        _returned = null;
    }

    private void Drop(IEnumerable<TopicPartition> partitions)
    {
        foreach (var tp in partitions) _partitions.Remove(tp.Partition.Value);
    }

    /// <inheritdoc />
    /// <remarks>
    /// A partition this consumer no longer owns is not committed: the group moved it while its
    /// round was being stored (a read serves the revoke, and during a backlog Rollup reads the
    /// next round while the previous one is stored), or fenced this member after a long stall.
    /// Its new owner starts at the previous commit and finds the range this consumer left in
    /// flight (RollupWorker replays it with the same insert tokens).
    /// </remarks>
    public ValueTask CommitAsync(LogBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch.IsEmpty) return ValueTask.CompletedTask;
        int partition = PartitionOf(batch.Source);
        if (!_partitions.TryGetValue(partition, out var buffer)) return ValueTask.CompletedTask;
        try
        {
            _consumer.Commit([new TopicPartitionOffset(_topic, partition, batch.NextOffset)]);
            buffer.Committed = batch.NextOffset;
        }
        catch (KafkaException e) when (!e.Error.IsFatal)
        {
            // Not committed (a rebalance in progress, a moved coordinator, a timeout). Safe: the
            // next commit of this partition is absolute, and a reader that starts from the older
            // offset finds this round's rows in event_ids and the next range's mark in the store
            // (RollupWorker treats a mark at or after the committed offset as in flight).
            LastError = e.Error.ToString();
        }
        return ValueTask.CompletedTask;
    }

    private int PartitionOf(string source)
    {
        int slash = source.LastIndexOf('/');
        if (slash < 0 || source[..slash] != _topic)
            throw new ArgumentException($"The batch comes from '{source}', not from topic '{_topic}'.", nameof(source));
        return int.Parse(source.AsSpan(slash + 1), CultureInfo.InvariantCulture);
    }

    public ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            // Leaves the group at once so the partitions move now, not after the session timeout.
            _consumer.Close();
            _consumer.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Records of one partition read but not yet returned and committed. A batch is the
    /// consecutive run at the front: where offsets skip (transaction markers, compaction) the
    /// records before the gap go out alone, so a batch's offsets are always FirstOffset + i.
    /// </summary>
    internal sealed class PartitionBuffer(TopicPartition partition)
    {
        private readonly List<(long Offset, ReadOnlyMemory<byte> Record)> _records = [];
        private int _consecutive; // records at the front with consecutive offsets
        private long? _next;      // offset after the last record read
        private bool _resumed = true;

        public TopicPartition Partition { get; } = partition;
        public string Source { get; } = string.Create(CultureInfo.InvariantCulture, $"{partition.Topic}/{partition.Partition.Value}");
        public long? Committed { get; set; }
        /// <summary>The batch count when another partition's batch went out while this one held records.</summary>
        public long? OwedSince { get; set; }
        public long? NextToRead => _next;
        public int Count => _records.Count;
        public long? FirstOffset => _records.Count == 0 ? null : _records[0].Offset;

        /// <summary>A batch can go out now: a full one, or the records before a gap.</summary>
        public bool Ready(int maxRecords) => _consecutive >= maxRecords || _consecutive < _records.Count;

        /// <summary>
        /// Adds a record read from the partition, unless its offset was read already: a Kafka
        /// consumer can be handed records again from behind its position (a fetch restarted from
        /// an older position). Such a record has gone out in a batch, or is still here; taken, it
        /// would start a batch whose range overlaps the one before, and Rollup, whose rollups read
        /// the enriched rows of a round's whole offset range, would count the overlap twice.
        /// </summary>
        public void Add(long offset, ReadOnlyMemory<byte> record)
        {
            if (offset < _next) return;
            if (_consecutive == _records.Count && (_records.Count == 0 || offset == _records[^1].Offset + 1)) _consecutive++;
            _records.Add((offset, record));
            _next = offset + 1;
        }

        public LogBatch Peek(int maxRecords)
        {
            int count = Math.Min(maxRecords, _consecutive);
            var records = new List<ReadOnlyMemory<byte>>(count);
            for (int i = 0; i < count; i++) records.Add(_records[i].Record);
            var batch = new LogBatch(records, _records[0].Offset, _records[0].Offset + count, Source, _resumed);
            _resumed = false;
            return batch;
        }

        public void Remove(int count)
        {
            _records.RemoveRange(0, count);
            _consecutive = Math.Min(1, _records.Count);
            while (_consecutive < _records.Count && _records[_consecutive].Offset == _records[_consecutive - 1].Offset + 1) _consecutive++;
        }
    }
}
