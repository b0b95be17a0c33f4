using Analytics.Store.ClickHouse;

// One chDB engine for the whole assembly (chDB allows one engine per process), serving both
// backends: the embedded store calls it in-process; the driver store reaches it over HTTP
// through ChDbHttpEndpoint. Every test owns its data in a database of its own.
[assembly: AssemblyFixture(typeof(Analytics.Store.Conformance.Tests.BackendsFixture))]

namespace Analytics.Store.Conformance.Tests;

public sealed class BackendsFixture : IAsyncLifetime
{
    public const string User = "analytics";

    private readonly string _dataPath = Path.Combine(Path.GetTempPath(), "analytics-conformance-" + Guid.NewGuid().ToString("N"));

    public ChDbEngine Engine { get; private set; } = null!;
    public EmbeddedColumnStore Embedded { get; private set; } = null!;
    public ChDbHttpEndpoint Endpoint { get; private set; } = null!;
    public ClickHouseServerStore Server { get; private set; } = null!;
    public string Password { get; } = Guid.NewGuid().ToString("N");

    /// <summary>The product's DDL, copied beside the test binary from schemas/clickhouse.</summary>
    public static string SchemaDirectory => Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse");

    public async ValueTask InitializeAsync()
    {
        Engine = ChDbEngine.Open(_dataPath);
        Embedded = new EmbeddedColumnStore(Engine);
        Endpoint = await ChDbHttpEndpoint.StartAsync(Engine, User, Password);
        Server = NewServerStore();
    }

    /// <summary>A driver store on the endpoint; tests that change options (retries, credentials)
    /// make their own and dispose it.</summary>
    public ClickHouseServerStore NewServerStore(Func<ClickHouseServerOptions, ClickHouseServerOptions>? change = null)
    {
        var options = new ClickHouseServerOptions
        {
            Endpoint = Endpoint.Address,
            User = User,
            Password = Password,
            InitialBackoff = TimeSpan.FromMilliseconds(10),
            Timeout = TimeSpan.FromSeconds(60),
        };
        return new ClickHouseServerStore(change is null ? options : change(options));
    }

    public async ValueTask DisposeAsync()
    {
        Server.Dispose();
        await Endpoint.DisposeAsync();
        // A reprocess job (HostOnClickHouseServerTests) leaves its DELETEs to the engine's
        // background pool: close the engine once they are applied (30 s at most). A fresh-clone
        // run hung once in this disposal after such a job; four local runs did not.
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); waited.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(50))
        {
            if (Engine.Query("SELECT count() FROM system.mutations WHERE NOT is_done", "TSV").Trim() == "0") break;
        }
        Engine.Dispose();
        try
        {
            Directory.Delete(_dataPath, recursive: true);
        }
        catch (IOException)
        {
            // A temp directory left behind is not worth failing the run for.
        }
    }
}
