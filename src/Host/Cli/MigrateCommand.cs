// `analytics migrate`: creates or updates the schema (ON CLUSTER with --clickhouse-cluster) and
// exits. Embedded, it opens the engine in the data directory, so it takes that directory's lock:
// it cannot run beside a server on the same directory.
using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Analytics.Host.Cli;

public sealed class MigrateCommand : ICommandGroup
{
    public int Order => 10;

    public IEnumerable<Command> Commands()
    {
        var migrate = new Command("migrate", "Apply the schema migrations and exit");
        foreach (var option in StoreSettings.Options()) migrate.Options.Add(option);
        migrate.SetAction((parse, ct) => RunAsync(Settings.Bind<StoreSettings>(parse, s => s
            .AddSingleton<IValidateOptions<StoreSettings>, StoreSettingsValidator<StoreSettings>>()), ct));
        yield return migrate;
    }

    private static async Task<int> RunAsync(StoreSettings settings, CancellationToken ct)
    {
        var server = settings.ClickHouseServerOptions();
        string data = settings.DataDirectory();
        using var dataLock = server is null ? DataDirectoryLock.Acquire(data) : null;
        var (_, engine, store, applied) = await AnalyticsHost.OpenStoreAsync(
            new HostSettings { DataDirectory = data, Database = settings.DatabaseName(), ClickHouseServer = server }, data, settings.DatabaseName(), ct);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            store = server is null ? "embedded" : server.Endpoint.GetLeftPart(UriPartial.Authority),
            cluster = server?.Cluster,
            database = settings.DatabaseName(),
            applied = applied.Select(m => new { m.Version, m.Name }),
        }, Json.Indented));
        engine?.Dispose();
        store?.Dispose();
        return 0;
    }
}

/// <summary>How commands print JSON.</summary>
public static class Json
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
