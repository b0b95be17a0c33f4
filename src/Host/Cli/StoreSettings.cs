// Store settings shared by `serve` and `migrate`: the embedded engine (default) or a ClickHouse
// server or cluster (docs/clickhouse-server.md). Checked together at start: `--store clickhouse`
// needs a URL, --clickhouse-url and --clickhouse-cluster need `--store clickhouse`, the database
// must be a plain identifier.
using System.CommandLine;
using Analytics.Store.ClickHouse;
using Microsoft.Extensions.Options;

namespace Analytics.Host.Cli;

public class StoreSettings : ControlPlaneSettings
{
    public string Store { get; set; } = "embedded";
    public Uri? ClickHouseUrl { get; set; }
    public string ClickHouseUser { get; set; } = "default";
    public string ClickHousePassword { get; set; } = "";
    public string? ClickHouseDatabase { get; set; }
    /// <summary>The older name of --clickhouse-database; also names the embedded database.</summary>
    public string Database { get; set; } = "analytics";
    public string? ClickHouseCluster { get; set; }

    public string DatabaseName() => ClickHouseDatabase ?? Database;

    /// <summary>The server or cluster to store in; null for the embedded engine.</summary>
    public ClickHouseServerOptions? ClickHouseServerOptions() => Store == "clickhouse"
        ? new ClickHouseServerOptions { Endpoint = ClickHouseUrl!, User = ClickHouseUser, Password = ClickHousePassword, Cluster = ClickHouseCluster }
        : null;

    /// <summary>The command-line options for these settings.</summary>
    public static IEnumerable<Option> Options()
    {
        var defaults = new StoreSettings();
        yield return Settings.OneOf("--store", "Where to store: the in-process engine or a ClickHouse server/cluster", "embedded", "clickhouse");
        yield return new Option<string>("--clickhouse-url") { Description = "ClickHouse HTTP endpoint, e.g. http://127.0.0.1:8123 (with --store clickhouse)", HelpName = "URL" };
        yield return new Option<string>("--clickhouse-user") { Description = $"ClickHouse user [default: {defaults.ClickHouseUser}]", HelpName = "USER" };
        yield return new Option<string>("--clickhouse-password") { Description = "ClickHouse password (better: ANALYTICS_CLICKHOUSE_PASSWORD, kept out of ps)", HelpName = "PASSWORD" };
        yield return new Option<string>("--clickhouse-database") { Description = $"Database [default: {defaults.Database}]", HelpName = "NAME" };
        yield return new Option<string>("--database") { Description = "Same as --clickhouse-database", HelpName = "NAME", Hidden = true };
        yield return new Option<string>("--clickhouse-cluster") { Description = "Cluster name: replicated and Distributed tables, DDL ON CLUSTER", HelpName = "NAME" };
    }
}

public sealed class StoreSettingsValidator<T> : IValidateOptions<T> where T : StoreSettings
{
    public ValidateOptionsResult Validate(string? name, T settings)
    {
        var failures = new List<string>();
        if (settings.Store is not ("embedded" or "clickhouse"))
            failures.Add($"store '{settings.Store}': use embedded or clickhouse");
        if (settings.Store == "clickhouse" && settings.ClickHouseUrl is null)
            failures.Add("--store clickhouse needs --clickhouse-url, e.g. http://127.0.0.1:8123");
        if (settings.ClickHouseUrl is { IsAbsoluteUri: false } or { Scheme: not ("http" or "https") })
            failures.Add($"--clickhouse-url '{settings.ClickHouseUrl}': use an http:// or https:// URL");
        // Without --store clickhouse the embedded engine stores, whatever a server option says:
        // given anyway, it is a mistake (a forgotten --store), not something to ignore.
        var serverOnly = new[] { ("--clickhouse-url", settings.ClickHouseUrl is not null), ("--clickhouse-cluster", settings.ClickHouseCluster is not null) }
            .Where(o => o.Item2).Select(o => o.Item1).ToList();
        if (settings.Store != "clickhouse" && serverOnly.Count > 0)
            failures.Add($"{string.Join(" and ", serverOnly)} {(serverOnly.Count == 1 ? "needs" : "need")} --store clickhouse (the store is {settings.Store})");
        if (!Analytics.Store.ClickHouseSql.IsPlainIdentifier(settings.DatabaseName()))
            failures.Add($"database '{settings.DatabaseName()}': use letters, digits and underscores");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
