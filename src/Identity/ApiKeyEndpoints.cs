using System.Globalization;
using System.Security.Claims;
using Analytics.ControlPlane;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.Identity;

/// <summary>
/// Personal API keys over HTTP, for the caller's own merchant: <c>POST /v1/keys</c> (a signed-in
/// user creates a key for themself, with at most their own scopes; the key is in the answer
/// once), <c>GET /v1/keys</c> (never a secret: an owner or admin sees the merchant's keys, a
/// viewer their own; paged by <c>limit</c> and <c>after</c>, the next page in a <c>Link</c> header), <c>DELETE /v1/keys/{prefix}</c>
/// (revoke: the caller's own keys, any of the merchant's for an owner or admin; another merchant's
/// key answers 404 like an unknown one; edge caches are told to drop the key's answers). A key cannot list, create or revoke keys, nor can a client:
/// both need a user's access token.
/// </summary>
public static class ApiKeyEndpoints
{
    public sealed record CreateKeyRequest(string? Name, string? Scopes);

    /// <summary>Keys per page of <c>GET /v1/keys</c> unless <c>limit</c> says otherwise, and the most a page holds.</summary>
    public const int DefaultListLimit = 100, MaxListLimit = 500;

    public static void MapApiKeys(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/v1/keys").RequireAuthorization(Security.Scopes.StatsRead);
        keys.MapPost("", (CreateKeyRequest request, ClaimsPrincipal caller, IControlPlaneStore store) =>
        {
            if (caller.FindFirst(ApiKeyAuthenticationHandler.KeyPrefixClaim) is not null ||
                !long.TryParse(caller.FindFirst(UserClaims.UserId)?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long userId))
                return Results.Problem(statusCode: 403, title: "User token required", detail: "API keys are created by a signed-in user (authorization code flow), not by a client or another key.");
            string requested = request.Scopes ?? Security.Scopes.StatsRead;
            if (Security.Scopes.Unknown(requested) is { Count: > 0 } unknown)
                return Results.Problem(statusCode: 400, title: "Unknown scopes", detail: string.Join(", ", unknown));
            var scopes = Security.Scopes.Parse(requested);
            // The role is read now, not from the token: a user demoted since sign-in gets no more than the new role.
            var allowed = store.GetUser(userId) is { } user ? Security.Scopes.ForRole(user.Role) : [];
            if (scopes.Count == 0 || scopes.Any(s => !caller.HasScope(s) || !allowed.Contains(s)))
                return Results.Problem(statusCode: 403, title: "Scope not held", detail: "A key gets at most the scopes of the token that creates it and of its user's role.");
            string name = string.IsNullOrWhiteSpace(request.Name) ? "script" : request.Name.Trim();
            if (name.Length > 100) return Results.Problem(statusCode: 400, title: "Invalid name", detail: "At most 100 characters.");
            var (key, secret) = ApiKeys.Create(store, caller.RequireMerchantId(), userId, name, string.Join(' ', scopes));
            return Results.Json(new { key.Prefix, key = secret, key.Name, key.Scopes, key.CreatedAt }, statusCode: 201);
        });
        keys.MapGet("", (HttpContext context, ClaimsPrincipal caller, IControlPlaneStore store) =>
        {
            if (caller.FindFirst(ApiKeyAuthenticationHandler.KeyPrefixClaim) is not null ||
                !long.TryParse(caller.FindFirst(UserClaims.UserId)?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long userId) ||
                store.GetUser(userId) is not { } user)
                return Results.Problem(statusCode: 403, title: "User token required", detail: "API keys are listed by a signed-in user (authorization code flow), not by a client or a key.");
            long merchant = caller.RequireMerchantId();
            var query = context.Request.Query;
            int limit = DefaultListLimit;
            if (query.TryGetValue("limit", out var limitText) &&
                (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxListLimit))
                return Results.Problem(statusCode: 400, title: "Invalid limit", detail: $"limit is a whole number from 1 to {MaxListLimit}.");
            long afterId = 0;
            if (query.TryGetValue("after", out var after))
            {
                if (store.FindApiKey(after.ToString()) is not var (cursor, _) || cursor.MerchantId != merchant)
                    return Results.Problem(statusCode: 400, title: "Invalid after", detail: $"after is the prefix of a key of an earlier page; there is no key {after}.");
                afterId = cursor.Id;
            }
            // Owners and admins manage everyone's keys (someone who left), so they see them all and
            // whose each is; a viewer sees their own, as they may revoke only those.
            bool everyone = user.Role is UserRoles.Owner or UserRoles.Admin;
            var page = store.ListApiKeys(merchant, everyone ? null : userId, afterId, limit + 1);
            var emails = everyone ? store.ListUsers(merchant).ToDictionary(u => u.Id, u => u.Email) : new() { [userId] = user.Email };
            // More than a page: the next one's address, as GitHub's API gives it (the answer stays a plain array).
            if (page.Count > limit)
                context.Response.Headers.Link = $"</v1/keys?limit={limit}&after={Uri.EscapeDataString(page[limit - 1].Prefix)}>; rel=\"next\"";
            return Results.Json(page.Take(limit).Select(k => new { k.Prefix, k.Name, k.Scopes, User = emails.GetValueOrDefault(k.UserId), k.CreatedAt, k.LastUsedAt, k.RevokedAt }));
        });
        keys.MapDelete("/{prefix}", (string prefix, ClaimsPrincipal caller, IControlPlaneStore store, HttpContext context) =>
        {
            if (caller.FindFirst(ApiKeyAuthenticationHandler.KeyPrefixClaim) is not null ||
                !long.TryParse(caller.FindFirst(UserClaims.UserId)?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long userId) ||
                store.GetUser(userId) is not { } user)
                return Results.Problem(statusCode: 403, title: "User token required", detail: "API keys are revoked by a signed-in user (authorization code flow), not by a client or a key.");
            if (store.FindApiKey(prefix) is not var (key, _) || key.MerchantId != caller.RequireMerchantId())
                return Results.Problem(statusCode: 404, title: "Unknown key", detail: $"No key {prefix}.");
            // Owners and admins manage the merchant's keys (someone who left); viewers only their own.
            if (key.UserId != userId && user.Role is not (UserRoles.Owner or UserRoles.Admin))
                return Results.Problem(statusCode: 403, title: "Not your key", detail: $"Key {prefix} belongs to another user; an owner or admin of the merchant may revoke it.");
            store.RevokeApiKey(key.Id);
            // The key is checked on every request here, but an edge cache answers its stored
            // answers without asking: they must go now, not when their max-age ends.
            context.RequestServices.GetService<IAnswerInvalidation>()?.CredentialRevoked(CredentialNames.ApiKey(key.Prefix));
            return Results.NoContent();
        });
    }
}
