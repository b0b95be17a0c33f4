// One chDB engine for the whole test assembly: chDB allows one engine per process. Every test
// owns its data by working in a database of its own (NewDatabaseAsync), never in shared tables.
[assembly: AssemblyFixture(typeof(Analytics.Store.Tests.ChDbFixture))]

namespace Analytics.Store.Tests;

public sealed class ChDbFixture : IDisposable
{
    public ChDbFixture()
    {
        DataPath = Path.Combine(Path.GetTempPath(), "analytics-store-tests-" + Guid.NewGuid().ToString("N"));
        Engine = ChDbEngine.Open(DataPath);
        Store = new EmbeddedColumnStore(Engine);
    }

    public string DataPath { get; }
    public ChDbEngine Engine { get; }
    public EmbeddedColumnStore Store { get; }

    /// <summary>A new, empty database with a name no other test uses.</summary>
    public async Task<string> NewDatabaseAsync(string prefix = "t")
    {
        var name = $"{ClickHouseSql.RequirePlainIdentifier(prefix)}_{Guid.NewGuid():N}";
        await Store.ExecuteAsync($"CREATE DATABASE {name}", TestContext.Current.CancellationToken);
        return name;
    }

    public void Dispose()
    {
        Engine.Dispose();
        try
        {
            Directory.Delete(DataPath, recursive: true);
        }
        catch (IOException)
        {
            // Leaving a temp directory behind is not worth failing the run for.
        }
    }
}
