using Analytics.Store;

namespace Analytics.Tests.Shared;

/// <summary>chDB allows one engine per process: every in-process host of a test assembly shares
/// one engine directory, and each test gets its own database and data directory. Held for the
/// whole run: hosts come and go, the engine connects once (as in production).</summary>
public sealed class EngineFixture : IDisposable
{
    public EngineFixture()
    {
        ChDbPath = Path.Combine(Path.GetTempPath(), "analytics-tests-chdb-" + Guid.NewGuid().ToString("N"));
        Engine = ChDbEngine.Open(ChDbPath);
        Store = new EmbeddedColumnStore(Engine);
    }

    public string ChDbPath { get; }
    public ChDbEngine Engine { get; }

    /// <summary>Direct access to the engine, for tests that inspect or prepare stored state.</summary>
    public EmbeddedColumnStore Store { get; }

    private readonly Lazy<Analytics.Rollup.EnrichmentRules> _enrichment = new(() =>
        Analytics.Rollup.EnrichmentRules.Load(Analytics.Enrichment.EnrichmentDataDirectory.Locate()));

    /// <summary>The enrichment data, loaded once for every host of the run (as one process would).</summary>
    public Analytics.Rollup.EnrichmentRules Enrichment => _enrichment.Value;

    /// <summary>Waits until the engine has applied every mutation of <paramref name="database"/>
    /// (the DELETEs a reprocess job leaves to its background pool); fails after 60 s.</summary>
    public async Task WaitForMutationsAsync(string database, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var pending = await Store.QueryRowsAsync($"SELECT count() FROM system.mutations WHERE database = '{database}' AND NOT is_done", ct);
            if (pending[0][0].GetInt64() == 0) return;
            if (DateTime.UtcNow >= deadline) throw new TimeoutException($"{pending[0][0]} mutations of {database} not done after 60 s");
            await Task.Delay(50, ct);
        }
    }

    public void Dispose()
    {
        Engine.Dispose();
        try { Directory.Delete(ChDbPath, recursive: true); } catch (IOException) { }
    }
}
