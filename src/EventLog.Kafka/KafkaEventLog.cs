using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Analytics.EventLog.Telemetry;
using Analytics.Contracts;
using Analytics.EventLog.Kafka.Avro;
using Confluent.Kafka;
using Confluent.SchemaRegistry;

namespace Analytics.EventLog.Kafka;

/// <summary>
/// The event log on Apache Kafka. One record per event: key = merchant id (8 bytes, big endian;
/// merchant id + visitor id for a hot merchant), value = the event in Avro, Confluent wire format
/// (magic byte, schema id, Avro binary), so Connect, Spark and ksqlDB read the topic as it is.
/// <see cref="AppendAsync"/> completes when every record's delivery report succeeded: with
/// acks=all and an idempotent producer that means written to all in-sync replicas, exactly once
/// per produce. Anything else (timeout, refusal, full queue, too much in flight) fails the whole
/// call with <see cref="EventLogUnavailableException"/>, which the client sees as a retry.
/// </summary>
public sealed class KafkaEventLog : IEventLog
{
    private readonly KafkaLogOptions _options;
    private readonly NativeProducer _producer;
    private readonly HotMerchants _hot;
    private readonly int _schemaId;
    private long _inflightBytes;
    private long _refusedBatches;

    private KafkaEventLog(KafkaLogOptions options, int schemaId, TimeProvider clock)
    {
        _options = options;
        _schemaId = schemaId;
        _hot = new HotMerchants(options.HotMerchantEventsPerSecond, clock);
        _producer = new NativeProducer(ProducerConfig(options), options.Topic);
    }

    /// <summary>Opens the log; registers the Avro schema first when a registry is configured.</summary>
    public static async Task<KafkaEventLog> OpenAsync(KafkaLogOptions options, TimeProvider? clock = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        int schemaId = options.SchemaId;
        if (options.SchemaRegistryUrl is { } url)
        {
            using var registry = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = url });
            schemaId = await registry.RegisterSchemaAsync($"{options.Topic}-value", new Schema(StoredEventAvro.Schema, SchemaType.Avro))
                .WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        return new KafkaEventLog(options, schemaId, clock ?? TimeProvider.System);
    }

    /// <summary>The schema id every record's header carries.</summary>
    public int SchemaId => _schemaId;

    /// <summary>Bytes handed to the producer and not yet acknowledged.</summary>
    public long InflightBytes => Interlocked.Read(ref _inflightBytes);

    /// <summary>Batches answered with a retry because Kafka refused, timed out or was too far behind.</summary>
    public long RefusedBatches => Interlocked.Read(ref _refusedBatches);

    internal static ProducerConfig ProducerConfig(KafkaLogOptions options)
    {
        var config = new ProducerConfig(new Dictionary<string, string>(options.Extra))
        {
            BootstrapServers = options.BootstrapServers,
            // Exactly one copy per produce, in order per partition, even across internal retries.
            EnableIdempotence = true,
            Acks = Acks.All,
            CompressionType = CompressionType.Snappy,
            LingerMs = options.Linger.TotalMilliseconds,
            BatchSize = options.BatchBytes,
            MessageTimeoutMs = (int)options.DeliveryTimeout.TotalMilliseconds,
            // Java's default partitioner (murmur2 of the key), so Java producers and Kafka Streams
            // place a merchant's records on the same partition as we do.
            Partitioner = Partitioner.Murmur2Random,
            // The local queue is bounded by MaxInFlightBytes before it; this is a second fence.
            QueueBufferingMaxKbytes = (int)Math.Max(1024, options.MaxInFlightBytes / 1024 * 2),
            QueueBufferingMaxMessages = 2_000_000,
        };
        return config;
    }

    /// <inheritdoc />
    public async ValueTask AppendAsync(ulong partitionKey, ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken = default)
    {
        if (recordCount == 0) return;
        long bytes = records.Length;
        if (Interlocked.Add(ref _inflightBytes, bytes) > _options.MaxInFlightBytes)
        {
            Interlocked.Add(ref _inflightBytes, -bytes);
            Interlocked.Increment(ref _refusedBatches);
            throw new EventLogUnavailableException($"Kafka is not keeping up: over {_options.MaxInFlightBytes} bytes waiting for acknowledgement.");
        }
        var pending = new PendingAppend(recordCount);
        long started = Stopwatch.GetTimestamp();
        // The caller's span (ingest's batch) travels in a W3C traceparent header on every record;
        // the consumer turns it back into the record's trace_context field for Rollup.
        string? traceparent = Activity.Current is { Recorded: true } caller ? caller.Id : null;
        using var activity = EventLogTelemetry.StartAppend("kafka");
        activity?.SetTag("messaging.destination.name", _options.Topic);
        activity?.SetTag("analytics.records", recordCount);
        try
        {
            Produce(partitionKey, records.Span, recordCount, pending, traceparent);
            // Not cancellable once handed over: the records may still be written, and the client
            // resends on its own timeout (the copies are deduplicated by event id).
            await pending.Task.ConfigureAwait(false);
            EventLogTelemetry.AppendDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, EventLogTelemetry.Kafka);
        }
        catch (EventLogUnavailableException e)
        {
            Interlocked.Increment(ref _refusedBatches);
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
        finally
        {
            Interlocked.Add(ref _inflightBytes, -bytes);
        }
    }

    /// <summary>The header name the W3C Trace Context convention for messaging uses.</summary>
    public const string TraceParentHeader = "traceparent";

    private void Produce(ulong merchantId, ReadOnlySpan<byte> records, int recordCount, PendingAppend pending, string? traceparent)
    {
        bool hot = _hot.IsHot(merchantId, recordCount);
        Span<byte> key = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(key, merchantId);
        Span<byte> traceValue = stackalloc byte[traceparent?.Length ?? 0];
        if (traceparent is not null) System.Text.Encoding.ASCII.GetBytes(traceparent, traceValue);
        var headerName = traceparent is null ? default : TraceParentHeaderName;
        byte[] scratch = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            int pos = 0;
            for (int i = 0; i < recordCount; i++)
            {
                int error;
                try
                {
                    int length = BinaryPrimitives.ReadInt32LittleEndian(records[pos..]);
                    var record = records.Slice(pos + 4, length);
                    pos += 4 + length;

                    int max = ConfluentWireFormat.HeaderSize + StoredEventAvro.MaxEncodedSize(record.Length);
                    if (scratch.Length < max)
                    {
                        ArrayPool<byte>.Shared.Return(scratch);
                        scratch = ArrayPool<byte>.Shared.Rent(max);
                    }
                    ConfluentWireFormat.WriteHeader(scratch, _schemaId);
                    int written = ConfluentWireFormat.HeaderSize + StoredEventAvro.Transcode(record, scratch.AsSpan(ConfluentWireFormat.HeaderSize));
                    // Merchant id, or merchant id + visitor id for a hot merchant: it spreads over
                    // partitions while each visitor stays on one.
                    if (hot) BinaryPrimitives.WriteUInt64BigEndian(key[8..], VisitorId(record));
                    error = _producer.Produce(hot ? key : key[..8], scratch.AsSpan(0, written), pending.Handle, headerName, traceValue);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // A record that does not transcode: the batch fails as a whole, once the
                    // records already handed over reported, so the in-flight bytes stay counted
                    // until then.
                    pending.FailRemaining(recordCount - i, NativeProducer.LocalFail, e.Message);
                    return;
                }
                if (error != 0)
                {
                    // Queue full or the producer is failing: the records already handed over
                    // still report; the rest never will, so count them as failed now.
                    pending.FailRemaining(recordCount - i, error, null);
                    return;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    // NUL-terminated for librdkafka.
    private static ReadOnlySpan<byte> TraceParentHeaderName => "traceparent\0"u8;

    /// <summary>StoredEvent.visitor_id (field 14, fixed64), or 0.</summary>
    internal static ulong VisitorId(ReadOnlySpan<byte> storedEvent)
    {
        int pos = 0;
        while (pos < storedEvent.Length && ProtoWire.TryReadTag(storedEvent, ref pos, out int field, out int wireType))
        {
            if (field == 14 && wireType == ProtoWire.WireFixed64 && pos + 8 <= storedEvent.Length)
                return BinaryPrimitives.ReadUInt64LittleEndian(storedEvent[pos..]);
            if (!ProtoWire.TrySkipField(storedEvent, ref pos, field, wireType)) break;
        }
        return 0;
    }

    /// <inheritdoc />
    public IEventLogConsumer OpenConsumer(string group) => new KafkaLogConsumer(_options, group, _schemaId, Logger);

    /// <summary>Where the consumers log transient errors; the host sets it once its logging is built.</summary>
    public Microsoft.Extensions.Logging.ILogger Logger { get; set; } = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    /// <summary>Waits for records handed over to be delivered (or fail), then closes the producer.</summary>
    public ValueTask DisposeAsync()
    {
        _producer.Flush(_options.DeliveryTimeout);
        _producer.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// One AppendAsync call: completes when all its records reported, failed if any failed. It
    /// is the delivery target of all its records, through one GCHandle per call (freed when the
    /// last record reported), not an object per record.
    /// </summary>
    private sealed class PendingAppend : NativeProducer.IDeliveryTarget
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _remaining;
        private int _firstError;
        private string? _firstReason;

        public PendingAppend(int records)
        {
            _remaining = records;
            Handle = GCHandle.ToIntPtr(GCHandle.Alloc(this));
        }

        public IntPtr Handle { get; }

        public Task Task => _done.Task;

        public void Delivered(int error)
        {
            if (error != 0) Interlocked.CompareExchange(ref _firstError, error, 0);
            Complete(1);
        }

        public void FailRemaining(int count, int error, string? reason)
        {
            if (Interlocked.CompareExchange(ref _firstError, error, 0) == 0) _firstReason = reason;
            Complete(count);
        }

        private void Complete(int count)
        {
            if (Interlocked.Add(ref _remaining, -count) != 0) return;
            GCHandle.FromIntPtr(Handle).Free();
            if (_firstError == 0) _done.TrySetResult();
            else _done.TrySetException(new EventLogUnavailableException(
                $"Kafka refused the batch: {_firstReason ?? NativeProducer.ErrorText(_firstError)} ({_firstError})."));
        }
    }
}
