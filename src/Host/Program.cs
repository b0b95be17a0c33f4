using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Host;

StartupErrors.Install();
var cli = new CommandLine(args);
string command = cli.Positional.Count > 0 ? cli.Positional[0] : "serve";
string data = Path.GetFullPath(cli.Get("data", ".data"));
var json = new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

switch (command)
{
    case "serve":
    {
        var server = ClickHouseServerOptions(cli);
        var app = await AnalyticsHost.BuildAsync(new HostSettings
        {
            DataDirectory = data,
            ControlPlane = cli.Get("control-plane"),
            // Tokens: this host's own issuer by default; --authority/--audience accept another's.
            Auth = new AuthSettings { Issuer = cli.Get("issuer"), Authority = cli.Get("authority"), Audience = cli.Get("audience", Analytics.Security.ApiAuthenticationOptions.DefaultAudience) },
            Urls = cli.Get("urls", "http://127.0.0.1:5080"),
            Database = cli.Get("clickhouse-database") ?? cli.Get("database", "analytics"),
            ClickHouseServer = server,
            Kafka = KafkaOptions(cli),
            ConsumerGroup = cli.Get("consumer-group", "rollup"),
            EnableEcho = cli.Flag("echo"),
            Quiet = cli.Flag("quiet"),
            Roles = ParseRoles(cli.Get("roles", "ingest,rollup,query")),
            LogicVersion = ushort.Parse(cli.Get("logic-version", Analytics.Rollup.ProcessingLogic.Current.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture),
        });
        var demo = cli.Flag("demo") ? EnsureDemoSite(app.Services.GetRequiredService<SiteRegistry>()) : null;
        bool ownIssuer = cli.Get("authority") is null;
        var access = demo is not null && ownIssuer ? await DemoAccess.EnsureAsync(app.Services, data, demo) : null;
        await app.StartAsync();
        // The dashboard signs in with a redirect back to itself: allow the address really bound.
        if (ownIssuer) await Analytics.Identity.AnalyticsIdentity.EnsureDashboardClientAsync(app.Services, new Uri(app.BoundAddress() + "/"));
        var kafka = app.Services.GetRequiredService<Analytics.EventLog.IEventLog>() is Analytics.EventLog.Kafka.KafkaEventLog ? KafkaOptions(cli) : null;
        PrintBanner(app.BoundAddress(), data, demo, access, kafka is null ? "local event log" : $"Kafka at {kafka.BootstrapServers}, topic {kafka.Topic}", server is null ? "in-process ClickHouse"
            : $"ClickHouse at {server.Endpoint.GetLeftPart(UriPartial.Authority)}{(server.Cluster is null ? "" : ", cluster " + server.Cluster)}");
        await app.WaitForShutdownAsync();
        return 0;
    }
    case "migrate":
    {
        // Creates or updates the schema (ON CLUSTER with --clickhouse-cluster) and exits.
        var server = ClickHouseServerOptions(cli);
        string database = cli.Get("clickhouse-database") ?? cli.Get("database", "analytics");
        var (_, engine, store, applied) = await AnalyticsHost.OpenStoreAsync(
            new HostSettings { DataDirectory = data, Database = database, ClickHouseServer = server }, data, database);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            store = server is null ? "embedded" : server.Endpoint.GetLeftPart(UriPartial.Authority),
            cluster = server?.Cluster,
            database,
            applied = applied.Select(m => new { m.Version, m.Name }),
        }, json));
        engine?.Dispose();
        store?.Dispose();
        return 0;
    }
    case "sites" when cli.Positional.Count > 1 && cli.Positional[1] == "create":
    {
        string? domain = cli.Get("domain");
        if (domain is null || (cli.Get("merchant") is null && cli.Get("merchant-id") is null))
        {
            Console.Error.WriteLine("usage: analytics sites create --domain example.com (--merchant \"Name\" | --merchant-id N) [--site-key KEY] [--data DIR]");
            return 2;
        }
        using var registry = new SiteRegistry(ControlPlaneStore.Open(cli.Get("control-plane") ?? ControlPlaneStore.DefaultSpec(data)));
        long merchantId = long.TryParse(cli.Get("merchant-id"), out long m) ? m : registry.CreateMerchant(cli.Get("merchant")!);
        Console.WriteLine(JsonSerializer.Serialize(registry.CreateSite(merchantId, domain, cli.Get("site-key"), cli.Get("time-zone", "UTC")), json));
        return 0;
    }
    case "sites" when cli.Positional.Count > 1 && cli.Positional[1] == "list":
    {
        using var registry = new SiteRegistry(ControlPlaneStore.Open(cli.Get("control-plane") ?? ControlPlaneStore.DefaultSpec(data)));
        Console.WriteLine(JsonSerializer.Serialize(registry.ListSites(), json));
        return 0;
    }
    case "bootstrap":
        return await TenancyCommands.RunAsync(command, cli, data, Console.In);
    case "clients" or "users" or "keys" when cli.Positional.Count > 1:
        return await TenancyCommands.RunAsync($"{command} {cli.Positional[1]}", cli, data, Console.In);
    case "reprocess":
    case "partitions" when cli.Positional.Count > 1 && cli.Positional[1] == "status":
    case "export":
        return await AdminCommands.RunAsync(command, cli, data);
    case "kafka-mock":
    {
        // A local Kafka-protocol cluster for development (librdkafka's mock brokers, in this
        // process, nothing on disk): start it, then `serve --log kafka --kafka-bootstrap ...`.
        using var cluster = Analytics.EventLog.Kafka.MockKafkaCluster.Start(cli.GetInt("brokers", 3));
        string topic = cli.Get("kafka-topic", "analytics.events");
        cluster.CreateTopic(topic, cli.GetInt("partitions", 6), Math.Min(3, cli.GetInt("brokers", 3)));
        Console.WriteLine(cluster.BootstrapServers);
        Console.Error.WriteLine($"""
            Kafka mock cluster: {cli.GetInt("brokers", 3)} brokers, topic {topic} with {cli.GetInt("partitions", 6)} partitions. Ctrl+C stops it (its data is in memory).
              ./run.sh serve --demo --log kafka --kafka-bootstrap {cluster.BootstrapServers}
            """);
        var stop = new TaskCompletionSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
        await stop.Task;
        return 0;
    }
    case "demo-traffic":
        return await DemoTraffic.RunAsync(
            cli.Get("url", "ws://127.0.0.1:5080/v1/ws"), cli.Get("site-key", DemoSite.Key),
            cli.GetInt("visitors", 20), TimeSpan.FromSeconds(cli.GetInt("seconds", 60)));
    default:
        Console.Error.WriteLine("""
            usage: analytics [command] [--data DIR]
              serve [--urls http://127.0.0.1:5080] [--demo] [--echo] [--quiet] [--roles ingest,rollup,query]
                    [--store embedded|clickhouse --clickhouse-url http://host:8123 [--clickhouse-user U]
                     [--clickhouse-password P] [--clickhouse-database analytics] [--clickhouse-cluster NAME]]
                    [--log local|kafka --kafka-bootstrap HOST:PORT [--kafka-topic analytics.events]
                     [--schema-registry URL] [--consumer-group rollup]]
                    [--issuer URL (default: the first --urls)] [--authority URL --audience NAME (tokens of another issuer)]
              bootstrap | clients create|revoke | users create | keys create|revoke   (see `analytics clients`)
              kafka-mock [--brokers 3] [--partitions 6] [--kafka-topic T]   local Kafka-protocol cluster; prints bootstrap servers
              sites create --domain D (--merchant NAME | --merchant-id N) [--site-key K] [--time-zone Europe/Berlin]
              (serve and sites: [--control-plane sqlite:PATH | postgres:CONNECTION-STRING], default sqlite:DATA/control-plane.db)
              sites list
              migrate [--store clickhouse --clickhouse-url URL [--clickhouse-cluster NAME] ...]   apply the schema and exit
              demo-traffic [--url ws://127.0.0.1:5080/v1/ws] [--site-key K] [--visitors 20] [--seconds 60]
              reprocess --merchant M [--site PUBLIC-ID] --from 2026-01-01 --to 2026-03-31 [--dry-run] [--logic-version N]
              partitions status --merchant M [--site PUBLIC-ID]
              export --merchant M [--site PUBLIC-ID] --from D --to D [--kind raw|enriched] --format parquet --out DIR
              (reprocess, partitions and export talk to a running server: --url http://127.0.0.1:5080)
            """);
        return 2;
}

// --log local (default: the durable log under --data) or --log kafka (docs/kafka.md).
static Analytics.EventLog.Kafka.KafkaLogOptions? KafkaOptions(CommandLine cli) => cli.Get("log", "local") switch
{
    "local" => null,
    "kafka" => new Analytics.EventLog.Kafka.KafkaLogOptions
    {
        BootstrapServers = cli.Get("kafka-bootstrap") ?? throw new ArgumentException("--log kafka needs --kafka-bootstrap HOST:PORT (try: analytics kafka-mock)"),
        Topic = cli.Get("kafka-topic", "analytics.events"),
        SchemaRegistryUrl = cli.Get("schema-registry"),
    },
    var other => throw new ArgumentException($"--log {other}: use local or kafka"),
};

// --store embedded (default: chDB in-process) or --store clickhouse (a server or cluster over HTTP,
// docs/clickhouse-server.md). Every option also reads ANALYTICS_<NAME>, e.g. ANALYTICS_CLICKHOUSE_PASSWORD.
static Analytics.Store.ClickHouse.ClickHouseServerOptions? ClickHouseServerOptions(CommandLine cli) => cli.Get("store", "embedded") switch
{
    "embedded" => null,
    "clickhouse" => new Analytics.Store.ClickHouse.ClickHouseServerOptions
    {
        Endpoint = new Uri(cli.Get("clickhouse-url") ?? throw new ArgumentException("--store clickhouse needs --clickhouse-url, e.g. http://127.0.0.1:8123")),
        User = cli.Get("clickhouse-user", "default"),
        Password = cli.Get("clickhouse-password", ""),
        Cluster = cli.Get("clickhouse-cluster"),
    },
    var other => throw new ArgumentException($"--store {other}: use embedded or clickhouse"),
};

static Roles ParseRoles(string value) =>
    value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
        .Aggregate((Roles)0, (roles, name) => roles | Enum.Parse<Roles>(name, ignoreCase: true));

static Site EnsureDemoSite(SiteRegistry registry) =>
    registry.Resolve(DemoSite.Key) ?? registry.CreateSite(registry.CreateMerchant("Demo Merchant"), "demo.localhost", DemoSite.Key);

static void PrintBanner(string address, string data, Site? demo, DemoAccess.Credentials? access, string log, string store)
{
    string ws = address.Replace("http://", "ws://", StringComparison.Ordinal);
    Console.WriteLine($$"""

        Analytics is running ({{log}} + {{store}})
          dashboard      {{address}}/{{(demo is null ? "" : "?site=" + demo.PublicId)}}
          ingest         {{ws}}/v1/ws   (WebSocket, protobuf EventBatch)   and   POST {{address}}/v1/events
          query API      {{address}}/v1/sites/{site}/timeseries?metrics=pageviews,visitors&interval=minute
                         {{address}}/v1/sites/{site}/aggregate?metrics=pageviews,visitors,visits,events
          sign-in        {{address}}/account/login   tokens: POST {{address}}/connect/token (OAuth2)
          admin          ./run.sh bootstrap   (once: the first admin client, saved in {{data}}/admin-client.json)
          metrics        {{address}}/metrics
          data           {{data}}
        """);
    if (demo is not null)
    {
        Console.WriteLine($"""
              demo site      id {demo.PublicId}, key {demo.SiteKey} (merchant {demo.MerchantId})
              demo shop      {address}/demo/   (a page with the real agent: click around, then watch the dashboard)
              send traffic   ./run.sh demo-traffic     (simulated visitors for 60 s)
            """);
    }
    if (demo is not null && access is not null)
    {
        Console.WriteLine($"""
              dashboard user {access.Email}   password {access.Password}   (open {address}/?site={demo.PublicId} and sign in)
              API token      TOKEN=$(curl -s {address}/connect/token -d grant_type=client_credentials \
                                  -d client_id={access.ClientId} -d client_secret={access.ClientSecret} | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')
              see numbers    curl -H "Authorization: Bearer $TOKEN" '{address}/v1/sites/{demo.PublicId}/aggregate?metrics=pageviews,visitors,visits,events'
            """);
    }
}

static class DemoSite
{
    public const string Key = "demo-site-key";
}
