using Analytics.Contracts.V1;
using Analytics.FastIngest.Protocol;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Analytics.Benchmarks;

/// <summary>
/// Reading a batch of 50 realistic events: the zero-copy reader (spans into the buffer, every
/// field and property visited) against Google.Protobuf's ParseFrom (objects and strings), the
/// baseline. Validation and enrichment on top of the reader: EventStepBenchmarks.
/// </summary>
[MemoryDiagnoser]
public class ProtobufReadBenchmarks
{
    private byte[] _batch = [];

    [GlobalSetup]
    public void Setup() => _batch = Batches.Realistic(50).ToByteArray();

    [Benchmark(Baseline = true)]
    public int GoogleProtobufParseFrom()
    {
        var batch = EventBatch.Parser.ParseFrom(_batch);
        int n = 0;
        foreach (var e in batch.Events) n += e.Url.Length + e.Props.Count;
        return n;
    }

    [Benchmark]
    public int ZeroCopyReader()
    {
        BatchView.TryParse(_batch, out var batch);
        int n = 0;
        foreach (var raw in batch.GetEvents())
        {
            EventView.TryParse(raw, out var e);
            n += e.Url.Length;
            foreach (var p in e.GetProperties()) n += p.Value.Length;
        }
        return n;
    }
}

internal static class Batches
{
    /// <summary>Pageviews with referrers and UTM tags; every tenth a custom event with two properties.</summary>
    public static EventBatch Realistic(int events)
    {
        var batch = new EventBatch { SiteKey = "demo-site-key", Seq = 1 };
        for (int i = 0; i < events; i++)
        {
            var e = new Event
            {
                Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                Name = i % 10 == 9 ? "signup" : "pageview",
                ClientTimeMs = 1_764_000_000_000 + i,
                Url = $"https://shop.example/products/{i}?utm_source=newsletter&utm_campaign=winter",
                Referrer = i % 3 == 0 ? "https://www.google.com/" : "",
                ScreenWidth = 1440,
                EngagementMs = 12_000,
            };
            if (i % 10 == 9)
            {
                e.Props.Add(new Property { Key = "plan", Value = "pro" });
                e.Props.Add(new Property { Key = "source", Value = "pricing-page" });
            }
            batch.Events.Add(e);
        }
        return batch;
    }
}
