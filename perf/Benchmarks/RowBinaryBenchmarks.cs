using Analytics.Store;
using BenchmarkDotNet.Attributes;

namespace Analytics.Benchmarks;

/// <summary>Encoding 1,000 raw-event rows for the store (what Rollup does per round, scaled).</summary>
[MemoryDiagnoser]
public class RowBinaryBenchmarks
{
    private readonly RowBinaryWriter _writer = new();
    private readonly byte[] _id = Guid.NewGuid().ToByteArray();

    [Benchmark]
    public int Encode1000Rows()
    {
        _writer.Reset();
        for (int i = 0; i < 1000; i++)
        {
            _writer.WriteUInt64(1);
            _writer.WriteUInt64(2);
            _writer.WriteFixedString(_id, 16);
            _writer.WriteDateTime64Milliseconds(1_764_000_000_000 + i);
            _writer.WriteString("pageview");
            _writer.WriteString("https://shop.example/products/42?utm_source=newsletter");
            _writer.WriteString("https://www.google.com/");
            _writer.WriteMapHeader(0);
            _writer.WriteUInt64(0xDEADBEEF);
        }
        return _writer.WrittenCount;
    }
}
