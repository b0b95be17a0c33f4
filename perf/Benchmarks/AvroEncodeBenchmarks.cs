using System.Buffers.Binary;
using Analytics.Contracts.Internal;
using Analytics.EventLog.Kafka.Avro;
using Avro;
using Avro.Generic;
using Avro.IO;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Analytics.Benchmarks;

/// <summary>
/// Encoding a batch of 50 realistic pageviews as Avro for the Kafka log, which receives them as
/// protobuf StoredEvent records from FastIngest. Baseline: the library way, which is to parse
/// each record with Google.Protobuf, fill a GenericRecord and write it with Apache.Avro's
/// GenericDatumWriter. Against it: our span-to-span transcoder, and, to show how much of the
/// baseline is the writer itself, GenericDatumWriter writing records built ahead of time (a
/// floor the library way cannot go below). Per-event cost = mean / 50.
/// </summary>
[MemoryDiagnoser]
public class AvroEncodeBenchmarks
{
    private const int BatchSize = 50;

    private byte[][] _records = [];
    private GenericRecord[] _prebuilt = [];
    private byte[] _destination = [];
    private RecordSchema _schema = null!;
    private RecordSchema _propertySchema = null!;
    private FixedSchema _idSchema = null!;
    private FixedSchema _visitorIdSchema = null!;
    private GenericDatumWriter<GenericRecord> _writer = null!;
    private readonly MemoryStream _stream = new();

    [GlobalSetup]
    public void Setup()
    {
        _schema = (RecordSchema)Schema.Parse(StoredEventAvro.Schema);
        _propertySchema = (RecordSchema)((ArraySchema)_schema["props"].Schema).ItemSchema;
        _idSchema = (FixedSchema)_schema["id"].Schema;
        _visitorIdSchema = (FixedSchema)_schema["visitor_id"].Schema;
        _writer = new GenericDatumWriter<GenericRecord>(_schema);

        // The same pageviews the ingest benchmarks parse, as FastIngest stores them.
        var batch = Batches.Realistic(BatchSize);
        _records = batch.Events.Select((e, i) =>
        {
            var stored = new StoredEvent
            {
                Id = e.Id,
                MerchantId = 1_001,
                SiteId = 42_000 + (ulong)(i % 3),
                ReceivedMs = e.ClientTimeMs + 150,
                ClientTimeMs = e.ClientTimeMs,
                Name = e.Name,
                Url = e.Url,
                Referrer = e.Referrer,
                RevenueMicros = e.RevenueMicros,
                Currency = e.Currency,
                ScreenWidth = e.ScreenWidth,
                EngagementMs = e.EngagementMs,
                VisitorId = 0x9E37_79B9_7F4A_7C15UL * (ulong)(i + 1),
                IpPrefix = "203.0.113.0/24",
                UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                Country = "DE",
            };
            foreach (var p in e.Props) stored.Props.Add(new StoredProperty { Key = p.Key, Value = p.Value });
            return stored.ToByteArray();
        }).ToArray();
        _prebuilt = _records.Select(r => ToGenericRecord(StoredEvent.Parser.ParseFrom(r))).ToArray();
        _destination = new byte[_records.Max(r => StoredEventAvro.MaxEncodedSize(r.Length))];
    }

    [GlobalCleanup]
    public void Cleanup() => _stream.Dispose();

    [Benchmark(Baseline = true)]
    public long ApacheAvroGenericWriter()
    {
        long bytes = 0;
        foreach (byte[] record in _records)
            bytes += Write(ToGenericRecord(StoredEvent.Parser.ParseFrom(record)));
        return bytes;
    }

    [Benchmark]
    public long ApacheAvroGenericWriterPrebuiltRecords()
    {
        long bytes = 0;
        foreach (var record in _prebuilt) bytes += Write(record);
        return bytes;
    }

    [Benchmark]
    public long Transcode()
    {
        long bytes = 0;
        foreach (byte[] record in _records) bytes += StoredEventAvro.Transcode(record, _destination);
        return bytes;
    }

    private long Write(GenericRecord record)
    {
        _stream.Position = 0;
        _writer.Write(record, new BinaryEncoder(_stream));
        return _stream.Position;
    }

    private GenericRecord ToGenericRecord(StoredEvent e)
    {
        var r = new GenericRecord(_schema);
        r.Add("id", new GenericFixed(_idSchema, e.Id.Length == StoredEventAvro.IdBytes ? e.Id.ToByteArray() : new byte[StoredEventAvro.IdBytes]));
        r.Add("merchant_id", (long)e.MerchantId);
        r.Add("site_id", (long)e.SiteId);
        // Apache.Avro's generic writer takes timestamp-millis as DateTime.
        r.Add("received_ms", DateTime.UnixEpoch.AddMilliseconds(e.ReceivedMs));
        r.Add("client_time_ms", DateTime.UnixEpoch.AddMilliseconds(e.ClientTimeMs));
        r.Add("name", e.Name);
        r.Add("url", e.Url);
        r.Add("referrer", e.Referrer);
        var props = new object[e.Props.Count];
        for (int i = 0; i < props.Length; i++)
        {
            var p = new GenericRecord(_propertySchema);
            p.Add("key", e.Props[i].Key);
            p.Add("value", e.Props[i].Value);
            props[i] = p;
        }
        r.Add("props", props);
        r.Add("revenue_micros", e.RevenueMicros);
        r.Add("currency", e.Currency);
        r.Add("screen_width", (long)e.ScreenWidth);
        r.Add("engagement_ms", (long)e.EngagementMs);
        byte[] visitorId = new byte[StoredEventAvro.VisitorIdBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(visitorId, e.VisitorId); // the proto's fixed64 bytes
        r.Add("visitor_id", new GenericFixed(_visitorIdSchema, visitorId));
        r.Add("ip_prefix", e.IpPrefix);
        r.Add("user_agent", e.UserAgent);
        r.Add("country", e.Country);
        r.Add("ch_ua_mobile", e.ChUaMobile);
        r.Add("ch_ua_platform", e.ChUaPlatform);
        r.Add("ch_ua_model", e.ChUaModel);
        r.Add("ch_ua_form_factors", e.ChUaFormFactors);
        return r;
    }
}
