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
        app.Map("/v1/ws", (HttpContext c, IngestProcessor p, IngestMetrics m, TrafficLimits t) => WebSocketIngest.HandleAsync(c, p, m, t, drain));
        app.MapPost("/v1/events", (HttpContext c, IngestProcessor p, IngestMetrics m) => HttpIngest.HandleAsync(c, p, m, drain));
        app.MapMethods("/v1/events", ["OPTIONS"], (HttpContext c, SiteRegistry s, IngestMetrics m) => HttpIngest.Preflight(c, s, m));
        if (enableEcho) app.Map("/v1/echo", WebSocketIngest.EchoAsync);
        return app;
    }
}
