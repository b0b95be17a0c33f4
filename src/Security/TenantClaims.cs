using System.Globalization;
using System.Security.Claims;
using Analytics.ControlPlane;

namespace Analytics.Security;

/// <summary>
/// The scopes of this API. A token carries a subset of them and exactly one merchant:
/// <list type="bullet">
/// <item><c>stats:read</c>: the query API (<c>/v1/sites/{id}/…</c>) for the token's merchant's sites.</item>
/// <item><c>sites:write</c>: site management for the token's merchant.</item>
/// <item><c>admin</c>: operations across merchants (reprocess, export, partitions, creating merchants).</item>
/// </list>
/// </summary>
public static class Scopes
{
    public const string StatsRead = "stats:read";
    public const string SitesWrite = "sites:write";
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> All = [StatsRead, SitesWrite, Admin];

    /// <summary>The scopes a dashboard user of this role may hold, in a token or in a personal key.
    /// <c>admin</c> (across merchants) never: operators use an admin API client.</summary>
    public static IReadOnlyList<string> ForRole(string role) => role is UserRoles.Owner or UserRoles.Admin
        ? [StatsRead, SitesWrite]
        : [StatsRead];

    /// <summary>Splits an OAuth2 scope string ("a b c"), keeping only known scopes, each once.</summary>
    public static IReadOnlyList<string> Parse(string? scopes) =>
        (scopes ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(All.Contains).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>The unknown names in a scope string (for a clear refusal).</summary>
    public static IReadOnlyList<string> Unknown(string? scopes) =>
        (scopes ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(s => !All.Contains(s)).ToList();
}

/// <summary>
/// The claims every authenticated caller carries, whichever way it authenticated (access token
/// from our issuer or another, or a personal API key): <c>merchant</c> (the merchant id as a
/// decimal string) and <c>scope</c> (space-separated, RFC 9068; several claims are accepted too).
/// Endpoints read the merchant only from here, never from a request parameter.
/// </summary>
public static class TenantClaims
{
    public const string Merchant = "merchant";
    public const string Scope = "scope";
    public const string ClientId = "client_id";
    public const string Subject = "sub";

    public static long? MerchantId(this ClaimsPrincipal principal) =>
        long.TryParse(principal.FindFirst(Merchant)?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long id) && id > 0 ? id : null;

    /// <summary>The merchant of an authorized request (the policies guarantee there is one).</summary>
    public static long RequireMerchantId(this ClaimsPrincipal principal) =>
        principal.MerchantId() ?? throw new InvalidOperationException("An authorized request without a merchant claim: the endpoint lacks its policy.");

    public static bool HasScope(this ClaimsPrincipal principal, string scope) =>
        principal.FindAll(Scope).Any(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(scope, StringComparer.Ordinal));
}
