namespace Analytics.EventLog.Kafka;

/// <summary>
/// The Kafka event log's settings. Defaults are tuned for ingest throughput with a bounded ack
/// latency; docs/kafka.md explains each and the topic settings expected in production.
/// </summary>
public sealed class KafkaLogOptions
{
    /// <summary>Bootstrap servers, "host:port[,host:port…]".</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>The topic every event is written to (one record per event).</summary>
    public string Topic { get; init; } = "analytics.events";

    /// <summary>
    /// A merchant above this many events per second (seen by this ingest node) is hot: its
    /// records are keyed by merchant and visitor instead of merchant alone, so they spread over
    /// all partitions. One visitor's events stay ordered; the merchant's as a whole no longer are.
    /// 0 spreads every merchant by visitor from its first event (docs/kafka.md explains when).
    /// </summary>
    public int HotMerchantEventsPerSecond { get; init; } = 20_000;

    /// <summary>
    /// Bytes of records handed to the producer and not yet acknowledged by Kafka, over all
    /// connections. Beyond it new batches get a retry answer at once rather than queueing: memory
    /// stays bounded when Kafka is slow or down.
    /// </summary>
    public long MaxInFlightBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// How long the producer keeps retrying a record (librdkafka's message.timeout.ms). A batch
    /// not acknowledged by then is answered with a retry (the client resends; Rollup deduplicates
    /// by event id if the first copy did arrive). Keep it below the agent's ack timeout.
    /// </summary>
    public TimeSpan DeliveryTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// librdkafka's linger.ms: how long the producer waits to fill a partition batch. 5 ms adds at
    /// most 5 ms to an ack and at high rates lets one produce request carry thousands of records
    /// (fewer requests, better snappy ratios).
    /// </summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>librdkafka's batch.size: bytes per partition batch (about 5,000 events of ~200 B).</summary>
    public int BatchBytes { get; init; } = 1_000_000;

    /// <summary>A Confluent-compatible schema registry. When set, the Avro schema is registered
    /// under "TOPIC-value" at start and its id goes into every record's header.</summary>
    public string? SchemaRegistryUrl { get; init; }

    /// <summary>The schema id written into records when no registry is configured.</summary>
    public int SchemaId { get; init; } = 1;

    /// <summary>
    /// Consumer session timeout: how long a consumer that died without leaving keeps its
    /// partitions. Shorter means a faster takeover and more spurious rebalances on pauses.
    /// </summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Extra librdkafka properties for both clients (e.g. security.protocol, sasl.*).</summary>
    public IReadOnlyDictionary<string, string> Extra { get; init; } = new Dictionary<string, string>();
}
