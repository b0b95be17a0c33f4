using Analytics.ControlPlane;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Transport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.FastIngest;

public static class IngestEndpoints
{
    /// <summary>Maps /v1/ws and /v1/events; /v1/echo too when <paramref name="enableEcho"/>.</summary>
    public static IEndpointRouteBuilder MapFastIngest(this IEndpointRouteBuilder app, bool enableEcho)
    {
        // A host that never drains (tests, benchmarks) need not register one.
        var drain = app.ServiceProvider.GetService<IngestDrain>() ?? new IngestDrain();
        app.Map("/v1/ws", (HttpContext c, IngestProcessor p, IngestMetrics m, TrafficLimits t) => WebSocketIngest.HandleAsync(c, p, m, t, drain))
            .WithMetadata(IngestSocketEndpoint.Instance);
        app.MapPost("/v1/events", (HttpContext c, IngestProcessor p, IngestMetrics m) => HttpIngest.HandleAsync(c, p, m, drain));
        app.MapMethods("/v1/events", ["OPTIONS"], (HttpContext c, SiteRegistry s, IngestMetrics m) => HttpIngest.Preflight(c, s, m));
        if (enableEcho) app.Map("/v1/echo", WebSocketIngest.EchoAsync);
        return app;
    }

    /// <summary>True for GET /v1/ws, the WebSocket ingest endpoint (after routing has matched).</summary>
    public static bool IsIngestSocket(HttpContext context) =>
        context.GetEndpoint()?.Metadata.GetMetadata<IngestSocketEndpoint>() is not null;
}

/// <summary>
/// Marks the WebSocket ingest endpoint. It is anonymous (the site key travels in every batch) and
/// answers its refusals itself, so a host runs none of its API middleware for it: authentication
/// (the default scheme and OpenIddict's request handler run for every request they see),
/// authorization, status-code pages, static files. Each of those left state on the request for the
/// socket's whole life (about 3.4 KB per idle connection: handlers, an OpenIddict transaction, async
/// frames) and garbage at every upgrade.
/// </summary>
public sealed class IngestSocketEndpoint
{
    public static readonly IngestSocketEndpoint Instance = new();

    private IngestSocketEndpoint()
    {
    }
}
