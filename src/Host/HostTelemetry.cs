using System.Diagnostics.Metrics;
using Analytics.Enrichment;
using Analytics.EventLog;
using Analytics.EventLog.Kafka;
using Analytics.EventLog.Telemetry;
using Analytics.FastIngest;
using Analytics.QueryService;
using Analytics.Rollup;
using Analytics.Store;
using Microsoft.AspNetCore.Routing;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Analytics.Host;

/// <summary>Where this node sends traces (`--otlp-endpoint`, `--zipkin-endpoint`); both off by default.</summary>
public sealed class TelemetrySettings
{
    /// <summary>An OTLP collector: gRPC (e.g. http://collector:4317), or OTLP/HTTP when the URL's
    /// path ends in /v1/traces (e.g. http://collector:4318/v1/traces).</summary>
    public Uri? OtlpEndpoint { get; init; }
    /// <summary>A Zipkin collector's span endpoint, e.g. http://zipkin:9411/api/v2/spans.</summary>
    public Uri? ZipkinEndpoint { get; init; }
    /// <summary>More tracing configuration (tests add an in-memory exporter); turns tracing on.</summary>
    public Action<TracerProviderBuilder>? ConfigureTracing { get; init; }

    public bool Tracing => OtlpEndpoint is not null || ZipkinEndpoint is not null || ConfigureTracing is not null;
}

/// <summary>
/// The node's OpenTelemetry: every Meter of the roles (and ASP.NET Core's request and Kestrel
/// connection meters) exported in Prometheus text at GET /metrics, and, when an exporter is
/// configured, spans of every ActivitySource of the roles plus ASP.NET Core's request spans
/// (which carry the caller's W3C traceparent). The role libraries only publish Meters and
/// ActivitySources; this file is the only one that knows OpenTelemetry.
/// Meters created through a host's IMeterFactory (ingest, Rollup, ASP.NET Core) are exported
/// by that host only, so several hosts in one process (tests) each show their own numbers.
/// </summary>
internal static class HostTelemetry
{
    public const string HostMeterName = "Analytics.Host";

    private static readonly string[] Meters =
    [
        IngestMetrics.MeterName, RollupStatus.MeterName, EventLogTelemetry.Name, StoreTelemetry.MeterName,
        QueryTelemetry.Name, EnrichmentTelemetry.MeterName, HostMeterName,
        "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel",
    ];

    private static readonly string[] Sources =
    [
        IngestTelemetry.SourceName, EventLogTelemetry.Name, RollupTelemetry.SourceName, QueryTelemetry.Name,
        // ASP.NET Core's request spans: their parent is the request's traceparent header.
        "Microsoft.AspNetCore",
    ];

    public static void AddAnalyticsTelemetry(this IServiceCollection services, TelemetrySettings settings)
    {
        var otel = services.AddOpenTelemetry().ConfigureResource(r => r.AddService("analytics"));
        otel.WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters);
            ((IDeferredMeterProviderBuilder)metrics).Configure((services, builder) =>
            {
                var own = services.GetRequiredService<IMeterFactory>();
                // Another host's instruments, and ingest or Rollup instruments made without any
                // factory (tests and benchmarks that run a RollupWorker of their own): those are
                // never this host's, and beside a host in the same process they made its series
                // show their counts (a Prometheus test read another worker's events stored).
                builder.AddView(instrument => instrument.Meter.Scope switch
                {
                    IMeterFactory other when !ReferenceEquals(other, own) => MetricStreamConfiguration.Drop,
                    null when instrument.Meter.Name is IngestMetrics.MeterName or RollupStatus.MeterName => MetricStreamConfiguration.Drop,
                    _ => null,
                });
            });
            // Every scrape sees the numbers of that moment (tests read /metrics right after acting).
            metrics.AddPrometheusExporter(o =>
            {
                o.ScrapeResponseCacheDurationMilliseconds = 0;
                // Series keep the names and labels they had before OpenTelemetry (tests, the load
                // tool and dashboards read them); the analytics_ prefix already names their origin.
                o.ScopeInfoEnabled = false;
            });
        });
        if (!settings.Tracing) return;
        otel.WithTracing(tracing =>
        {
            tracing.AddSource(Sources);
            if (settings.OtlpEndpoint is { } otlp)
            {
                tracing.AddOtlpExporter(o =>
                {
                    o.Endpoint = otlp;
                    o.Protocol = otlp.AbsolutePath.EndsWith("/v1/traces", StringComparison.Ordinal) ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                });
            }
            // OpenTelemetry deprecated its Zipkin exporter in favour of OTLP (which recent Zipkin
            // collectors also take); kept for Zipkin servers without OTLP. Prefer --otlp-endpoint.
#pragma warning disable CS0618
            if (settings.ZipkinEndpoint is { } zipkin) tracing.AddZipkinExporter(o => o.Endpoint = zipkin);
#pragma warning restore CS0618
            settings.ConfigureTracing?.Invoke(tracing);
        });
    }

    /// <summary>GET /metrics, the host's process counters, and the libraries' loggers.</summary>
    public static void MapAnalyticsTelemetry(this WebApplication app, IEventLog log)
    {
        // GET only, as before (the exporter maps every method).
        app.MapPrometheusScrapingEndpoint("/metrics").WithMetadata(new HttpMethodMetadata(["GET"]));
        // Their instruments exist from construction: build them now, so a node that has not
        // served a batch yet still exports its zeros (DI would build them at first use).
        app.Services.GetRequiredService<IngestMetrics>();
        app.Services.GetRequiredService<RollupStatus>();
        var meter = app.Services.GetRequiredService<IMeterFactory>().Create(HostMeterName);
        // The load tool's allocation figure (perf/LoadTool/ServerMetrics.cs) reads this series.
        meter.CreateObservableCounter("dotnet_gc_allocated_bytes_total", () => GC.GetTotalAllocatedBytes(false), null,
            "Bytes allocated by the process (GC.GetTotalAllocatedBytes).");
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();
        switch (log)
        {
            case LocalLog local:
                local.Logger = loggers.CreateLogger<LocalLog>();
                break;
            case KafkaEventLog kafka:
                kafka.Logger = loggers.CreateLogger<KafkaEventLog>();
                meter.CreateObservableGauge("analytics_kafka_inflight_bytes", () => kafka.InflightBytes, null,
                    "Records handed to the Kafka producer and not yet acknowledged.");
                meter.CreateObservableCounter("analytics_kafka_refused_batches_total", () => kafka.RefusedBatches, null,
                    "Batches answered with a retry because Kafka refused, timed out or was too far behind.");
                break;
        }
    }
}
