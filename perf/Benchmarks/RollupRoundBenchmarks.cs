using Analytics.Contracts.Internal;
using Analytics.Enrichment;
using Analytics.Perf.QueryBench;
using Analytics.Rollup;
using Analytics.Store;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Analytics.Benchmarks;

/// <summary>
/// Rollup's own work per event in a round, without the engine: 10,000 log records of
/// perf/QueryBench's catch-up backlog (CatchUp.BacklogEvent: 20 merchants, 500 pages each, one in
/// eight with a campaign query, three user agents, four referrers). Read = log record to RawEvent (Google.Protobuf plus
/// RawEvent.From as Rollup did before issue #17's changes, the baseline, against
/// StoredEventReader); UrlParts = a page URL's host, path and query (System.Uri, the baseline,
/// against PageUrl); Round = read, derive and write the raw and enriched RowBinary rows, as a
/// round's preparation does, under processing logic 2 and 3. Per event (OperationsPerInvoke).
/// </summary>
[MemoryDiagnoser]
public class RollupRoundBenchmarks
{
    private const int Events = 10_000;

    private byte[][] _records = [];
    private string[] _urls = [];
    private readonly StoredEventReader _reader = new();
    private readonly RowBinaryWriter _raw = new(4 << 20);
    private readonly RowBinaryWriter _enriched = new(8 << 20);
    private ProcessingLogic _logic3 = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(7);
        long start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 3_600_000;
        _records = new byte[Events][];
        _urls = new string[Events];
        for (int i = 0; i < Events; i++)
        {
            var e = CatchUp.BacklogEvent(random, 10_000_001 + (ulong)(i / 500 % 20), start + i * 360L, start);
            _urls[i] = e.Url;
            _records[i] = e.ToByteArray();
        }
        // As the catch-up measures it: the user agents' rules compiled, not timed.
        _logic3 = CatchUp.Logic(3);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Events)]
    public long ReadGoogleProtobuf()
    {
        long n = 0;
        for (int i = 0; i < _records.Length; i++) n += RawEvent.From(StoredEvent.Parser.ParseFrom(_records[i]), "local", i).Url.Length;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public long ReadStoredEventReader()
    {
        long n = 0;
        for (int i = 0; i < _records.Length; i++)
        {
            _reader.TryRead(_records[i], "local", i, out var e, out _);
            n += e!.Url.Length;
        }
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public long UrlPartsUri()
    {
        long n = 0;
        foreach (var url in _urls)
        {
            Uri.TryCreate(url, UriKind.Absolute, out var uri);
            n += uri!.Host.Length + uri.AbsolutePath.Length + uri.Query.Length;
        }
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public long UrlPartsPageUrl()
    {
        long n = 0;
        foreach (var url in _urls)
        {
            PageUrl.TryParse(url, out var parts);
            n += parts.Host.Length + parts.Path.Length + parts.Query.Length;
        }
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int RoundLogic2() => Round(ProcessingLogic.WithoutData, 2);

    [Benchmark(OperationsPerInvoke = Events)]
    public int RoundLogic3() => Round(_logic3, 3);

    private int Round(ProcessingLogic logic, ushort version)
    {
        var sessions = new Sessionizer();
        _raw.Reset();
        _enriched.Reset();
        for (int i = 0; i < _records.Length; i++)
        {
            _reader.TryRead(_records[i], "local", i, out var e, out _);
            DerivedRows.WriteRaw(_raw, e!);
            DerivedRows.WriteEnriched(_enriched, e!, logic, sessions, version, generation: 0);
        }
        return _raw.WrittenCount + _enriched.WrittenCount;
    }
}
