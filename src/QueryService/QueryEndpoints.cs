using Analytics.ControlPlane;
using Analytics.QueryService.Http;
using Analytics.QueryService.Query;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using static Analytics.QueryService.QueryParameters;

namespace Analytics.QueryService;

/// <summary>
/// GET /v1/sites (the caller's sites), /v1/sites/{site}/timeseries and /aggregate, {site} being the site's public id (random;
/// the sequential internal id never appears in a URL or an answer). Parameters: metrics (required), from, to
/// (dates or ISO instants; default the last 24 hours), interval (minute|hour|day, timeseries
/// only), tz (IANA name, default UTC), event (restrict to one event name).
/// Every request needs the <c>stats:read</c> scope (declared once, on the group), and only sites
/// of the caller's merchant (the token's merchant claim) exist for it: another merchant's site
/// answers 404 exactly like a site that does not exist.
/// </summary>
public static class QueryEndpoints
{
    public static IEndpointRouteBuilder MapQueryService(this IEndpointRouteBuilder routes)
    {
        var app = routes.MapGroup("").RequireAuthorization(Scopes.StatsRead).AddEndpointFilter(QueryTelemetry.MeasureAsync);
        app.MapGet("/v1/sites/{site}/timeseries", async (HttpContext context, string site, SiteRegistry sites, MetricsReader reader, TimeProvider clock) =>
        {
            if (!TryBuild(context, site, sites, clock, out var query, out var error)) return error!;
            query = MetricsReader.AlignToBuckets(query!);
            if (MetricsReader.BucketStarts(query).Skip(MaxBuckets).Any())
                return Problem(StatusCodes.Status400BadRequest, "Too many buckets", $"from/to/interval give more than {MaxBuckets} buckets; use a coarser interval or a shorter range.");
            IReadOnlyList<MetricsReader.Bucket> buckets;
            try
            {
                buckets = await reader.TimeseriesAsync(query, context.RequestAborted);
            }
            catch (InvalidQueryException e)
            {
                // The range reaches past what the rollups still keep (retention).
                return Problem(StatusCodes.Status400BadRequest, "Invalid query", e.Message);
            }
            context.SetQueryCacheScope(new QueryCacheScope(query.MerchantId, site, query.From, query.To));
            return Results.Json(new
            {
                site_id = site,
                interval = query.Interval.ToString().ToLowerInvariant(),
                tz = query.TimeZone.Id,
                from = TimeZoneInfo.ConvertTime(query.From, query.TimeZone),
                to = TimeZoneInfo.ConvertTime(query.To, query.TimeZone),
                metrics = query.Metrics,
                results = buckets.Select(b => new Dictionary<string, object>(b.Values.Select(kv => new KeyValuePair<string, object>(kv.Key, kv.Value))) { ["time"] = b.Time }),
            });
        }).WithQueryCaching().WithCsv(CsvShape.Timeseries);

        // The caller's own sites (the dashboard's site picker; scripts find their public ids).
        app.MapGet("/v1/sites", (HttpContext context, SiteRegistry sites) =>
            Results.Json(sites.ListSites(context.User.RequireMerchantId()).Select(s => new { id = s.PublicId, domain = s.Domain, time_zone = s.TimeZone })));

        app.MapGet("/v1/sites/{site}/aggregate", async (HttpContext context, string site, SiteRegistry sites, MetricsReader reader, TimeProvider clock) =>
        {
            if (!TryBuild(context, site, sites, clock, out var query, out var error)) return error!;
            IReadOnlyDictionary<string, long> values;
            try
            {
                values = await reader.AggregateAsync(query!, context.RequestAborted);
            }
            catch (InvalidQueryException e)
            {
                return Problem(StatusCodes.Status400BadRequest, "Invalid query", e.Message);
            }
            context.SetQueryCacheScope(new QueryCacheScope(query!.MerchantId, site, query.From, query.To));
            return Results.Json(new { site_id = site, tz = query.TimeZone.Id, from = query.From, to = query.To, results = values });
        }).WithQueryCaching();
        routes.MapQueryV2();
        return routes;
    }

    private static bool TryBuild(HttpContext context, string site, SiteRegistry sites, TimeProvider clock, out MetricsQuery? query, out IResult? error)
    {
        query = null;
        error = null;
        var p = context.Request.Query;
        try
        {
            // Unknown, malformed and other merchants' ids answer alike: 404 says nothing about
            // which ids exist. The merchant comes from the validated token, never the request.
            var found = sites.FindByPublicId(site);
            if (found is null || found.MerchantId != context.User.RequireMerchantId())
            {
                error = Problem(StatusCodes.Status404NotFound, "Unknown site", $"There is no site '{site}'.");
                return false;
            }
            foreach (var key in p.Keys)
            {
                if (key is not ("metrics" or "from" or "to" or "interval" or "tz" or "event"))
                    throw new InvalidQueryException($"{key}: unknown parameter; accepted are metrics, from, to, interval, tz, event.");
            }
            var metrics = ParseMetrics(p["metrics"]);
            var interval = ParseInterval(p["interval"]);
            // Without tz, the site's own time zone (UTC unless the merchant set one).
            var tz = p["tz"].Count == 0 ? TimeZoneInfo.FindSystemTimeZoneById(found.TimeZone) : ParseTimeZone(p["tz"]);
            var now = clock.GetUtcNow();
            var to = ParseBound("to", p["to"], tz, isEnd: true, now);
            var from = ParseBound("from", p["from"], tz, isEnd: false, to.AddHours(-24));
            if (from >= to) throw new InvalidQueryException($"from ({from:O}) must be before to ({to:O}).");
            string? eventName = p["event"];
            if (eventName is { Length: 0 or > 128 }) throw new InvalidQueryException("event: an event name of 1-128 characters.");
            query = new MetricsQuery(found.MerchantId, found.SiteId, metrics, from, to, interval, tz, eventName);
            return true;
        }
        catch (InvalidQueryException e)
        {
            error = Problem(StatusCodes.Status400BadRequest, "Invalid query", e.Message);
            return false;
        }
    }

    private static IResult Problem(int status, string title, string detail) =>
        Results.Problem(statusCode: status, title: title, detail: detail);
}
