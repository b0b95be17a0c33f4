using System.Security.Cryptography;
using System.Text;
using Analytics.FastIngest.Sites;

namespace Analytics.Host;

/// <summary>
/// Admin API (bearer token from the data directory): create merchants and sites, list sites.
/// The same operations exist as CLI commands (`analytics sites create|list`).
/// </summary>
public static class AdminEndpoints
{
    public sealed record CreateSiteRequest(string? Merchant, long? MerchantId, string Domain, string? SiteKey);

    public static void MapAdmin(this WebApplication app, string adminToken)
    {
        var admin = app.MapGroup("/admin").AddEndpointFilter(async (ctx, next) =>
        {
            string header = ctx.HttpContext.Request.Headers.Authorization.ToString();
            bool ok = header.StartsWith("Bearer ", StringComparison.Ordinal) &&
                      CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[7..]), Encoding.UTF8.GetBytes(adminToken));
            return ok ? await next(ctx) : Results.Problem(statusCode: 401, title: "Unauthorized", detail: "Send Authorization: Bearer <admin token> (see <data>/admin-token).");
        });
        admin.MapPost("/sites", (CreateSiteRequest request, SiteRegistry registry) =>
        {
            if (string.IsNullOrWhiteSpace(request.Domain)) return Results.Problem(statusCode: 400, title: "Invalid site", detail: "domain is required.");
            if (request.MerchantId is null && string.IsNullOrWhiteSpace(request.Merchant))
                return Results.Problem(statusCode: 400, title: "Invalid site", detail: "Give merchant (a name, to create one) or merchantId.");
            long merchantId = request.MerchantId ?? registry.CreateMerchant(request.Merchant!);
            var site = registry.CreateSite(merchantId, request.Domain, request.SiteKey);
            return Results.Json(site, statusCode: 201);
        });
        admin.MapGet("/sites", (SiteRegistry registry) => Results.Json(registry.ListSites()));
    }
}
