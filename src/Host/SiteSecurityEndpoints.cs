using System.Globalization;
using System.Security.Claims;
using Analytics.ControlPlane;
using Analytics.Security;
using Analytics.Store;

namespace Analytics.Host;

/// <summary>
/// What a merchant controls about who may send events for its own sites, and what it can read
/// about refused ones. Sites are named by public id; another merchant's site answers 404 like a
/// site that does not exist, the merchant coming from the token only.
/// <list type="bullet">
/// <item><c>GET|POST|DELETE /v1/sites/{site}/origins</c> (sites:write): the allowed origins
/// (<see cref="OriginPolicy"/>); DELETE names the origin in <c>?origin=</c>.</item>
/// <item><c>POST /v1/sites/{site}/keys/rotate</c> (sites:write): a new site key; the old one keeps
/// working for <c>graceHours</c> (default 24, 0 to 720). <c>DELETE /v1/sites/{site}/keys/{key}</c>:
/// a key refused at once (on other nodes within the registry's 10 s cache).</item>
/// <item><c>GET /v1/sites/{site}/rejections</c> (stats:read): the newest dead letters (at most
/// <c>limit</c>, default 100, up to 1,000) and counts by reason over the 7 days kept.</item>
/// </list>
/// </summary>
public static class SiteSecurityEndpoints
{
    public sealed record OriginRequest(string? Origin);
    public sealed record RotateRequest(double? GraceHours);

    /// <summary>A rotated key works this long unless the caller says otherwise: a day covers pages
    /// cached by browsers and CDNs and a merchant's deploy.</summary>
    public static readonly TimeSpan DefaultKeyGrace = TimeSpan.FromHours(24);
    public static readonly TimeSpan MaxKeyGrace = TimeSpan.FromDays(30);

    public static void MapSiteSecurity(this WebApplication app, string database)
    {
        var write = app.MapGroup("/v1/sites/{site}").RequireAuthorization(Scopes.SitesWrite);
        write.MapGet("/origins", (string site, ClaimsPrincipal caller, SiteRegistry registry) =>
            OwnSite(site, caller, registry) is { } s ? Origins(registry, s) : NotFound(site));
        write.MapPost("/origins", (string site, OriginRequest request, ClaimsPrincipal caller, SiteRegistry registry) =>
        {
            if (OwnSite(site, caller, registry) is not { } s) return NotFound(site);
            try
            {
                registry.AddAllowedOrigin(s.SiteId, request.Origin ?? "");
                return Results.Json(OriginList(registry, s), statusCode: 201);
            }
            catch (ArgumentException e)
            {
                return Results.Problem(statusCode: 400, title: "Invalid origin", detail: e.Message);
            }
        });
        write.MapDelete("/origins", (string site, string? origin, ClaimsPrincipal caller, SiteRegistry registry) =>
        {
            if (OwnSite(site, caller, registry) is not { } s) return NotFound(site);
            try
            {
                return registry.RemoveAllowedOrigin(s.SiteId, origin ?? "") ? Results.NoContent()
                    : Results.Problem(statusCode: 404, title: "Unknown origin", detail: $"'{origin}' is not an allowed origin of this site.");
            }
            catch (ArgumentException e)
            {
                return Results.Problem(statusCode: 400, title: "Invalid origin", detail: e.Message);
            }
        });
        write.MapPost("/keys/rotate", (string site, RotateRequest? request, ClaimsPrincipal caller, SiteRegistry registry) =>
        {
            if (OwnSite(site, caller, registry) is not { } s) return NotFound(site);
            // The number is checked before it becomes a TimeSpan: FromHours throws (a 500) past ~2.5e8 hours.
            if (request?.GraceHours is { } hours && !(hours >= 0 && hours <= MaxKeyGrace.TotalHours))
                return Results.Problem(statusCode: 400, title: "Invalid grace period", detail: $"graceHours must be between 0 and {MaxKeyGrace.TotalHours:0}.",
                    extensions: new Dictionary<string, object?> { ["field"] = "graceHours" });
            var grace = request?.GraceHours is { } h ? TimeSpan.FromHours(h) : DefaultKeyGrace;
            var rotated = registry.RotateSiteKey(s.SiteId, grace);
            return rotated is null ? NotFound(site) : Results.Json(Keys(registry, rotated));
        });
        write.MapDelete("/keys/{key}", (string site, string key, ClaimsPrincipal caller, SiteRegistry registry) =>
        {
            if (OwnSite(site, caller, registry) is not { } s) return NotFound(site);
            return registry.RevokeSiteKey(s.SiteId, key) is { } after ? Results.Json(Keys(registry, after))
                : Results.Problem(statusCode: 404, title: "Unknown key", detail: "That is not a current or rotated key of this site.");
        });

        app.MapGroup("/v1/sites/{site}").RequireAuthorization(Scopes.StatsRead).MapGet("/rejections",
            async (string site, int? limit, ClaimsPrincipal caller, SiteRegistry registry, IColumnStore store, CancellationToken ct) =>
            {
                if (OwnSite(site, caller, registry) is not { } s) return NotFound(site);
                int rows = limit ?? 100;
                if (rows is < 1 or > 1000) return Results.Problem(statusCode: 400, title: "Invalid limit", detail: "limit must be between 1 and 1000.");
                // Only integers from the control plane and the validated limit reach the SQL.
                string where = string.Create(CultureInfo.InvariantCulture, $"merchant_id = {s.MerchantId} AND site_id = {s.SiteId}");
                var newest = await store.QueryRowsAsync(string.Create(CultureInfo.InvariantCulture,
                    $"SELECT formatDateTime(received_at, '%Y-%m-%dT%H:%i:%S.%fZ', 'UTC'), {ReasonName}, origin, events, detail FROM {database}.ingest_rejections WHERE {where} ORDER BY received_at DESC LIMIT {rows}"), ct);
                var counts = await store.QueryRowsAsync($"SELECT {ReasonName} AS name, count(), sum(events) FROM {database}.ingest_rejections WHERE {where} GROUP BY name ORDER BY name", ct);
                return Results.Json(new
                {
                    site = s.PublicId,
                    reasons = counts.Select(r => new { reason = r[0].GetString(), rows = r[1].GetInt64(), events = r[2].GetInt64() }),
                    rejections = newest.Select(r => new { at = r[0].GetString(), reason = r[1].GetString(), origin = r[2].GetString(), events = r[3].GetInt64(), detail = r[4].GetString() }),
                });
            });
    }

    /// <summary>The reason as schemas/events.proto names it: rows written before 2026-12-02 hold
    /// the C# name ("InvalidId" for INVALID_ID; the table keeps rows 7 days).</summary>
    private const string ReasonName = @"upper(replaceRegexpAll(reason, '([a-z0-9])([A-Z])', '\1_\2'))";

    private static Site? OwnSite(string publicId, ClaimsPrincipal caller, SiteRegistry registry) =>
        registry.FindByPublicId(publicId) is { } site && site.MerchantId == caller.RequireMerchantId() ? site : null;

    private static IResult NotFound(string site) => Results.Problem(statusCode: 404, title: "Unknown site", detail: $"There is no site '{site}'.");

    private static object OriginList(SiteRegistry registry, Site site)
    {
        var configured = registry.Store.ListAllowedOrigins(site.SiteId);
        return new
        {
            origins = configured,
            // What an empty list means, spelled out so nobody has to guess.
            effective = configured.Count > 0 ? (IReadOnlyList<string>)configured : [$"http(s)://{site.Domain}", $"http(s)://*.{site.Domain}"],
        };
    }

    private static IResult Origins(SiteRegistry registry, Site site) => Results.Json(OriginList(registry, site));

    private static object Keys(SiteRegistry registry, Site site) => new
    {
        siteKey = site.SiteKey,
        retiredKeys = registry.Store.ListRetiredSiteKeys(site.SiteId).Select(k => new { siteKey = k.SiteKey, validUntil = k.ValidUntil }),
    };
}
