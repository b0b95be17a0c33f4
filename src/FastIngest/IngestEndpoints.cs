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
        // Singletons resolved once: a handler that takes them as parameters resolves them from
        // the request's services, which makes a DI scope per request (~450 B and a dictionary).
        var processor = app.ServiceProvider.GetRequiredService<IngestProcessor>();
        var metrics = app.ServiceProvider.GetRequiredService<IngestMetrics>();
        var traffic = app.ServiceProvider.GetRequiredService<TrafficLimits>();
        app.Map("/v1/ws", (HttpContext c) => WebSocketIngest.HandleAsync(c, processor, metrics, traffic, drain))
            .WithMetadata(IngestHotPathEndpoint.Instance, WebSocketEndpoint.Instance);
        var scratches = IngestScratch.NewPool(metrics);
        // The CancellationToken (the request's, no DI) keeps this a route handler rather than a
        // RequestDelegate, so the endpoint keeps its OpenAPI description.
        app.MapPost("/v1/events", (HttpContext c, CancellationToken _) => HttpIngest.HandleAsync(c, processor, metrics, drain, scratches))
            .WithMetadata(IngestHotPathEndpoint.Instance);
        app.MapMethods("/v1/events", ["OPTIONS"], (HttpContext c, SiteRegistry s) => HttpIngest.Preflight(c, s, metrics, traffic, processor.Limits));
        if (enableEcho) app.Map("/v1/echo", WebSocketIngest.EchoAsync).WithMetadata(WebSocketEndpoint.Instance);
        return app;
    }

    /// <summary>True for the endpoints that take WebSocket upgrades (after routing has matched).</summary>
    public static bool TakesWebSockets(HttpContext context) =>
        context.GetEndpoint()?.Metadata.GetMetadata<WebSocketEndpoint>() is not null;

    /// <summary>True for GET /v1/ws and POST /v1/events, ingest's hot path (after routing has matched).</summary>
    public static bool IsIngestHotPath(HttpContext context) =>
        context.GetEndpoint()?.Metadata.GetMetadata<IngestHotPathEndpoint>() is not null;
}

/// <summary>
/// Marks ingest's hot path: the WebSocket endpoint and POST /v1/events. Both are anonymous (the
/// site key travels in every batch) and answer their refusals themselves (an Ack, or problem+json
/// they write), so a host runs none of its API middleware for them: authentication (the default
/// scheme and OpenIddict's request handler run for every request they see), authorization,
/// status-code pages, static files. On a socket each of those left state on the request for its
/// whole life (about 3.4 KB per idle connection: handlers, an OpenIddict transaction, async frames)
/// and garbage at every upgrade; on POST /v1/events, where a beacon carries one event, they cost
/// more per request than the event itself. The CORS preflight (OPTIONS) is rare and keeps them.
/// </summary>
public sealed class IngestHotPathEndpoint
{
    public static readonly IngestHotPathEndpoint Instance = new();

    private IngestHotPathEndpoint()
    {
    }
}

/// <summary>
/// Marks the endpoints that take WebSocket upgrades (/v1/ws, /v1/echo): a host runs its WebSocket
/// middleware for them only, because that middleware allocates its handshake feature for every
/// HTTP/1.1 request it sees, a beacon's POST included.
/// </summary>
public sealed class WebSocketEndpoint
{
    public static readonly WebSocketEndpoint Instance = new();

    private WebSocketEndpoint()
    {
    }
}
