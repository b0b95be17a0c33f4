using System.Globalization;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Analytics.ControlPlane;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Analytics.Security;

/// <summary>
/// Personal API keys (<c>Authorization: Bearer ak_…</c>), for scripts that should not run an
/// OAuth2 flow. The key is checked against its SHA-256 in the control plane
/// (<see cref="ApiKeys.Verify"/>: unknown, wrong or revoked keys fail) on every request, so this
/// server refuses a revoked key at once. An edge cache answers from its stored objects without
/// asking: revoking over HTTP purges the key's answers there (ApiKeyEndpoints), the offline
/// `analytics keys revoke` does not. The caller gets the same claims as an access token: the key's
/// merchant, its user, the key's prefix (never the secret) for logs, and the key's scopes cut to
/// what the user's role allows now (a demoted user's keys lose what the role lost).
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, IControlPlaneStore store)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string KeyPrefix = ApiKeys.Scheme + "_";
    public const string KeyPrefixClaim = "api_key";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer " + KeyPrefix, StringComparison.Ordinal)) return Task.FromResult(AuthenticateResult.NoResult());
        var key = ApiKeys.Verify(store, header["Bearer ".Length..].Trim(), TimeProvider.System.GetUtcNow());
        if (key is null) return Task.FromResult(AuthenticateResult.Fail("Unknown, malformed or revoked API key."));
        if (store.GetUser(key.UserId) is not { } user || user.MerchantId != key.MerchantId)
            return Task.FromResult(AuthenticateResult.Fail("The API key's user no longer exists."));
        var allowed = Scopes.ForRole(user.Role);
        var identity = new ClaimsIdentity(
        [
            new Claim(TenantClaims.Subject, "key:" + key.Prefix),
            new Claim(TenantClaims.Merchant, key.MerchantId.ToString(CultureInfo.InvariantCulture)),
            new Claim(TenantClaims.Scope, string.Join(' ', Scopes.Parse(key.Scopes).Where(allowed.Contains))),
            new Claim(UserClaims.UserId, key.UserId.ToString(CultureInfo.InvariantCulture)),
            new Claim(KeyPrefixClaim, key.Prefix),
        ], Scheme.Name, TenantClaims.Subject, null);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
    }
}
