using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Analytics.Contracts.Internal;
using Avro;
using Avro.Generic;
using Avro.IO;
using Confluent.Kafka;
using Google.Protobuf;

namespace Analytics.EventLog.Kafka.Tests;

/// <summary>
/// The Kafka event log against librdkafka's mock cluster (3 brokers, real protocol over TCP):
/// what lands on the topic, what the consumer returns, and what happens when Kafka cannot keep up.
/// </summary>
public sealed class KafkaEventLogTests : IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly MockKafkaCluster _cluster = MockKafkaCluster.Start(brokers: 3);
    private readonly string _topic = "t-" + Guid.NewGuid().ToString("N")[..8];

    public KafkaEventLogTests() => _cluster.CreateTopic(_topic, partitions: 6, replicationFactor: 3);

    public void Dispose() => _cluster.Dispose();

    private KafkaLogOptions Options(long maxInFlightBytes = 64L * 1024 * 1024, string? registry = null) => new()
    {
        BootstrapServers = _cluster.BootstrapServers,
        Topic = _topic,
        MaxInFlightBytes = maxInFlightBytes,
        DeliveryTimeout = TimeSpan.FromSeconds(2),
        SessionTimeout = TimeSpan.FromSeconds(6),
        SchemaRegistryUrl = registry,
    };

    /// <summary>Records as FastIngest hands them to the log: 4-byte little-endian length, then the protobuf.</summary>
    private static byte[] Records(IEnumerable<StoredEvent> events)
    {
        var buffer = new MemoryStream();
        foreach (var e in events)
        {
            var bytes = e.ToByteArray();
            var length = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
            buffer.Write(length);
            buffer.Write(bytes);
        }
        return buffer.ToArray();
    }

    private static List<StoredEvent> Events(int count, ulong merchant, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var e = StoredEventAvroTests.RandomEvent(rng, i, StoredEventAvroTests.TimestampRange.ApacheReader);
            e.MerchantId = merchant;
            e.Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray());
            return e;
        }).ToList();
    }

    [Fact]
    public async Task Records_on_the_topic_are_avro_in_the_confluent_wire_format_keyed_by_merchant()
    {
        var events = Events(300, merchant: 42, seed: 1);
        await using (var log = await KafkaEventLog.OpenAsync(Options(), cancellationToken: Ct))
        {
            await log.AppendAsync(42, Records(events), events.Count, Ct);
        }

        // Read back with a plain Kafka consumer and Apache.Avro's generic reader, as Kafka
        // Connect or Spark would.
        var schema = (RecordSchema)Schema.Parse(Avro.StoredEventAvro.Schema);
        var reader = new GenericDatumReader<GenericRecord>(schema, schema);
        var received = ReadTopic(events.Count);
        Assert.Single(received.Select(r => r.Partition.Value).Distinct()); // one merchant, one partition, in order
        for (int i = 0; i < events.Count; i++)
        {
            Assert.Equal(42UL, BinaryPrimitives.ReadUInt64BigEndian(received[i].Message.Key));
            byte[] value = received[i].Message.Value;
            Assert.Equal(0, value[0]); // magic byte
            Assert.Equal(1, BinaryPrimitives.ReadInt32BigEndian(value.AsSpan(1))); // schema id without a registry
            using var stream = new MemoryStream(value, 5, value.Length - 5);
            var record = reader.Read(null!, new BinaryDecoder(stream));
            Assert.Equal(value.Length - 5, stream.Position);
            StoredEventAvroTests.AssertSameFields(events[i], record);
        }
    }

    /// <summary>Up to <paramref name="count"/> records of the topic, read with Confluent.Kafka's own consumer.</summary>
    private List<ConsumeResult<byte[], byte[]>> ReadTopic(int count)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers, GroupId = "reader", AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe(_topic);
        var received = new List<ConsumeResult<byte[], byte[]>>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (received.Count < count && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { } result) received.Add(result);
        }
        Assert.Equal(count, received.Count);
        return received;
    }

    [Fact]
    public async Task A_hot_merchants_records_are_keyed_by_merchant_and_visitor_and_a_traced_batch_carries_its_traceparent_on_every_record()
    {
        // The producer is our own binding of librdkafka's C API (NativeProducer): keys, values and
        // headers are checked here through Confluent.Kafka's consumer, byte for byte.
        var events = Events(200, merchant: 7, seed: 3);
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        using var source = new System.Diagnostics.ActivitySource("test.ingest");
        string traceparent;
        await using (var log = await KafkaEventLog.OpenAsync(new KafkaLogOptions
        {
            BootstrapServers = _cluster.BootstrapServers, Topic = _topic, DeliveryTimeout = TimeSpan.FromSeconds(2),
            HotMerchantEventsPerSecond = 0,
        }, cancellationToken: Ct))
        {
            using var batch = source.StartActivity("batch")!;
            traceparent = batch.Id!;
            await log.AppendAsync(7, Records(events), events.Count, Ct);
        }

        var received = ReadTopic(events.Count);
        var visitors = events.Select(e => e.VisitorId).ToHashSet();
        Assert.True(received.Select(r => r.Partition.Value).Distinct().Count() > 1, "a hot merchant spreads over partitions");
        foreach (var record in received)
        {
            Assert.Equal(16, record.Message.Key.Length);
            Assert.Equal(7UL, BinaryPrimitives.ReadUInt64BigEndian(record.Message.Key));
            Assert.Contains(BinaryPrimitives.ReadUInt64BigEndian(record.Message.Key.AsSpan(8)), visitors);
            Assert.True(record.Message.Headers.TryGetLastBytes(KafkaEventLog.TraceParentHeader, out var header));
            Assert.Equal(traceparent, Encoding.ASCII.GetString(header));
        }
    }

    [Fact]
    public async Task With_a_schema_registry_the_schema_is_registered_and_its_id_goes_into_every_record()
    {
        // A minimal Confluent schema-registry endpoint (POST /subjects/{subject}/versions → {"id": N}):
        // the real registry client library talks to it over HTTP.
        using var registry = new HttpListener();
        int port = FreePort();
        registry.Prefixes.Add($"http://127.0.0.1:{port}/");
        registry.Start();
        string? subject = null, registered = null;
        var serving = Task.Run(async () =>
        {
            while (registry.IsListening)
            {
                HttpListenerContext context;
                try { context = await registry.GetContextAsync(); } catch (HttpListenerException) { return; } catch (ObjectDisposedException) { return; }
                subject = context.Request.Url!.AbsolutePath;
                using (var body = new StreamReader(context.Request.InputStream)) registered = await body.ReadToEndAsync();
                context.Response.ContentType = "application/vnd.schemaregistry.v1+json";
                var answer = Encoding.UTF8.GetBytes("{\"id\": 4711}");
                await context.Response.OutputStream.WriteAsync(answer);
                context.Response.Close();
            }
        }, Ct);

        var events = Events(5, merchant: 7, seed: 2);
        await using (var log = await KafkaEventLog.OpenAsync(Options(registry: $"http://127.0.0.1:{port}"), cancellationToken: Ct))
        {
            Assert.Equal(4711, log.SchemaId);
            await log.AppendAsync(7, Records(events), events.Count, Ct);
        }
        registry.Stop();
        Assert.Equal($"/subjects/{_topic}-value/versions", subject);
        var schemaText = JsonDocument.Parse(registered!).RootElement.GetProperty("schema").GetString()!;
        Assert.Equal(Schema.Parse(Avro.StoredEventAvro.Schema).ToString(), Schema.Parse(schemaText).ToString());

        await using var plain = await KafkaEventLog.OpenAsync(Options(), cancellationToken: Ct);
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = _cluster.BootstrapServers, GroupId = "reader", AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe(_topic);
        var first = consumer.Consume(TimeSpan.FromSeconds(20));
        Assert.NotNull(first);
        Assert.Equal(4711, BinaryPrimitives.ReadInt32BigEndian(first.Message.Value.AsSpan(1)));
    }

    [Fact]
    public async Task The_consumer_returns_consecutive_ranges_per_partition_and_resumes_after_its_commit()
    {
        await using var log = await KafkaEventLog.OpenAsync(Options(), cancellationToken: Ct);
        var all = new List<StoredEvent>();
        for (ulong merchant = 1; merchant <= 8; merchant++)
        {
            var events = Events(40, merchant, seed: (int)merchant);
            all.AddRange(events);
            await log.AppendAsync(merchant, Records(events), events.Count, Ct);
        }

        var seen = new HashSet<string>();
        await using (var consumer = log.OpenConsumer("g"))
        {
            var resumed = new HashSet<string>();
            var next = new Dictionary<string, long>();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (seen.Count < all.Count && DateTime.UtcNow < deadline)
            {
                var batch = await consumer.ReadAsync(25, TimeSpan.FromMilliseconds(200), Ct);
                if (batch.IsEmpty) continue;
                Assert.True(batch.Records.Count <= 25);
                Assert.StartsWith(_topic + "/", batch.Source, StringComparison.Ordinal);
                // The first batch of each partition is marked resumed, later ones are not, and
                // ranges follow each other without gaps.
                Assert.Equal(resumed.Add(batch.Source), batch.Resumed);
                if (next.TryGetValue(batch.Source, out long expected)) Assert.Equal(expected, batch.FirstOffset);
                Assert.Equal(batch.FirstOffset + batch.Records.Count, batch.NextOffset);
                next[batch.Source] = batch.NextOffset;
                foreach (var record in batch.Records)
                {
                    var e = StoredEvent.Parser.ParseFrom(record.Span);
                    Assert.True(seen.Add(Convert.ToHexString(e.Id.Span)), "no record twice");
                }
                Assert.True(consumer.LagBySource.Count > 0);
                await consumer.CommitAsync(batch, Ct);
            }
            Assert.Equal(all.Count, seen.Count);
            Assert.Equal(0, consumer.Lag);
        }

        // A new member of the group starts after the commits: nothing is delivered again.
        var more = Events(10, merchant: 3, seed: 99);
        await log.AppendAsync(3, Records(more), more.Count, Ct);
        await using (var consumer = log.OpenConsumer("g"))
        {
            var later = new List<StoredEvent>();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (later.Count < more.Count && DateTime.UtcNow < deadline)
            {
                var batch = await consumer.ReadAsync(100, TimeSpan.FromMilliseconds(200), Ct);
                later.AddRange(batch.Records.Select(r => StoredEvent.Parser.ParseFrom(r.Span)));
                await consumer.CommitAsync(batch, Ct);
            }
            Assert.Equal(more.Select(e => e.Id), later.Select(e => e.Id));
        }
    }

    /// <summary>
    /// Kafka can hand a consumer records again from behind its position; here the consumer's own
    /// Seek back does it, as a fetch restarted from an older position would. The log consumer does
    /// not return them again: the next range starts where the last one ended. (Returned, they
    /// started a range overlapping the one before, and Rollup's rollups of that range counted the
    /// overlap again.)
    /// </summary>
    [Fact]
    public async Task Records_kafka_hands_over_again_are_not_returned_again()
    {
        await using var log = await KafkaEventLog.OpenAsync(Options(), cancellationToken: Ct);
        var first = Events(10, merchant: 5, seed: 1);
        await log.AppendAsync(5, Records(first), first.Count, Ct);
        await using var consumer = (KafkaLogConsumer)log.OpenConsumer("g");
        var read = await ReadRecordsAsync(consumer, first.Count);
        Assert.Equal(first.Select(e => e.Id), read.Records);
        long next = read.Batches[^1].NextOffset;
        string source = read.Batches[^1].Source;

        var kafka = consumer.KafkaConsumer;
        int partition = int.Parse(source[(source.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        kafka.Seek(new TopicPartitionOffset(_topic, partition, next - 3));
        var more = Events(5, merchant: 5, seed: 2);
        await log.AppendAsync(5, Records(more), more.Count, Ct);

        var again = await ReadRecordsAsync(consumer, more.Count);
        Assert.Equal(next, again.Batches[0].FirstOffset);
        Assert.Equal(more.Select(e => e.Id), again.Records);
    }

    /// <summary>Reads (and commits) until <paramref name="count"/> records came, or 30 s passed.</summary>
    private static async Task<(List<LogBatch> Batches, List<ByteString> Records)> ReadRecordsAsync(IEventLogConsumer consumer, int count)
    {
        var batches = new List<LogBatch>();
        var records = new List<ByteString>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (records.Count < count && DateTime.UtcNow < deadline)
        {
            var batch = await consumer.ReadAsync(100, TimeSpan.FromMilliseconds(200), Ct);
            if (batch.IsEmpty) continue;
            batches.Add(batch);
            records.AddRange(batch.Records.Select(r => StoredEvent.Parser.ParseFrom(r.Span).Id));
            await consumer.CommitAsync(batch, Ct);
        }
        return (batches, records);
    }

    [Fact]
    public async Task A_backlog_in_one_partition_delays_another_partitions_records_by_one_read_at_most()
    {
        string topic = _topic + "-fair";
        _cluster.CreateTopic(topic, partitions: 2);
        var options = new KafkaLogOptions { BootstrapServers = _cluster.BootstrapServers, Topic = topic, DeliveryTimeout = TimeSpan.FromSeconds(5), SessionTimeout = TimeSpan.FromSeconds(6) };
        const int round = 1_000, backlogRounds = 12;
        await using var log = await KafkaEventLog.OpenAsync(options, cancellationToken: Ct);
        await using var consumer = log.OpenConsumer("g");

        // Where merchants land: one event each, read back; the consumer then owns both partitions.
        var partitionOf = new Dictionary<ulong, string>();
        for (ulong merchant = 1; merchant <= 8; merchant++) await log.AppendAsync(merchant, Records(PageViews(1, merchant)), 1, Ct);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (partitionOf.Count < 8 && DateTime.UtcNow < deadline)
        {
            var batch = await consumer.ReadAsync(round, TimeSpan.FromMilliseconds(200), Ct);
            foreach (var record in batch.Records) partitionOf[StoredEvent.Parser.ParseFrom(record.Span).MerchantId] = batch.Source;
            await consumer.CommitAsync(batch, Ct);
        }
        string backlog = partitionOf[1];
        ulong other = partitionOf.First(p => p.Value != backlog).Key;
        string otherSource = partitionOf[other];

        // The other partition's few events are fetched first, then the backlog (each waited for
        // through the watermarks the consumer's fetches report), so librdkafka's one queue for
        // both partitions holds the few, then the backlog.
        await log.AppendAsync(other, Records(PageViews(5, other)), 5, Ct);
        await WaitForLag(consumer, otherSource, 5);
        for (int i = 0; i < backlogRounds * round / 100; i++) await log.AppendAsync(1, Records(PageViews(100, merchant: 1)), 100, Ct);
        await WaitForLag(consumer, backlog, backlogRounds * round);

        var reads = new List<(string Source, int Count)>();
        while (reads.Sum(r => r.Count) < backlogRounds * round + 5 && DateTime.UtcNow < deadline)
        {
            var batch = await consumer.ReadAsync(round, TimeSpan.FromMilliseconds(200), Ct);
            if (batch.IsEmpty) continue;
            reads.Add((batch.Source, batch.Records.Count));
            await consumer.CommitAsync(batch, Ct);
        }
        string order = string.Join(", ", reads.Select(r => $"{r.Source[(topic.Length + 1)..]}:{r.Count}"));
        Assert.Equal(backlogRounds * round + 5, reads.Sum(r => r.Count));
        // The first read gathers a full round of the backlog, taking the few into their buffer on
        // the way; the second read serves them, however much of the backlog is left.
        Assert.True(reads[0] == (backlog, round) && reads[1] == (otherSource, 5), $"reads: {order}");
        Assert.Equal(0, consumer.Lag);
    }

    /// <summary>
    /// A member joins while the first one works through a backlog it has already buffered (batches
    /// ready on every read, each read followed by a round's work). librdkafka hands partitions over
    /// only inside Consume; a consumer that polled only when no batch was ready kept every partition
    /// until its buffer drained (here: the whole backlog, 114 reads). It must give some up within a few reads,
    /// and the two members together still return every record.
    /// </summary>
    [Fact]
    public async Task A_member_joining_gets_partitions_while_the_first_works_through_a_buffered_backlog()
    {
        const int merchants = 30, perMerchant = 600, batchSize = 100;
        await using var log = await KafkaEventLog.OpenAsync(Options(), cancellationToken: Ct);
        for (ulong merchant = 1; merchant <= merchants; merchant++) await log.AppendAsync(merchant, Records(PageViews(perMerchant, merchant)), perMerchant, Ct);
        var seen = new HashSet<ByteString>();
        void Keep(LogBatch batch)
        {
            foreach (var record in batch.Records) seen.Add(StoredEvent.Parser.ParseFrom(record.Span).Id);
        }

        await using var first = log.OpenConsumer("g");
        // One read takes in everything fetched so far: the backlog is now in the first member's buffers.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        LogBatch taken;
        do taken = await first.ReadAsync(merchants * perMerchant, TimeSpan.FromMilliseconds(500), Ct);
        while (taken.IsEmpty && DateTime.UtcNow < deadline);
        Keep(taken);
        await first.CommitAsync(taken, Ct);
        Assert.Equal(6, first.LagBySource.Count);

        await using var second = log.OpenConsumer("g");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var secondSeen = new List<LogBatch>();
        var secondReads = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var batch = await second.ReadAsync(batchSize, TimeSpan.FromMilliseconds(100), stop.Token);
                if (batch.IsEmpty) continue;
                lock (secondSeen) { Keep(batch); secondSeen.Add(batch); }
                await second.CommitAsync(batch, stop.Token);
            }
        }, CancellationToken.None);

        int reads = 0, readsUntilHandedOver = -1;
        int Seen() { lock (secondSeen) return seen.Count; }
        // The mock cluster takes a few seconds per rebalance (two here: the revoke, then the
        // assignment), more on a loaded machine: in one CI run 15,800 of the 18,000 were read when
        // a 30 s budget shared with the first read ran out (handed over after 13 reads, as always).
        var loopStarted = Stopwatch.StartNew();
        deadline = DateTime.UtcNow.AddSeconds(90);
        try
        {
            while (Seen() < merchants * perMerchant && DateTime.UtcNow < deadline)
            {
                var batch = await first.ReadAsync(batchSize, TimeSpan.FromMilliseconds(100), Ct);
                reads++;
                if (readsUntilHandedOver < 0 && first.LagBySource.Count < 6) readsUntilHandedOver = reads;
                if (batch.IsEmpty) continue;
                lock (secondSeen) Keep(batch);
                await first.CommitAsync(batch, Ct);
                await Task.Delay(100, Ct); // the round's work
            }
        }
        finally
        {
            // The second member's reads end before it is disposed, on every path.
            await stop.CancelAsync();
            try { await secondReads; } catch (OperationCanceledException) { }
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"partitions handed over after {readsUntilHandedOver} reads; reads in all {reads}; the second member's batches {secondSeen.Count}; {loopStarted.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(merchants * perMerchant, Seen());
        Assert.InRange(readsUntilHandedOver, 1, 40);
        Assert.NotEmpty(secondSeen);
    }

    /// <summary>
    /// A record written with another schema id stops its partition (the reader waits at it,
    /// never skips it), but not the others: their batches still go out. (Whether the record is met
    /// by the poll a read makes before it picks a batch, or by the loop after it, depends on
    /// librdkafka's queue: with the poll's handling removed this test still passed 3 of 3.)
    /// </summary>
    [Fact]
    public async Task A_record_of_another_schema_stops_its_partition_and_not_the_others()
    {
        string topic = _topic + "-schema";
        _cluster.CreateTopic(topic, partitions: 2);
        var options = new KafkaLogOptions { BootstrapServers = _cluster.BootstrapServers, Topic = topic, DeliveryTimeout = TimeSpan.FromSeconds(5), SessionTimeout = TimeSpan.FromSeconds(6) };
        await using var log = await KafkaEventLog.OpenAsync(options, cancellationToken: Ct);
        const int good = 300;
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers }).Build())
        {
            byte[] Value(StoredEvent e, int schemaId)
            {
                var protobuf = e.ToByteArray();
                var value = new byte[Avro.ConfluentWireFormat.HeaderSize + Avro.StoredEventAvro.MaxEncodedSize(protobuf.Length)];
                Avro.ConfluentWireFormat.WriteHeader(value, schemaId);
                int length = Avro.StoredEventAvro.Transcode(protobuf, value.AsSpan(Avro.ConfluentWireFormat.HeaderSize));
                return value[..(Avro.ConfluentWireFormat.HeaderSize + length)];
            }
            // Partition 1 starts with a record of schema 99; partition 0 holds ours only.
            await producer.ProduceAsync(new TopicPartition(topic, 1), new Message<byte[], byte[]> { Value = Value(PageViews(1, 7)[0], 99) }, Ct);
            foreach (var e in PageViews(good, 5))
                producer.Produce(new TopicPartition(topic, 0), new Message<byte[], byte[]> { Value = Value(e, log.SchemaId) });
            producer.Flush(Ct);
        }

        await using var consumer = log.OpenConsumer("g");
        long next = 0, stops = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (next < good && DateTime.UtcNow < deadline)
        {
            try
            {
                var batch = await consumer.ReadAsync(100, TimeSpan.FromMilliseconds(200), Ct);
                if (batch.IsEmpty) continue;
                Assert.Equal(topic + "/0", batch.Source);
                Assert.Equal(next, batch.FirstOffset);
                next = batch.NextOffset;
                await consumer.CommitAsync(batch, Ct);
            }
            catch (EventLogRecordException e)
            {
                Assert.Equal(topic + "/1", e.LogSource);
                stops++;
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"partition 0 read to {next}; partition 1 stopped {stops} times");
        Assert.Equal(good, next);
        // Partition 1 still waits at its first record.
        Exception? stopped = null;
        for (var until = DateTime.UtcNow.AddSeconds(10); stopped is null && DateTime.UtcNow < until;)
        {
            try { Assert.True((await consumer.ReadAsync(100, TimeSpan.FromMilliseconds(200), Ct)).IsEmpty); }
            catch (EventLogRecordException e) { stopped = e; }
        }
        Assert.IsType<EventLogRecordException>(stopped);
    }

    /// <summary>Until the consumer's fetches report at least <paramref name="records"/> past the group's commit on <paramref name="source"/>.</summary>
    private static async Task WaitForLag(IEventLogConsumer consumer, string source, long records)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (consumer.LagBySource.FirstOrDefault(p => p.Key == source).Value < records)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{source}: the consumer's fetches never reported {records} records: {string.Join(", ", consumer.LagBySource)}");
            await Task.Delay(20, Ct);
        }
    }

    private static List<StoredEvent> PageViews(int count, ulong merchant) =>
        Enumerable.Range(0, count).Select(i => new StoredEvent
        {
            Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
            MerchantId = merchant,
            SiteId = merchant,
            Name = "pageview",
            Url = "/page/" + i,
        }).ToList();

    [Fact]
    public async Task When_kafka_is_down_in_flight_bytes_stay_bounded_and_callers_get_a_retryable_error()
    {
        var events = Events(50, merchant: 5, seed: 3);
        byte[] records = Records(events);
        await using var log = await KafkaEventLog.OpenAsync(Options(maxInFlightBytes: records.Length * 2L), cancellationToken: Ct);
        await log.AppendAsync(5, records, events.Count, Ct); // healthy first

        for (int broker = 1; broker <= 3; broker++) _cluster.SetBrokerDown(broker);
        var waiting = new[] { log.AppendAsync(5, records, events.Count, Ct).AsTask(), log.AppendAsync(5, records, events.Count, Ct).AsTask() };
        // Two batches are in flight and fill the budget: the third is refused at once.
        var refused = await Assert.ThrowsAsync<EventLogUnavailableException>(async () => await log.AppendAsync(5, records, events.Count, Ct));
        Assert.Contains("not keeping up", refused.Message, StringComparison.Ordinal);
        Assert.True(log.InflightBytes <= records.Length * 2L);
        // The two waiting ones fail after the delivery timeout (2 s), not hang.
        foreach (var task in waiting) await Assert.ThrowsAsync<EventLogUnavailableException>(() => task);
        Assert.Equal(0, log.InflightBytes);
        Assert.Equal(3, log.RefusedBatches);

        for (int broker = 1; broker <= 3; broker++) _cluster.SetBrokerUp(broker);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                await log.AppendAsync(5, records, events.Count, Ct);
                break;
            }
            catch (EventLogUnavailableException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, Ct);
            }
        }
    }

    private static int FreePort()
    {
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
