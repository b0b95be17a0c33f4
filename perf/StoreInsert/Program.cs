// Rows per second inserted into events_raw through the two store paths, in one run, with the same
// RowBinary batches and the same deduplication tokens Rollup uses:
//   embedded   EmbeddedColumnStore → chDB in-process (spool file + INSERT … SELECT FROM file())
//   driver     ClickHouseServerStore → ClickHouse.Driver → HTTP → a ClickHouse server; by default
//              the chDB-backed test endpoint in this process (so the engine work is the same and
//              the difference is the driver + HTTP + framing), or a real server with --clickhouse-url.
// Every path must store exactly the rows sent (count() checked); otherwise the exit code is 1.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Analytics.Rollup;
using Analytics.Store;
using Analytics.Store.ClickHouse;
using Analytics.Perf.StoreInsert;
using Analytics.Store.Conformance.Tests;

var smoke = args.Contains("--smoke");
var rows = Option("--rows", smoke ? 20_000 : 1_000_000);
var batch = Option("--batch", smoke ? 5_000 : 50_000);
var url = OptionText("--clickhouse-url");
var json = OptionText("--json"); // for perf/run-all.sh's RESULTS.md (LoadTool --write-results reads it)
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;

var dataPath = Path.Combine(Path.GetTempPath(), "analytics-store-insert-" + Guid.NewGuid().ToString("N"));
var engine = ChDbEngine.Open(dataPath);
var password = Guid.NewGuid().ToString("N");
ChDbHttpEndpoint? endpoint = url is null ? await ChDbHttpEndpoint.StartAsync(engine, "perf", password) : null;
try
{
    var batches = RawEventRows.EncodeBatches(rows, batch);
    var bytes = batches.Sum(b => (long)b.Length);
    Console.WriteLine($"{rows:N0} raw events in batches of {batch:N0} ({bytes / (double)rows:F0} bytes/row RowBinary), " +
                      $"{Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");

    var results = new List<(string Path, double Seconds)>();
    var embedded = new EmbeddedColumnStore(engine);
    results.Add(("embedded: chDB in-process", await MeasureAsync(embedded, batches, rows)));
    foreach (var compression in new[] { false, true })
    {
        using var server = new ClickHouseServerStore(new ClickHouseServerOptions
        {
            Endpoint = url is null ? endpoint!.Address : new Uri(url),
            User = url is null ? "perf" : OptionText("--clickhouse-user") ?? "default",
            Password = url is null ? password : OptionText("--clickhouse-password") ?? "",
            Compression = compression,
        });
        var target = url is null ? "HTTP → chDB endpoint" : "HTTP → " + url;
        results.Add(($"driver{(compression ? ", gzip" : "")}: ClickHouse.Driver, {target}", await MeasureAsync(server, batches, rows)));
    }

    Console.WriteLine();
    Console.WriteLine("| path | rows/s | seconds | vs embedded |");
    Console.WriteLine("|---|---:|---:|---:|");
    foreach (var (path, seconds) in results)
        Console.WriteLine($"| {path} | {rows / seconds:N0} | {seconds:F2} | {results[0].Seconds / seconds:P0} |");
    if (json is not null)
    {
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new
        {
            kind = "store-insert",
            rows,
            batch,
            rowBinaryBytesPerRow = bytes / (double)rows,
            paths = results.Select(r => new { path = r.Path, rowsPerSecond = rows / r.Seconds, seconds = r.Seconds, vsEmbedded = results[0].Seconds / r.Seconds }),
        }, new JsonSerializerOptions { WriteIndented = true }));
    }
    return 0;
}
catch (InvalidDataException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
finally
{
    if (endpoint is not null) await endpoint.DisposeAsync();
    engine.Dispose();
    Directory.Delete(dataPath, recursive: true);
}

// One database per path; a warm-up batch (own token) first, then the timed batches one after the
// other, as Rollup sends them; then count() must equal the rows sent.
static async Task<double> MeasureAsync(IColumnStore store, List<byte[]> batches, int rows)
{
    var db = "perf_" + Guid.NewGuid().ToString("N");
    await new SchemaMigrator(store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db);
    await store.ExecuteAsync($"CREATE TABLE {db}.warmup AS {db}.events_raw");
    await store.InsertRowBinaryAsync($"{db}.warmup", DerivedRows.RawColumns, batches[0], "warmup");

    var clock = Stopwatch.StartNew();
    long written = 0;
    for (var i = 0; i < batches.Count; i++)
        written += await store.InsertRowBinaryAsync($"{db}.events_raw", DerivedRows.RawColumns, batches[i], $"raw:perf:{i}");
    var seconds = clock.Elapsed.TotalSeconds;

    var stored = (await store.QueryRowsAsync($"SELECT count() FROM {db}.events_raw"))[0][0].GetInt64();
    if (written != rows || stored != rows)
        throw new InvalidDataException($"{store.GetType().Name}: sent {rows} rows, written {written}, stored {stored}.");
    await store.ExecuteAsync($"DROP DATABASE {db}");
    return seconds;
}

int Option(string name, int fallback) =>
    OptionText(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? OptionText(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
