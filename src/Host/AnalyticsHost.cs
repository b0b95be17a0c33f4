using Analytics.ControlPlane;
using Analytics.EventLog;
using Analytics.EventLog.Kafka;
using Analytics.FastIngest;
using Analytics.FastIngest.Transport;
using Analytics.FastIngest.Validation;
using Analytics.Identity;
using Analytics.QueryService;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Security;
using Analytics.Store;
using Analytics.Store.ClickHouse;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Analytics.Host;

public sealed class HostSettings
{
    /// <summary>Control plane (embedded default), issuer keys (identity/), local event log, reprocessing jobs and quarantined records live here.</summary>
    public required string DataDirectory { get; init; }
    /// <summary>The control plane (`--control-plane`): sqlite:PATH or postgres:CONNECTION-STRING;
    /// null means SQLite in the data directory (control-plane.db). Nodes that must agree on
    /// sites and visitor salts share one PostgreSQL database.</summary>
    public string? ControlPlane { get; init; }
    /// <summary>chDB's data directory; one per process (a chDB limitation), shared by databases.</summary>
    public string? ChDbPath { get; init; }
    /// <summary>A ClickHouse server or cluster to store in instead of the in-process engine
    /// (`--store clickhouse`); null keeps the embedded default.</summary>
    public ClickHouseServerOptions? ClickHouseServer { get; init; }
    /// <summary>Kafka as the event log (`--log kafka`); null keeps the local durable log.</summary>
    public KafkaLogOptions? Kafka { get; init; }
    /// <summary>Rollup's consumer group: every Rollup process of a deployment shares it.</summary>
    public string ConsumerGroup { get; init; } = "rollup";
    /// <summary>Most records per Rollup round (RollupOptions.MaxBatchRecords).</summary>
    public int RollupBatchRecords { get; init; } = RollupOptions.DefaultMaxBatchRecords;
    /// <summary>Least time between two Rollup rounds' starts without a backlog (RollupOptions.MinRoundInterval).</summary>
    public TimeSpan RollupRoundInterval { get; init; } = RollupOptions.DefaultMinRoundInterval;
    public string Database { get; init; } = "analytics";
    public string Urls { get; init; } = "http://127.0.0.1:5080";
    public bool EnableEcho { get; init; }
    public bool Quiet { get; init; }
    public IngestLimits Limits { get; init; } = IngestLimits.Default;
    /// <summary>Which services run in this process (all by default). The same binary runs one
    /// role per process in a scale-out deployment, and benchmarks measure ingest alone.</summary>
    public Roles Roles { get; init; } = Roles.All;
    /// <summary>Processing-logic version live Rollup applies (ProcessingLogic.Versions).</summary>
    public ushort LogicVersion { get; init; } = ProcessingLogic.Current;
    /// <summary>Another build of the browser agent to serve at /agent.js (`--agent-js`); null finds
    /// agents/packages/agent/dist/agent.min.js above the binary.</summary>
    public string? AgentScriptPath { get; init; }
    /// <summary>Another build of the dashboard to serve at / (`--dashboard`, a dist directory); null
    /// finds dashboard/dist above the binary.</summary>
    public string? DashboardPath { get; init; }
    /// <summary>Who may call the APIs (access tokens, API keys); see <see cref="AuthSettings"/>.</summary>
    public AuthSettings Auth { get; init; } = new();
    /// <summary>The data sets scripts/fetch-enrichment-data.sh installs (`--enrichment-data`,
    /// ANALYTICS_ENRICHMENT_DATA); null: the nearest .cache/enrichment above the binary.</summary>
    public string? EnrichmentData { get; init; }
    /// <summary>A GeoIP2/GeoLite2 Country or City database (`--geoip-db`); null: the GeoLite2 City
    /// database among the enrichment data.</summary>
    public string? GeoIpDatabase { get; init; }
    /// <summary>Enrichment data already loaded (tests share one across their in-process hosts);
    /// null: loaded from <see cref="EnrichmentData"/> and <see cref="GeoIpDatabase"/>.</summary>
    public EnrichmentRules? Enrichment { get; init; }
    /// <summary>Clock for receive times; tests replace it to place events at chosen times.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;
    /// <summary>Addresses and networks ("10.0.0.0/8", "127.0.0.1") of the load balancers and
    /// reverse proxies in front of this server, whose X-Forwarded-For / Forwarded headers name the
    /// client (`--trusted-proxies`, ANALYTICS_TRUSTED_PROXIES). Empty: no header is believed.</summary>
    public IReadOnlyList<string> TrustedProxies { get; init; } = [];
    /// <summary>The header those proxies write the client's address into (`--forwarded-header`):
    /// only that one is believed.</summary>
    public ClientAddressHeader ForwardedHeader { get; init; } = ClientAddressHeader.XForwardedFor;
    /// <summary>The circuit breakers around the event log and the store (CircuitBreakers.cs).</summary>
    public CircuitBreakerSettings CircuitBreakers { get; init; } = new();
    /// <summary>Bounds the stop after SIGTERM (`--drain-timeout`): readiness false, WebSockets
    /// closed with 1001, then the server, Rollup and the log stop (NodeLifecycle.cs).</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Edge caches to purge when reprocessing changes a site-day, an API key is revoked or a
    /// site's goals change (`--edge-purge-url`,
    /// ANALYTICS_EDGE_PURGE_URL; EdgePurger.cs). Empty: none.</summary>
    public IReadOnlyList<Uri> EdgePurgeUrls { get; init; } = [];
    /// <summary>Trace exporters (`--otlp-endpoint`, `--zipkin-endpoint`); metrics are always at /metrics.</summary>
    public TelemetrySettings Telemetry { get; init; } = new();
    /// <summary>How long each table keeps its rows (`--retention-*`; src/Store/Retention.cs). A process
    /// running Rollup applies it as TTLs at start; the query API plans with it; reprocessing refuses
    /// days older than the raw events' horizon. Default: everything kept.</summary>
    public RetentionPolicy Retention { get; init; } = RetentionPolicy.KeepEverything;
}

/// <summary>
/// The APIs' token validation and the embedded authorization server. By default this host is its
/// own issuer (<c>Issuer</c>, default: the first listen URL) and validates its tokens with the
/// keys in <c>DATA/identity/</c>. With <c>Authority</c> set, the APIs accept tokens of that
/// standard issuer instead (keys from its discovery document) and the embedded server is not
/// started.
/// </summary>
public sealed class AuthSettings
{
    public string? Issuer { get; init; }
    public string? Authority { get; init; }
    public string Audience { get; init; } = ApiAuthenticationOptions.DefaultAudience;
    public TimeSpan RevocationCacheTime { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan AccessTokenLifetime { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>Tolerance for clocks that differ when checking a token's lifetime (1 minute). Tests
    /// set 0 with a short <see cref="AccessTokenLifetime"/> to see a token expire in seconds.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromMinutes(1);
}

[Flags]
public enum Roles
{
    Ingest = 1,
    Rollup = 2,
    Query = 4,
    All = Ingest | Rollup | Query,
}

/// <summary>
/// The embedded deployment: FastIngest, Rollup and QueryService in one process, with the local
/// durable log and the in-process ClickHouse engine. The same components run separately in the
/// scale-out deployment; only this composition differs.
/// </summary>
public static class AnalyticsHost
{
    public static async Task<WebApplication> BuildAsync(HostSettings settings, CancellationToken ct = default)
    {
        string data = Path.GetFullPath(settings.DataDirectory);
        Cli.DataDirectoryLock.CreateOwnerOnly(data);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.ConfigureKestrel(ApiConventions.ConfigureRequestLimits);
        // Trusted proxies are validated by the CLI (ServeCommand) before a host is built.
        if (!Analytics.FastIngest.Transport.TrustedProxies.TryParse(settings.TrustedProxies, out var proxies, out var proxyNetworks, out string? proxyError))
            throw new ArgumentException(proxyError, nameof(settings));
        long? openFiles = TcpConnectionLimits.OpenFilesLimit();
        int maxTcpConnections = TcpConnectionLimits.WithinOpenFiles(settings.Limits.MaxTcpConnections, openFiles);
        var connectionLimits = new TcpConnectionLimits(maxTcpConnections, settings.Limits.MaxPeerConnectionsPerIp, proxies, proxyNetworks, TimeProvider.System,
            TcpConnectionLimits.RefusingAtMost(openFiles));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Use(connectionLimits.Middleware)));
        builder.Services.AddSingleton(connectionLimits);
        if (settings.Quiet) builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // The generic host logs a failed start ("Hosting failed to start": a taken port, say) with
        // its whole stack trace before the caller can report it in one line. Critical stays on: a
        // background service that stops the host is logged there, with its exception.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        if (!ProcessingLogic.IsKnown(settings.LogicVersion))
            throw new ArgumentException($"Unknown processing-logic version {settings.LogicVersion}; known: {string.Join(", ", ProcessingLogic.Versions)}.");
        string db = ClickHouseSql.RequirePlainIdentifier(settings.Database);
        // EF Core (OpenIddict's stores) logs every SQL command at Information.
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
        // Its request logs are Information and Debug. While its logger is on at all, ASP.NET Core
        // starts an Activity and a logging scope for every request (their ids for the scope):
        // ~1 KB and an ExecutionContext per beacon. Tracing (--otlp-endpoint) still gets its
        // request spans: a listener on the "Microsoft.AspNetCore" source starts them.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);

        var registry = new SiteRegistry(ControlPlaneStore.Open(settings.ControlPlane ?? ControlPlaneStore.DefaultSpec(data)));
        IEventLog? log = null;
        ChDbEngine? engine = null;
        ClickHouseServerStore? server = null;
        try
        {
            log = settings.Kafka is { } kafka
                ? await KafkaEventLog.OpenAsync(kafka, settings.Clock, ct)
                // 32 MiB reads: a Rollup round takes up to 100k records (RollupBatchRecords) in one
                // read (170-300 bytes each); 8 MiB cut catch-up rounds to ~30k records.
                : LocalLog.Open(Path.Combine(data, "log"), new LocalLogOptions { ConsumerBufferBytes = 32 * 1024 * 1024 });
            (var store, engine, server, _) = await OpenStoreAsync(settings, data, db, ct);
            // The writer owns its rows' lifetime: a query-only process with other settings must not
            // undo the TTLs (it only plans with its settings, which should be the same).
            if (settings.Roles.HasFlag(Roles.Rollup)) await ApplyRetentionAsync(settings, store, db, ct);
            // Rollup enriches (live and when reprocessing); other roles do not need the data.
            var logic = new ProcessingLogic(settings.Roles.HasFlag(Roles.Rollup)
                ? settings.Enrichment ?? EnrichmentRules.Load(settings.EnrichmentData ?? Analytics.Enrichment.EnrichmentDataDirectory.Locate(), settings.GeoIpDatabase)
                : null);
            // Polly measures its windows on the system clock: settings.Clock is the events' receive
            // time, which tests move by days.
            var breakers = new CircuitBreakers(settings.CircuitBreakers, TimeProvider.System);
            // Rollup's statements (its rounds, reprocessing) run in the background: a dashboard
            // query beside a catch-up gets the cores first (StatementPriority, docs/operations.md).
            IColumnStore rollupStore = store switch
            {
                EmbeddedColumnStore embedded => embedded.WithPriority(StatementPriority.Background),
                ClickHouseServerStore clickHouse => clickHouse.WithPriority(StatementPriority.Background),
                _ => store,
            };
            var app = Compose(builder, settings, data, db, registry, new BreakerEventLog(log, breakers.EventLog),
                new BreakerColumnStore(store, breakers.Store), new BreakerColumnStore(rollupStore, breakers.Store), engine, server, logic, breakers);
            if (settings.Auth.Authority is null) await app.Services.InitializeIdentityAsync(ct);
            return app;
        }
        catch
        {
            // Nothing half-open stays behind a failed build: an engine left open when the process
            // exits crashes it in the engine's own shutdown code.
            if (log is not null) await log.DisposeAsync();
            engine?.Dispose();
            server?.Dispose();
            registry.Dispose();
            throw;
        }
    }

    private static WebApplication Compose(WebApplicationBuilder builder, HostSettings settings, string data, string db,
        SiteRegistry registry, IEventLog log, IColumnStore store, IColumnStore rollupStore, ChDbEngine? engine, ClickHouseServerStore? server, ProcessingLogic logic,
        CircuitBreakers breakers)
    {
        var services = builder.Services;
        services.AddSingleton(breakers);
        services.AddSingleton<IDependencyHealth>(breakers);
        services.AddSingleton(registry);
        services.AddSingleton(registry.Store);
        AddAuth(services, settings, data);
        services.AddApiConventions(data);
        services.AddSingleton<IEventLog>(log);
        services.AddSingleton<IColumnStore>(store);
        services.AddSingleton(settings.Limits);
        services.AddSingleton<IngestMetrics>();
        services.AddSingleton(settings.Clock);
        services.AddSingleton(_ => new Analytics.FastIngest.Abuse.TrafficLimits(settings.Limits));
        services.AddSingleton<Analytics.FastIngest.Abuse.DeadLetters>();
        services.AddSingleton<IngestProcessor>();
        if (settings.Roles.HasFlag(Roles.Ingest))
            services.AddHostedService(s => ActivatorUtilities.CreateInstance<DeadLetterWriter>(s, db));
        services.AddSingleton(settings.Retention);
        services.AddSingleton(new MetricsReader(store, db) { Retention = settings.Retention, Clock = settings.Clock });
        // With the embedded engine this process makes every activation of a generation (one
        // process per data directory), so the query engine may keep each site's active
        // generations between questions; behind a ClickHouse server other nodes activate too.
        // Likewise every write of a site-day: a large site's top lists then add up numbers kept
        // per past day (DailyRowsCache) rather than reading every day's visitor sets again.
        var activations = engine is not null ? new GenerationActivations() : null;
        var siteDayWrites = engine is not null ? new SiteDayWrites() : null;
        if (activations is not null) services.AddSingleton(activations);
        if (siteDayWrites is not null) services.AddSingleton(siteDayWrites);
        services.AddSingleton(new Analytics.QueryService.Query.QueryEngine(store, db)
        {
            Retention = settings.Retention, Clock = settings.Clock, GenerationActivations = activations, SiteDayWrites = siteDayWrites,
        });
        services.AddSingleton(new Analytics.QueryService.Goals.FunnelReader(store, db));
        services.AddSingleton(logic);
        services.AddSingleton(new RollupOptions { Database = db, QuarantineDirectory = Path.Combine(data, "rollup", "quarantine"), ConsumerGroup = settings.ConsumerGroup, MaxBatchRecords = settings.RollupBatchRecords, MinRoundInterval = settings.RollupRoundInterval, LogicVersion = settings.LogicVersion });
        services.AddSingleton(new ReprocessQueue(Path.Combine(data, "rollup", "jobs")));
        services.AddSingleton(new PartitionAdmin(store, db));
        services.AddSingleton<RollupStatus>();
        if (settings.Roles.HasFlag(Roles.Rollup)) services.AddHostedService(s => ActivatorUtilities.CreateInstance<RollupWorker>(s, rollupStore));
        // Every role may change what edges hold: Rollup reprocesses days, the query role serves key
        // revocations and goal changes.
        if (settings.EdgePurgeUrls.Count > 0)
        {
            services.AddSingleton(new EdgePurgeTargets(settings.EdgePurgeUrls));
            services.AddSingleton<EdgePurger>();
            services.AddSingleton<IAnswerInvalidation>(s => s.GetRequiredService<EdgePurger>());
            services.AddHostedService(s => s.GetRequiredService<EdgePurger>());
        }
        services.AddNodeLifecycle(settings.Roles, settings.DrainTimeout);
        services.AddAnalyticsTelemetry(settings.Telemetry);

        var app = builder.Build();
        // The server store is opened before the host exists; its retries log through the host's loggers.
        if (server is not null) server.Logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<ClickHouseServerStore>();
        if (engine is not null && settings.Roles.HasFlag(Roles.Rollup) && !ChDbEngine.CanPrioritize)
        {
            app.Logger.LogWarning("The process lacks CAP_SYS_NICE: Rollup's statements run at the queries' CPU priority, " +
                "so dashboards slow down more while Rollup catches up (add the capability, e.g. docker run --cap-add=SYS_NICE; docs/operations.md)");
        }
        var connectionLimits = app.Services.GetRequiredService<TcpConnectionLimits>();
        // The default is "110,000 or what the open-files limit allows" and 0 asks for that bound: only
        // another value asked for is worth a warning.
        if (connectionLimits.MaxTotal != settings.Limits.MaxTcpConnections && settings.Limits.MaxTcpConnections != IngestLimits.Default.MaxTcpConnections
            && settings.Limits.MaxTcpConnections != 0)
        {
            app.Logger.LogWarning("Open TCP connections limited to {Connections} instead of {Configured} (--max-tcp-connections): the process may open {OpenFiles} files (ulimit -n), " +
                "and the store and the log need the rest; raise the limit to accept more", connectionLimits.MaxTotal, settings.Limits.MaxTcpConnections, TcpConnectionLimits.OpenFilesLimit());
        }
        // Ingest's WebSockets are TCP connections too: a total below --max-connections makes that
        // limit unreachable, which an operator sizing for it should hear at start, not at the 503s.
        if (settings.Roles.HasFlag(Roles.Ingest) && settings.Limits.MaxConnections > connectionLimits.MaxTotal)
        {
            app.Logger.LogWarning("Ingest WebSockets can reach {Connections}, not --max-connections {WebSockets}: open TCP connections are limited to {Connections} " +
                "(--max-tcp-connections, kept below the open-files limit of {OpenFiles}, ulimit -n)",
                connectionLimits.MaxTotal, settings.Limits.MaxConnections, connectionLimits.MaxTotal, TcpConnectionLimits.OpenFilesLimit());
        }
        connectionLimits.Metrics = app.Services.GetRequiredService<IngestMetrics>();
        // First: a connection over the total (503) or its address's limit (429) gets that for whatever it asks.
        app.Use(TcpConnectionLimits.RefuseOverLimit);
        // Then: everything after it (ingest's ClientInfo above all) sees the client's address.
        app.UseTrustedProxies(settings.TrustedProxies, settings.ForwardedHeader);
        // Recognises upgrade requests (context.WebSockets.IsWebSocketRequest); the ingest and echo
        // endpoints then frame WebSocket messages themselves on the connection pipes. Only there
        // (WebSocketEndpoint says why).
        app.UseWhen(IngestEndpoints.TakesWebSockets, sockets => sockets.UseWebSockets());
        // Ingest's hot path needs nothing more (IngestHotPathEndpoint says why): an idle socket then
        // holds ~3.4 KB less and an upgrade allocates ~8.7 KB less (docs/security.md, "Cost on ingest's hot path").
        app.UseWhen(static context => !IngestEndpoints.IsIngestHotPath(context), api =>
        {
            api.UseApiConventions();
            // Inside the conventions' exception handler: an open store breaker answers 503, not 500.
            api.UseStoreUnavailableAnswer();
            api.UseDefaultFiles();
            api.UseStaticFiles();
            api.UseAuthentication();
            api.UseAuthorization();
        });
        // UseAuthentication/UseAuthorization mark the builder they are called on, and UseWhen's
        // branch builder is a copy: without the mark on the application, WebApplication adds both
        // again in front of everything, for every request (dotnet/aspnetcore#48098, #52720).
        ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
        ((IApplicationBuilder)app).Properties["__AuthorizationMiddlewareSet"] = true;
        if (settings.Auth.Authority is null) app.MapAnalyticsIdentity();
        if (settings.Roles.HasFlag(Roles.Ingest)) app.MapFastIngest(settings.EnableEcho);
        if (settings.Roles.HasFlag(Roles.Query)) app.MapQueryService();
        if (settings.Roles.HasFlag(Roles.Query)) Analytics.QueryService.Goals.GoalEndpoints.MapGoalsAndFunnels(app);
        app.MapAdmin(settings.Roles);
        if (settings.Roles.HasFlag(Roles.Query)) app.MapSiteManagement();
        if (settings.Roles.HasFlag(Roles.Query)) app.MapSiteSecurity(db);
        app.MapAgentScript(settings.AgentScriptPath);
        // The dashboard is a client of the query API: a node without it would serve a page whose every call 404s.
        if (settings.Roles.HasFlag(Roles.Query)) app.MapDashboard(settings.DashboardPath);
        app.MapApiDocs();
        // "ok", or 503 naming each dependency whose circuit breaker is open and why: the process is
        // alive and recovers by itself (half-open probes), but cannot serve everything now.
        app.MapGet("/healthz", (IDependencyHealth health) => health.Unavailable is { Count: > 0 } down
            ? Results.Text(string.Join("\n", down.Select(d => $"unavailable: {d.Dependency}: {d.Reason}")) + "\n", statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ok"));
        app.MapProbes();
        app.MapAnalyticsTelemetry(log is BreakerEventLog breaker ? breaker.Inner : log);
        // The host owns the log and its reference to the engine: release both after the server
        // and Rollup have stopped (the engine closes when its last holder lets go).
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            log.DisposeAsync().AsTask().GetAwaiter().GetResult();
            engine?.Dispose();
            server?.Dispose();
            registry.Dispose();
        });
        return app;
    }

    /// <summary>
    /// Opens the configured store (embedded chDB or a ClickHouse server/cluster) and applies the
    /// schema migrations (idempotent: applied versions are skipped). `analytics migrate` runs
    /// just this; `serve` runs it at start.
    /// </summary>
    public static async Task<(IColumnStore Store, ChDbEngine? Engine, ClickHouseServerStore? Server, IReadOnlyList<SchemaMigration> Applied)> OpenStoreAsync(
        HostSettings settings, string data, string db, CancellationToken ct = default)
    {
        string schemas = Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse");
        if (settings.ClickHouseServer is { } clickHouse)
        {
            var server = new ClickHouseServerStore(clickHouse);
            var applied = clickHouse.Cluster is { } cluster
                ? await ClusterSchemaMigrator.For(server, cluster).MigrateAsync(schemas, db, ct)
                : await new SchemaMigrator(server).MigrateAsync(schemas, db, ct);
            return (server, null, server, applied);
        }
        var engine = ChDbEngine.Open(settings.ChDbPath ?? Path.Combine(data, "chdb"));
        var store = new EmbeddedColumnStore(engine);
        await store.ExecuteAsync($"CREATE DATABASE IF NOT EXISTS {db}", ct);
        return (store, engine, null, await new SchemaMigrator(store).MigrateAsync(schemas, db, ct));
    }

    /// <summary>Makes the tables' TTLs match <see cref="HostSettings.Retention"/> (only where they differ).</summary>
    public static Task<IReadOnlyList<RetentionApplier.Change>> ApplyRetentionAsync(HostSettings settings, IColumnStore store, string db, CancellationToken ct) =>
        settings.ClickHouseServer?.Cluster is { } cluster
            ? RetentionApplier.ApplyAsync(store, db, settings.Retention, ClusterSchemaMigrator.Target(cluster), ClusterSchema.LocalSuffix, ct)
            : RetentionApplier.ApplyAsync(store, db, settings.Retention, cancellationToken: ct);

    /// <summary>The base address Kestrel bound (useful with port 0).</summary>
    public static string BoundAddress(this WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    /// <summary>The issuer this host names in its tokens: the configured one, else the first listen URL.</summary>
    public static string IssuerOf(HostSettings settings) =>
        new Uri(settings.Auth.Issuer ?? settings.Urls.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)[0]).GetLeftPart(UriPartial.Authority) + "/";

    private static void AddAuth(IServiceCollection services, HostSettings settings, string data)
    {
        var auth = settings.Auth;
        string? issuer = auth.Authority is null ? IssuerOf(settings) : auth.Issuer;
        IReadOnlyList<Microsoft.IdentityModel.Tokens.SecurityKey> keys = [];
        if (auth.Authority is null)
        {
            string keyDirectory = Path.Combine(data, "identity");
            var issuerKeys = IssuerKeys.LoadOrCreate(keyDirectory);
            keys = [issuerKeys.Signing];
            services.AddAnalyticsIdentity(new IdentityServerOptions
            {
                Issuer = new Uri(issuer!),
                ControlPlane = settings.ControlPlane ?? ControlPlaneStore.DefaultSpec(data),
                KeyDirectory = keyDirectory,
                Audience = auth.Audience,
                AccessTokenLifetime = auth.AccessTokenLifetime,
            }, issuerKeys);
        }
        services.AddAnalyticsApiAuthentication(new ApiAuthenticationOptions
        {
            Issuer = issuer,
            Audience = auth.Audience,
            Authority = auth.Authority,
            SigningKeys = keys,
            RevocationCacheTime = auth.RevocationCacheTime,
            ClockSkew = auth.ClockSkew,
            // Loopback development against a local issuer may be plain HTTP; anything else needs TLS.
            RequireHttpsMetadata = auth.Authority is not null && !new Uri(auth.Authority).IsLoopback,
        });
    }
}
