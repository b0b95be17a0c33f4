using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Analytics.QueryService;

/// <summary>
/// The query API's latency histogram (meter "Analytics.QueryService") and spans (ActivitySource
/// "Analytics.QueryService", one "query" per request), by endpoint: the route template
/// (<c>/v1/sites/{site}/timeseries</c>), never the URL, so merchants' site ids are neither labels
/// nor span names. Measured by one endpoint filter on the query group.
/// </summary>
public static class QueryTelemetry
{
    public const string Name = "Analytics.QueryService";
    public const string QuerySpan = "query";

    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);

    private static readonly Histogram<double> Duration = Meter.CreateHistogram("analytics_query_duration", "s",
        "A query API request, from routing to its result (the store query included), by endpoint (route template) and outcome.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    internal static async ValueTask<object?> MeasureAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        string endpoint = (context.HttpContext.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unknown";
        long started = Stopwatch.GetTimestamp();
        using var activity = Source.StartActivity(QuerySpan, ActivityKind.Internal);
        activity?.SetTag("http.route", endpoint);
        string outcome = "error";
        try
        {
            var result = await next(context);
            outcome = result is IStatusCodeHttpResult { StatusCode: >= 400 } ? "refused" : "ok";
            return result;
        }
        finally
        {
            if (outcome == "error") activity?.SetStatus(ActivityStatusCode.Error);
            Duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new KeyValuePair<string, object?>("endpoint", endpoint), new KeyValuePair<string, object?>("outcome", outcome));
        }
    }
}
