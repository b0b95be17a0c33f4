using System.Security.Claims;
using Analytics.ControlPlane;
using Analytics.Security;

namespace Analytics.Host;

/// <summary>
/// A merchant manages its own sites (scope <c>sites:write</c>): <c>POST /v1/sites</c> creates a
/// site for the caller's merchant, taken from the token and never from the body (listing is
/// <c>GET /v1/sites</c> in the query API). Creating merchants, and sites for any merchant, stays
/// in the admin API.
/// </summary>
public static class SiteEndpoints
{
    public sealed record CreateOwnSiteRequest(string? Domain, string? TimeZone);

    public static void MapSiteManagement(this WebApplication app)
    {
        app.MapGroup("/v1/sites").RequireAuthorization(Scopes.SitesWrite).MapPost("", (CreateOwnSiteRequest request, ClaimsPrincipal caller, SiteRegistry registry) =>
        {
            try
            {
                var site = registry.CreateSite(caller.RequireMerchantId(), request.Domain ?? "", null, request.TimeZone ?? "UTC");
                return Results.Json(new { id = site.PublicId, siteKey = site.SiteKey, domain = site.Domain, timeZone = site.TimeZone }, statusCode: 201);
            }
            catch (ArgumentException e)
            {
                return InvalidSite(e);
            }
        });
    }

    /// <summary>400 problem+json for a refused site, naming the field when the control plane
    /// says which one (domain, siteKey, timeZone).</summary>
    internal static IResult InvalidSite(ArgumentException e) => Results.Problem(statusCode: 400, title: "Invalid site", detail: e.Message,
        extensions: e is ControlPlaneValidationException v ? new Dictionary<string, object?> { ["field"] = v.Field } : null);
}
