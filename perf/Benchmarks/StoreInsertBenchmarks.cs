using Analytics.Perf.StoreInsert;
using Analytics.Rollup;
using Analytics.Store;
using BenchmarkDotNet.Attributes;

namespace Analytics.Benchmarks;

/// <summary>
/// Store insert batching: encode N raw events with the product's RowBinary writer and insert them
/// into events_raw (product DDL) of the embedded engine (chDB in-process), one insert per
/// operation with a fresh deduplication token, as Rollup does per round. Per row = mean / Rows.
/// Needs libchdb.so (scripts/fetch-chdb.sh): CHDB_LIB_PATH, or .cache/chdb/ above the binary.
/// Allocated bytes are managed memory only; the engine's native memory is not seen.
/// perf/StoreInsert compares the same inserts through ClickHouse.Driver.
/// </summary>
[MemoryDiagnoser]
public class StoreInsertBenchmarks
{
    // One engine per process (chDB allows one; booting it again in a process is unsafe): opened
    // on first use, closed when the process exits. BenchmarkDotNet runs each Rows value in a
    // process of its own, or all in this one with --inProcess.
    private static readonly Lazy<(ChDbEngine Engine, BenchDirectory Directory)> Shared = new(() =>
    {
        var directory = new BenchDirectory("bench-chdb");
        var engine = ChDbEngine.Open(directory.Path);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            engine.Dispose();
            directory.Dispose();
        };
        return (engine, directory);
    });

    private RawEvent[] _events = [];
    private RowBinaryWriter _writer = null!;
    private EmbeddedColumnStore _store = null!;
    private string _database = "";
    private int _inserts;

    [Params(1_000, 10_000, 50_000)]
    public int Rows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        _events = Enumerable.Range(0, Rows).Select(i => RawEventRows.Create(i, random)).ToArray();
        _writer = new RowBinaryWriter(Rows * 400);
        _store = new EmbeddedColumnStore(Shared.Value.Engine);
        _database = $"bench_{Guid.NewGuid():N}";
        new SchemaMigrator(_store).MigrateAsync(SchemaDirectory(), _database).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _store.ExecuteAsync($"DROP DATABASE {_database}").GetAwaiter().GetResult();
        _writer.Dispose();
    }

    [Benchmark]
    public async Task<long> EncodeAndInsert()
    {
        _writer.Reset();
        foreach (var e in _events) DerivedRows.WriteRaw(_writer, e);
        long written = await _store.InsertRowBinaryAsync($"{_database}.events_raw", DerivedRows.RawColumns, _writer.WrittenMemory, $"raw:bench:{++_inserts}");
        return written == Rows ? written : throw new InvalidOperationException($"inserted {Rows} rows, the engine wrote {written}");
    }

    // The product's DDL from the repository (the first directory upwards holding Analytics.sln):
    // BenchmarkDotNet runs a generated copy of this project from a folder below its own.
    private static string SchemaDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Analytics.sln"))) return Path.Combine(dir.FullName, "schemas", "clickhouse");
        }
        throw new DirectoryNotFoundException($"no Analytics.sln above {AppContext.BaseDirectory}");
    }
}
