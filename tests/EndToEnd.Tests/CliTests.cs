using System.Text.Json;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The command line of the built binary: help for every command, mistakes as one line with exit
/// code 2, and where settings come from (command line over ANALYTICS_* over appsettings.json over
/// the default), each run as a real child process.
/// </summary>
public class CliTests
{
    public static TheoryData<string, string[]> Commands => new()
    {
        { "", ["serve", "migrate", "sites", "reprocess", "partitions", "export", "kafka-mock", "demo-traffic", "ANALYTICS_", "appsettings.json"] },
        { "serve", ["--urls", "--demo", "--echo", "--quiet", "--roles", "--log", "--kafka-bootstrap", "--kafka-topic", "--schema-registry", "--consumer-group", "--logic-version", "--store", "--clickhouse-url", "--clickhouse-user", "--clickhouse-password", "--clickhouse-database", "--clickhouse-cluster", "--data", "--retention-raw", "--retention-enriched", "--retention-minute", "--retention-hour", "--retention-day", "--retention-dimensions"] },
        { "migrate", ["--store", "--clickhouse-url", "--clickhouse-cluster", "--data"] },
        { "sites", ["create", "list"] },
        { "sites create", ["--domain", "--merchant", "--merchant-id", "--site-key", "--data"] },
        { "sites list", ["--data"] },
        { "reprocess", ["--merchant", "--site", "--from", "--to", "--dry-run", "--logic-version", "--url", "--token"] },
        { "partitions", ["status"] },
        { "partitions status", ["--merchant", "--site", "--url", "--token"] },
        { "export", ["--merchant", "--site", "--from", "--to", "--kind", "--format", "--out", "--url"] },
        { "kafka-mock", ["--brokers", "--partitions", "--kafka-topic"] },
        { "demo-traffic", ["--url", "--site-key", "--visitors", "--seconds"] },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public async Task Help_on_every_command_exits_0_and_lists_its_options(string command, string[] mentions)
    {
        var result = await HostCommand.RunAsync([.. command.Split(' ', StringSplitOptions.RemoveEmptyEntries), "--help"], environment: null);
        Assert.True(result.ExitCode == 0, result.ToString());
        foreach (string mention in mentions) Assert.Contains(mention, result.Stdout);
    }

    [Theory]
    [InlineData("serve --clickhouse-pasword secret", "'--clickhouse-pasword'", "did you mean '--clickhouse-password'")]
    [InlineData("serve --logic-version abc", "--logic-version: 'abc' is not a whole number")]
    [InlineData("serve --log file", "--log", "file")]
    [InlineData("serve --store mysql", "--store", "mysql")]
    [InlineData("serve extra", "'extra'")]
    [InlineData("sites create --domain shop.example", "--merchant NAME or --merchant-id ID")]
    [InlineData("sites create --merchant Shop", "--domain")]
    [InlineData("sites create --merchant Shop --domain https://shop.example", "--domain: 'https://shop.example' is not a host name (it has a scheme)", "without scheme, port or path")]
    [InlineData("sites create --merchant Shop --domain shop.example:8080", "--domain", "it has a port")]
    [InlineData("sites create --merchant Shop --domain shop.example/", "--domain", "it has a path")]
    [InlineData("sites create --merchant Shop --domain shop.example --site-key a.b", "--site-key: 'a.b' is not 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")]
    [InlineData("reprocess --merchant 1 --from 2026-01-01", "--to")]
    [InlineData("reprocess --merchant x --from 2026-01-01 --to 2026-01-02", "--merchant: 'x'")]
    [InlineData("reprocess --merchant 1 --from yesterday --to 2026-01-02", "--from: 'yesterday' is not a day")]
    [InlineData("partitions status --merchant 1 --url notaurl", "--url")]
    [InlineData("partitions status --merchant 1 --url http://analytics.example:5080", "--url", "https://")]
    [InlineData("reprocess --merchant 1 --from 2026-01-01 --to 2026-01-02 --url http://10.1.2.3 --token t", "--url", "plain text")]
    [InlineData("reprocess --merchant 1 --from 2026-01-01 --to 2026-01-02 --url foo", "--url 'foo' is not a URL")]
    [InlineData("reprocess --merchant 1 --from 2026-01-03 --to 2026-01-02", "--from 2026-01-03 is after --to 2026-01-02")]
    [InlineData("export --merchant 1 --from 2026-01-03 --to 2026-01-02", "--from 2026-01-03 is after --to 2026-01-02")]
    [InlineData("serve --clickhouse-url http://127.0.0.1:8123", "--clickhouse-url needs --store clickhouse")]
    [InlineData("migrate --clickhouse-cluster analytics", "--clickhouse-cluster needs --store clickhouse")]
    [InlineData("migrate --clickhouse-url http://127.0.0.1:8123 --clickhouse-cluster analytics", "--clickhouse-url and --clickhouse-cluster need --store clickhouse")]
    [InlineData("export --merchant 1 --from 2026-01-01 --to 2026-01-02 --kind cooked", "--kind", "cooked")]
    [InlineData("demo-traffic --visitors 0", "--visitors: '0'")]
    [InlineData("demo-traffic --url http://127.0.0.1:5080/v1/ws", "ws://")]
    [InlineData("kafka-mock --brokers many", "--brokers: 'many'")]
    [InlineData("serve --rollup-interval-ms 60001", "--rollup-interval-ms", "60001")]
    [InlineData("nonsense", "'nonsense'")]
    public async Task A_wrong_option_or_value_exits_2_with_one_line_naming_it(string commandLine, params string[] mentions)
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-cli-" + Guid.NewGuid().ToString("N"));
        var result = await HostCommand.RunAsync([.. commandLine.Split(' '), "--data", data], environment: null);
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.True(result.StderrLines.Length == 1, result.ToString());
        Assert.DoesNotContain("   at ", result.Stderr);
        foreach (string mention in mentions) Assert.Contains(mention, result.Stderr);
        Assert.False(Directory.Exists(data), "nothing may be created for a command that was called wrong");
    }

    [Theory]
    [InlineData("ANALYTICS_LOGIC_VERSION", "abc", "'abc'", "LogicVersion")]
    [InlineData("ANALYTICS_DRAIN_TIMEOUT", "0", "--drain-timeout", "from 1 to 3600")]
    [InlineData("ANALYTICS_ROLLUP_INTERVAL_MS", "-1", "--rollup-interval-ms", "from 0 to 60000")]
    [InlineData("ANALYTICS_MAX_CONNECTIONS", "-1", "--max-connections", "from 0 to")]
    [InlineData("ANALYTICS_EVENTS_PER_SECOND_PER_SITE", "-5", "--events-per-second-per-site", "from 0 to")]
    public async Task A_bad_value_from_the_environment_exits_2_naming_the_setting(string variable, string value, params string[] mentions)
    {
        var result = await HostCommand.RunAsync(["serve", "--data", Path.Combine(Path.GetTempPath(), "analytics-cli-" + Guid.NewGuid().ToString("N"))],
            new Dictionary<string, string?> { [variable] = value });
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Single(result.StderrLines);
        Assert.DoesNotContain("   at ", result.Stderr);
        foreach (string mention in mentions) Assert.Contains(mention, result.Stderr);
    }

    /// <summary>
    /// `migrate` prints the database it migrated, so each layer is visible: the default, then
    /// appsettings.json beside the binary, then ANALYTICS_DATABASE, then --database. The binary runs
    /// from a copy of its directory so that this test's appsettings.json affects no other test.
    /// </summary>
    [Fact]
    public async Task Settings_come_from_the_command_line_then_the_environment_then_appsettings_json_then_the_default()
    {
        string root = Path.Combine(Path.GetTempPath(), "analytics-settings-" + Guid.NewGuid().ToString("N"));
        string bin = Path.Combine(root, "bin"), data = Path.Combine(root, "data");
        try
        {
            CopyBinary(bin);
            string dll = Path.Combine(bin, "analytics.dll");
            async Task<string> MigratedDatabase(string[] args, Dictionary<string, string?>? environment = null)
            {
                var result = await HostCommand.RunAsync(["migrate", "--data", data, .. args], environment, dll);
                Assert.True(result.ExitCode == 0, result.ToString());
                return JsonDocument.Parse(result.Stdout).RootElement.GetProperty("database").GetString()!;
            }

            Assert.Equal("analytics", await MigratedDatabase([]));
            await File.WriteAllTextAsync(Path.Combine(bin, "appsettings.json"), """{ "Analytics": { "Database": "from_json" } }""", TestContext.Current.CancellationToken);
            Assert.Equal("from_json", await MigratedDatabase([]));
            var environment = new Dictionary<string, string?> { ["ANALYTICS_DATABASE"] = "from_env" };
            Assert.Equal("from_env", await MigratedDatabase([], environment));
            Assert.Equal("from_cli", await MigratedDatabase(["--database", "from_cli"], environment));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>The binary's files copied, its large read-only folders (native runtimes) linked.</summary>
    private static void CopyBinary(string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.GetFiles(AppContext.BaseDirectory))
        {
            if (Path.GetFileName(file) != "appsettings.json") File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }
        foreach (string directory in Directory.GetDirectories(AppContext.BaseDirectory))
            Directory.CreateSymbolicLink(Path.Combine(destination, Path.GetFileName(directory)), directory);
    }
}
