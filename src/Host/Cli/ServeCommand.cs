// `analytics serve`: ingest, rollup and query in one process (or the roles chosen), the default
// command. Settings are checked before anything opens; the data directory is locked for the
// life of the process (one server per directory).
using System.CommandLine;
using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;
using Analytics.EventLog.Kafka;
using Analytics.ControlPlane;
using Analytics.FastIngest.Validation;
using Analytics.Rollup;
using Microsoft.Extensions.Options;

namespace Analytics.Host.Cli;

public sealed class ServeSettings : StoreSettings
{
    [Required]
    public string Urls { get; set; } = "http://127.0.0.1:5080";
    public bool Demo { get; set; }
    public bool Echo { get; set; }
    public bool Quiet { get; set; }
    public string Roles { get; set; } = "ingest,rollup,query";
    public string Log { get; set; } = "local";
    public string? KafkaBootstrap { get; set; }
    public string KafkaTopic { get; set; } = "analytics.events";
    public Uri? SchemaRegistry { get; set; }
    [Required]
    public string ConsumerGroup { get; set; } = "rollup";
    public ushort LogicVersion { get; set; } = ProcessingLogic.Current;
    /// <summary>Another build of the browser agent to serve at /agent.js.</summary>
    public string? AgentJs { get; set; }
    /// <summary>Another build of the dashboard (a dist directory) to serve at /.</summary>
    public string? Dashboard { get; set; }
    /// <summary>Load balancers and proxies whose X-Forwarded-For / Forwarded name the client:
    /// addresses and networks, comma-separated ("10.0.0.0/8,127.0.0.1"); empty believes none.</summary>
    public string TrustedProxies { get; set; } = "";
    public string ForwardedHeader { get; set; } = "x-forwarded-for";
    /// <summary>Edge caches' purge URLs, comma-separated (docs/operations.md, "Edge cache").</summary>
    public string EdgePurgeUrl { get; set; } = "";
    /// <summary>Seconds the stop after SIGTERM may take: WebSockets closed with 1001 after their
    /// batch in hand, then the server, Rollup and the log (docs/operations.md, "Drain").</summary>
    // The ranges hold for values from ANALYTICS_* and appsettings.json too (the command line's
    // parser checks its own), with the same words.
    [Range(1, 3600, ErrorMessage = "--drain-timeout: {0} must be a whole number from {1} to {2}")]
    public int DrainTimeout { get; set; } = 10;
    /// <summary>Milliseconds between two Rollup rounds at least, unless a backlog waits: freshness
    /// against the CPU rounds cost (docs/operations.md, "Rollup's round interval").</summary>
    [Range(0, 60_000, ErrorMessage = "--rollup-interval-ms: {0} must be a whole number from {1} to {2}")]
    public int RollupIntervalMs { get; set; } = (int)RollupOptions.DefaultMinRoundInterval.TotalMilliseconds;

    // Ingest limits (IngestLimits has the reasons for the defaults); 0 lifts a limit.
    [Range(0, int.MaxValue, ErrorMessage = "--max-connections: {0} must be a whole number from {1} to {2}")]
    public int MaxConnections { get; set; } = IngestLimits.Default.MaxConnections;
    [Range(0, int.MaxValue, ErrorMessage = "--max-connections-per-ip: {0} must be a whole number from {1} to {2}")]
    public int MaxConnectionsPerIp { get; set; } = IngestLimits.Default.MaxConnectionsPerIp;
    [Range(0, int.MaxValue, ErrorMessage = "--max-peer-connections-per-ip: {0} must be a whole number from {1} to {2}")]
    public int MaxPeerConnectionsPerIp { get; set; } = IngestLimits.Default.MaxPeerConnectionsPerIp;
    [Range(0, int.MaxValue, ErrorMessage = "--max-tcp-connections: {0} must be a whole number from {1} to {2}")]
    public int MaxTcpConnections { get; set; } = IngestLimits.Default.MaxTcpConnections;
    [Range(0, int.MaxValue, ErrorMessage = "--events-per-second-per-ip: {0} must be a whole number from {1} to {2}")]
    public int EventsPerSecondPerIp { get; set; } = (int)IngestLimits.Default.MaxEventsPerSecondPerIp;
    [Range(0, int.MaxValue, ErrorMessage = "--events-per-second-per-site: {0} must be a whole number from {1} to {2}")]
    public int EventsPerSecondPerSite { get; set; } = (int)IngestLimits.Default.MaxEventsPerSecondPerSite;

    /// <summary>The ingest limits with these settings; bursts stay five seconds' worth, as the defaults.</summary>
    public IngestLimits Limits() => new()
    {
        MaxConnections = MaxConnections,
        MaxConnectionsPerIp = MaxConnectionsPerIp,
        MaxPeerConnectionsPerIp = MaxPeerConnectionsPerIp,
        MaxTcpConnections = MaxTcpConnections,
        MaxEventsPerSecondPerIp = EventsPerSecondPerIp,
        EventBurstPerIp = 5.0 * EventsPerSecondPerIp,
        MaxEventsPerSecondPerSite = EventsPerSecondPerSite,
        EventBurstPerSite = 5.0 * EventsPerSecondPerSite,
    };

    /// <summary>The enrichment data sets (scripts/fetch-enrichment-data.sh); ANALYTICS_ENRICHMENT_DATA
    /// by the naming rule; default: the nearest .cache/enrichment above the binary.</summary>
    public string? EnrichmentData { get; set; }
    /// <summary>A GeoIP2/GeoLite2 Country or City database instead of the bundled GeoLite2 City.</summary>
    public string? GeoipDb { get; set; }

    /// <summary>This server's issuer name for the tokens it signs [default: the first --urls].</summary>
    public Uri? Issuer { get; set; }
    /// <summary>Accept tokens of another standard issuer (its discovery document) instead of running
    /// the embedded authorization server.</summary>
    public Uri? Authority { get; set; }
    public string Audience { get; set; } = Analytics.Security.ApiAuthenticationOptions.DefaultAudience;

    /// <summary>Send spans to this OTLP collector (gRPC, or OTLP/HTTP for a URL ending in /v1/traces).</summary>
    public Uri? OtlpEndpoint { get; set; }
    /// <summary>Send spans to this Zipkin endpoint (…/api/v2/spans).</summary>
    public Uri? ZipkinEndpoint { get; set; }

    // Retention tiers (docs/operations.md, "Retention"): forever or N d|w|m|y per table.
    public string RetentionRaw { get; set; } = "forever";
    public string RetentionEnriched { get; set; } = "forever";
    public string RetentionMinute { get; set; } = "forever";
    public string RetentionHour { get; set; } = "forever";
    public string RetentionDay { get; set; } = "forever";
    public string RetentionDimensions { get; set; } = "forever";

    /// <summary>The retention settings as a policy (call after validation: a bad period throws).</summary>
    public Analytics.Store.RetentionPolicy Retention() => new()
    {
        Raw = Analytics.Store.RetentionPeriod.Parse(RetentionRaw),
        Enriched = Analytics.Store.RetentionPeriod.Parse(RetentionEnriched),
        Minute = Analytics.Store.RetentionPeriod.Parse(RetentionMinute),
        Hour = Analytics.Store.RetentionPeriod.Parse(RetentionHour),
        Day = Analytics.Store.RetentionPeriod.Parse(RetentionDay),
        Dimensions = Analytics.Store.RetentionPeriod.Parse(RetentionDimensions),
    };

    /// <summary>Each retention option with its value, for validation and messages.</summary>
    public IEnumerable<(string Option, string Value)> RetentionValues() =>
    [
        ("--retention-raw", RetentionRaw), ("--retention-enriched", RetentionEnriched), ("--retention-minute", RetentionMinute),
        ("--retention-hour", RetentionHour), ("--retention-day", RetentionDay), ("--retention-dimensions", RetentionDimensions),
    ];

    public string[] TrustedProxyList() => TrustedProxies.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    public Roles ParseRoles() => Roles.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
        .Aggregate((Host.Roles)0, (roles, name) => roles | Enum.Parse<Host.Roles>(name, ignoreCase: true));

    /// <summary>Kafka as the event log (--log kafka); null for the local log.</summary>
    public KafkaLogOptions? KafkaOptions() => Log == "kafka"
        ? new KafkaLogOptions { BootstrapServers = KafkaBootstrap!, Topic = KafkaTopic, SchemaRegistryUrl = SchemaRegistry?.ToString() }
        : null;
}

public sealed partial class ServeSettingsValidator : IValidateOptions<ServeSettings>
{
    private static readonly string[] RoleNames = ["ingest", "rollup", "query"];

    public ValidateOptionsResult Validate(string? name, ServeSettings settings)
    {
        var failures = new List<string>();
        var roles = settings.Roles.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (roles.Length == 0 || roles.Any(r => !RoleNames.Contains(r, StringComparer.OrdinalIgnoreCase)))
            failures.Add($"roles '{settings.Roles}': use one or more of {string.Join(',', RoleNames)}");
        if (settings.Log is not ("local" or "kafka"))
            failures.Add($"log '{settings.Log}': use local or kafka");
        if (settings.Log == "kafka" && string.IsNullOrWhiteSpace(settings.KafkaBootstrap))
            failures.Add("--log kafka needs --kafka-bootstrap HOST:PORT (try: analytics kafka-mock)");
        if (!ProcessingLogic.IsKnown(settings.LogicVersion))
            failures.Add($"logic version {settings.LogicVersion} is unknown; known: {string.Join(", ", ProcessingLogic.Versions)}");
        foreach (string url in settings.Urls.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            // Kestrel reads a host name it cannot parse as "every interface" and a missing port as
            // 80: both would expose the server where nobody asked for it.
            if (!ListenUrl().IsMatch(url))
                failures.Add($"urls '{url}': use http://ADDRESS:PORT with an IP address, localhost, * or +, e.g. http://127.0.0.1:5080");
        }
        if (!Analytics.FastIngest.Transport.TrustedProxies.TryParse(settings.TrustedProxyList(), out _, out _, out string? proxyError))
            failures.Add(proxyError!);
        if (settings.ForwardedHeader is not ("x-forwarded-for" or "forwarded"))
            failures.Add($"forwarded-header '{settings.ForwardedHeader}': use x-forwarded-for or forwarded");
        if (!EdgePurgeOption.TryParse(settings.EdgePurgeUrl, out _, out string? edgeError))
            failures.Add(edgeError!);
        if (settings.Authority is { IsAbsoluteUri: false } or { Scheme: not ("http" or "https") })
            failures.Add($"--authority '{settings.Authority}': use the issuer's https:// URL");
        if (settings.Issuer is { IsAbsoluteUri: false } or { Scheme: not ("http" or "https") })
            failures.Add($"--issuer '{settings.Issuer}': use an absolute http(s):// URL");
        if (settings.EnrichmentData is { Length: > 0 } enrichment && !Directory.Exists(enrichment))
            failures.Add($"enrichment-data '{enrichment}': no such directory (scripts/fetch-enrichment-data.sh fills .cache/enrichment)");
        if (settings.GeoipDb is { Length: > 0 } geo && !File.Exists(geo))
            failures.Add($"geoip-db '{geo}': no such file");
        if (settings.OtlpEndpoint is { IsAbsoluteUri: false } or { Scheme: not ("http" or "https") })
            failures.Add($"--otlp-endpoint '{settings.OtlpEndpoint}': use the collector's http(s):// URL, e.g. http://127.0.0.1:4317");
        if (settings.ZipkinEndpoint is { IsAbsoluteUri: false } or { Scheme: not ("http" or "https") })
            failures.Add($"--zipkin-endpoint '{settings.ZipkinEndpoint}': use Zipkin's http(s):// span URL, e.g. http://127.0.0.1:9411/api/v2/spans");
        foreach (var (option, value) in settings.RetentionValues())
        {
            try
            {
                Analytics.Store.RetentionPeriod.Parse(value);
            }
            catch (FormatException e)
            {
                failures.Add($"{option}: {e.Message}");
            }
        }
        if (settings.AgentJs is { Length: > 0 } agent && !File.Exists(agent))
            failures.Add($"agent-js '{agent}': no such file");
        if (settings.Dashboard is { Length: > 0 } dashboard && !File.Exists(Path.Combine(dashboard, "index.html")))
            failures.Add($"dashboard '{dashboard}': no index.html there (build it: {DashboardFiles.BuildCommand}, then use dashboard/dist)");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    [GeneratedRegex(@"^https?://(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|localhost|\*|\+):\d{1,5}/?$")]
    private static partial Regex ListenUrl();
}

public sealed class ServeCommand : ICommandGroup
{
    public int Order => 0;

    public IEnumerable<Command> Commands()
    {
        var defaults = new ServeSettings();
        var serve = new Command(AnalyticsCli.DefaultCommand, "Run ingest, rollup and the query API (the default command)")
        {
            new Option<string>("--urls") { Description = $"Addresses to listen on, ';'-separated [default: {defaults.Urls}]", HelpName = "URLS" },
            new Option<bool>("--demo") { Description = "Create the demo merchant and site (key demo-site-key) if missing" },
            new Option<bool>("--echo") { Description = "Also map the /v1/echo WebSocket endpoint (benchmark baseline)" },
            new Option<bool>("--quiet") { Description = "Log warnings and errors only" },
            new Option<string>("--roles") { Description = $"Which services run in this process [default: {defaults.Roles}]", HelpName = "ingest,rollup,query" },
            Settings.OneOf("--log", "The event log: the local durable log under --data, or Kafka", "local", "kafka"),
            new Option<string>("--kafka-bootstrap") { Description = "Kafka bootstrap servers (with --log kafka)", HelpName = "HOST:PORT,..." },
            new Option<string>("--kafka-topic") { Description = $"Kafka topic [default: {defaults.KafkaTopic}]", HelpName = "TOPIC" },
            new Option<string>("--schema-registry") { Description = "Schema registry URL (registers the Avro schema)", HelpName = "URL" },
            new Option<string>("--consumer-group") { Description = $"Rollup's Kafka consumer group [default: {defaults.ConsumerGroup}]", HelpName = "GROUP" },
            Settings.Integer<ushort>("--logic-version", $"Processing-logic version live Rollup applies ({string.Join(", ", ProcessingLogic.Versions)}) [default: {ProcessingLogic.Current}]", 1, ushort.MaxValue),
            new Option<string>("--agent-js") { Description = "Serve this build of the browser agent at /agent.js", HelpName = "FILE" },
            new Option<string>("--dashboard") { Description = "Serve this build of the dashboard (its dist directory) at / [default: the nearest dashboard/dist]", HelpName = "DIR" },
            EdgePurgeOption.Create("Edge caches (Varnish with xkey) to purge when reprocessing changes a site-day, an API key is revoked or goals change, comma-separated [default: none]"),
            new Option<string>("--trusted-proxies") { Description = "Proxies whose client-address header (--forwarded-header) to believe, e.g. 10.0.0.0/8,127.0.0.1 [default: none]", HelpName = "ADDRESSES" },
            Settings.OneOf("--forwarded-header", "The header the trusted proxies write the client's address into; the other is ignored", "x-forwarded-for", "forwarded"),
            Settings.Integer("--max-connections", $"Open ingest WebSockets at most; more get 503, 0: no limit [default: {defaults.MaxConnections}]", 0, int.MaxValue),
            Settings.Integer("--max-connections-per-ip", $"Open ingest WebSockets per IP address (IPv6: /64); more get 429, 0: no limit [default: {defaults.MaxConnectionsPerIp}]", 0, int.MaxValue),
            Settings.Integer("--max-peer-connections-per-ip", $"Open TCP connections per peer address (IPv6: /64), HTTP and WebSocket, trusted proxies not counted; more get 429 and are closed, 0: no limit [default: {defaults.MaxPeerConnectionsPerIp}]", 0, int.MaxValue),
            Settings.Integer("--max-tcp-connections", $"Open TCP connections on this server, HTTP and WebSocket, every peer counted; more get 503 and are closed; never above the open-files limit less a fifth, 0: that bound alone [default: {defaults.MaxTcpConnections}]", 0, int.MaxValue),
            Settings.Integer("--events-per-second-per-ip", $"Events per second per IP address (burst: 5 s worth); more get RETRY/429, 0: no limit [default: {defaults.EventsPerSecondPerIp}]", 0, int.MaxValue),
            Settings.Integer("--events-per-second-per-site", $"Events per second per site (burst: 5 s worth); more get RETRY/429, 0: no limit [default: {defaults.EventsPerSecondPerSite}]", 0, int.MaxValue),
            Settings.Integer("--drain-timeout", $"Seconds a stop (SIGTERM) may take: readiness false, WebSockets closed with 1001, log flushed [default: {defaults.DrainTimeout}]", 1, 3600),
            Settings.Integer("--rollup-interval-ms", $"Milliseconds between the starts of two Rollup rounds at least, unless a backlog waits: longer costs freshness, saves CPU; 0: a round as soon as records arrive [default: {defaults.RollupIntervalMs}]", 0, 60_000),
            ControlPlaneSettings.Option(),
            new Option<string>("--enrichment-data") { Description = "Enrichment data sets (scripts/fetch-enrichment-data.sh) [default: the nearest .cache/enrichment]", HelpName = "DIR" },
            new Option<string>("--geoip-db") { Description = "GeoIP2/GeoLite2 Country or City database [default: GeoLite2 City in the enrichment data]", HelpName = "FILE" },
            new Option<string>("--issuer") { Description = "Issuer name of the tokens this server signs [default: the first --urls]", HelpName = "URL" },
            new Option<string>("--authority") { Description = "Accept tokens of this standard issuer instead of running the embedded authorization server", HelpName = "URL" },
            new Option<string>("--audience") { Description = $"The audience tokens must name [default: {defaults.Audience}]", HelpName = "NAME" },
            new Option<string>("--otlp-endpoint") { Description = "Export spans to this OTLP collector (gRPC; OTLP/HTTP when the path ends in /v1/traces) [default: off]", HelpName = "URL" },
            new Option<string>("--zipkin-endpoint") { Description = "Export spans to this Zipkin endpoint, e.g. http://zipkin:9411/api/v2/spans [default: off]", HelpName = "URL" },
        };
        foreach (var (name, what) in new[]
        {
            ("--retention-raw", "raw events (what reprocessing rebuilds from: days older cannot be reprocessed)"),
            ("--retention-enriched", "enriched events (older days: the query API answers from the rollups, or refuses)"),
            ("--retention-minute", "minute rollups"),
            ("--retention-hour", "hour rollups"),
            ("--retention-day", "day rollups"),
            ("--retention-dimensions", "the dimension and visit rollups (rollup_dims_day, rollup_visits_day: top lists, the main graph, visit metrics)"),
        })
        {
            serve.Options.Add(new Option<string>(name) { Description = $"How long to keep {what}: forever, or N with d, w, m or y, e.g. 90d, 10y [default: forever]", HelpName = "PERIOD" });
        }
        foreach (var option in StoreSettings.Options()) serve.Options.Add(option);
        serve.SetAction((parse, ct) => RunAsync(Settings.Bind<ServeSettings>(parse, s => s
            .AddSingleton<IValidateOptions<ServeSettings>, ServeSettingsValidator>()
            .AddSingleton<IValidateOptions<ServeSettings>, StoreSettingsValidator<ServeSettings>>()), ct));
        yield return serve;
    }

    private static async Task<int> RunAsync(ServeSettings settings, CancellationToken ct)
    {
        string data = settings.DataDirectory();
        using var dataLock = DataDirectoryLock.Acquire(data);
        var server = settings.ClickHouseServerOptions();
        var app = await AnalyticsHost.BuildAsync(new HostSettings
        {
            DataDirectory = data,
            Urls = settings.Urls,
            Database = settings.DatabaseName(),
            ClickHouseServer = server,
            Kafka = settings.KafkaOptions(),
            ConsumerGroup = settings.ConsumerGroup,
            EnableEcho = settings.Echo,
            Quiet = settings.Quiet,
            Roles = settings.ParseRoles(),
            LogicVersion = settings.LogicVersion,
            AgentScriptPath = settings.AgentJs,
            DashboardPath = settings.Dashboard,
            TrustedProxies = settings.TrustedProxyList(),
            ForwardedHeader = settings.ForwardedHeader == "forwarded" ? Analytics.FastIngest.Transport.ClientAddressHeader.Forwarded : Analytics.FastIngest.Transport.ClientAddressHeader.XForwardedFor,
            EdgePurgeUrls = EdgePurgeOption.TryParse(settings.EdgePurgeUrl, out var edges, out _) ? edges : [],
            EnrichmentData = settings.EnrichmentData,
            GeoIpDatabase = settings.GeoipDb,
            ControlPlane = settings.ControlPlane,
            Limits = settings.Limits(),
            DrainTimeout = TimeSpan.FromSeconds(settings.DrainTimeout),
            RollupRoundInterval = TimeSpan.FromMilliseconds(settings.RollupIntervalMs),
            // Tokens: this host's own issuer by default; --authority/--audience accept another's.
            Auth = new AuthSettings { Issuer = settings.Issuer?.ToString(), Authority = settings.Authority?.ToString(), Audience = settings.Audience },
            Telemetry = new TelemetrySettings { OtlpEndpoint = settings.OtlpEndpoint, ZipkinEndpoint = settings.ZipkinEndpoint },
            Retention = settings.Retention(),
        }, ct);
        bool ownIssuer = settings.Authority is null;
        DemoAccess.Credentials? access = null;
        Site? demo = null;
        try
        {
            demo = settings.Demo ? EnsureDemoSite(app.Services.GetRequiredService<SiteRegistry>()) : null;
            access = demo is not null && ownIssuer ? await DemoAccess.EnsureAsync(app.Services, data, demo) : null;
            await app.StartAsync(ct);
            // The demo shop is served by this server itself: its pages' origin is the bound address.
            if (demo is not null)
            {
                var bound = new Uri(app.BoundAddress());
                var registry = app.Services.GetRequiredService<SiteRegistry>();
                registry.AddAllowedOrigin(demo.SiteId, bound.GetLeftPart(UriPartial.Authority));
                registry.AddAllowedOrigin(demo.SiteId, $"http://localhost:{bound.Port}");
            }
            // The dashboard signs in with a redirect back to itself: allow the address really bound.
            if (ownIssuer) await Analytics.Identity.AnalyticsIdentity.EnsureDashboardClientAsync(app.Services, new Uri(app.BoundAddress() + "/"));
        }
        catch
        {
            // Stopping fires ApplicationStopped, which closes the log and the engine (see AnalyticsHost).
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            throw;
        }
        string log = settings.KafkaOptions() is { } kafka ? $"Kafka at {kafka.BootstrapServers}, topic {kafka.Topic}" : "local event log";
        string store = server is null ? "in-process ClickHouse"
            : $"ClickHouse at {server.Endpoint.GetLeftPart(UriPartial.Authority)}{(server.Cluster is null ? "" : ", cluster " + server.Cluster)}";
        PrintBanner(app.BoundAddress(), data, demo, access, log, store, settings.ParseRoles(), ownIssuer);
        NodeDrain.ExitIfStopHangs(app.Lifetime, TimeSpan.FromSeconds(settings.DrainTimeout));
        await app.WaitForShutdownAsync(CancellationToken.None);
        return 0;
    }

    private static Site EnsureDemoSite(SiteRegistry registry)
    {
        var site = registry.Resolve(DemoSite.Key) ?? registry.CreateSite(registry.CreateMerchant("Demo Merchant"), "demo.localhost", DemoSite.Key);
        EnsureDemoGoals(registry.Store, site);
        return site;
    }

    /// <summary>Goals and a funnel matching what the demo shop and `demo-traffic` send, so the
    /// dashboard's conversion, revenue, goal, property and funnel views show something. Only on a
    /// demo site without goals: a merchant's own changes stay.</summary>
    private static void EnsureDemoGoals(IControlPlaneStore store, Site site)
    {
        if (store.ListGoals(site.SiteId).Count > 0) return;
        var pricing = store.CreateGoal(site.SiteId, "Visit pricing", "page", "/pricing");
        var signup = store.CreateGoal(site.SiteId, "Signup", "event", "signup");
        store.CreateGoal(site.SiteId, "Pro signup", "event", "signup", new GoalProperty("plan", "pro"));
        store.CreateGoal(site.SiteId, "Purchase", "event", "purchase", currency: "EUR");
        store.CreateFunnel(site.SiteId, "Pricing to signup", [pricing.Id, signup.Id]);
    }

    /// <summary>What this process serves, and nothing it does not: a node of a split deployment
    /// (`--roles ingest`) has no query API or dashboard to point at.</summary>
    private static void PrintBanner(string address, string data, Site? demo, DemoAccess.Credentials? access, string log, string store, Roles roles, bool ownIssuer)
    {
        string ws = address.Replace("http://", "ws://", StringComparison.Ordinal);
        bool ingest = roles.HasFlag(Roles.Ingest), query = roles.HasFlag(Roles.Query);
        string roleNames = string.Join(", ", new[] { Roles.Ingest, Roles.Rollup, Roles.Query }.Where(r => roles.HasFlag(r)).Select(r => r.ToString().ToLowerInvariant()));
        var lines = new List<string> { "", $"Analytics is running ({log} + {store}; roles {roleNames})" };
        if (query) lines.Add($"  dashboard      {address}/{(demo is null ? "" : "?site=" + demo.PublicId)}");
        if (ingest) lines.Add($"  ingest         {ws}/v1/ws   (WebSocket, protobuf EventBatch)   and   POST {address}/v1/events");
        if (query)
        {
            lines.Add($"  query API      {address}/v1/sites/{{site}}/timeseries?metrics=pageviews,visitors&interval=minute");
            lines.Add($"                 {address}/v1/sites/{{site}}/aggregate?metrics=pageviews,visitors,visits,events");
        }
        if (ownIssuer) lines.Add($"  sign-in        {address}/account/login   tokens: POST {address}/connect/token (OAuth2)");
        lines.Add($"  admin          ./run.sh bootstrap   (once: the first admin client, saved in {data}/admin-client.json)");
        lines.Add($"  metrics        {address}/metrics");
        lines.Add($"  data           {data}");
        if (demo is not null)
        {
            lines.Add($"  demo site      id {demo.PublicId}, key {demo.SiteKey} (merchant {demo.MerchantId})");
            if (ingest)
            {
                lines.Add($"  demo shop      {address}/demo/   (a page with the real agent: click around, then watch the dashboard)");
                lines.Add("  send traffic   ./run.sh demo-traffic     (simulated visitors for 60 s)");
            }
        }
        if (demo is not null && access is not null && query)
        {
            lines.Add($"  dashboard user {access.Email}   password {access.Password}   (open {address}/?site={demo.PublicId} and sign in)");
            lines.Add($"  API token      TOKEN=$(curl -s {address}/connect/token -d grant_type=client_credentials \\");
            lines.Add($"                      -d client_id={access.ClientId} -d client_secret={access.ClientSecret} | sed -n 's/.*\"access_token\": *\"\\([^\"]*\\)\".*/\\1/p')");
            lines.Add($"  see numbers    curl -H \"Authorization: Bearer $TOKEN\" '{address}/v1/sites/{demo.PublicId}/aggregate?metrics=pageviews,visitors,visits,events'");
        }
        Console.WriteLine(string.Join(Environment.NewLine, lines));
    }
}

/// <summary>The demo site `serve --demo` creates and `demo-traffic` sends to.</summary>
public static class DemoSite
{
    public const string Key = "demo-site-key";
}
