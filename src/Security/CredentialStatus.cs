using System.Globalization;
using System.Security.Claims;
using Analytics.ControlPlane;
using Microsoft.Extensions.Caching.Memory;

namespace Analytics.Security;

/// <summary>
/// Is the caller behind a validated access token still allowed in? Access tokens are
/// self-contained JWTs (any validator can read them), so revoking an API client or deleting a
/// user would otherwise leave its tokens working until they expire. Each validation asks the
/// control plane, and the answer is cached for <see cref="ApiAuthenticationOptions.RevocationCacheTime"/>
/// (10 s by default) per client or user: revocation takes effect within that time, and a busy
/// client costs one control-plane lookup per 10 s, not one per request.
/// Tokens of subjects the control plane does not know (an external issuer's clients) pass: their
/// issuer is responsible for them; they still need a merchant claim.
/// </summary>
public sealed class CredentialStatus(IControlPlaneStore store, IMemoryCache cache, ApiAuthenticationOptions options)
{
    /// <summary>Null when the caller may proceed, otherwise why not.</summary>
    public string? Refusal(ClaimsPrincipal principal)
    {
        if (principal.MerchantId() is not { } merchant) return "The token has no merchant claim.";
        if (principal.FindFirst(TenantClaims.ClientId)?.Value is { Length: > 0 } clientId &&
            Cached("client:" + clientId, () => store.FindApiClient(clientId) is { } c ? (c.RevokedAt is null, c.MerchantId) : null) is var (clientLive, clientMerchant))
        {
            if (!clientLive) return "The API client was revoked.";
            return clientMerchant == merchant ? null : "The token's merchant is not the client's.";
        }
        if (principal.FindFirst(UserClaims.UserId)?.Value is { } uid && long.TryParse(uid, NumberStyles.None, CultureInfo.InvariantCulture, out long userId))
        {
            var user = Cached("user:" + userId, () => store.GetUser(userId) is { } u ? (true, u.MerchantId) : ((bool, long)?)(false, 0));
            if (user is not (true, var userMerchant)) return "The user no longer exists.";
            return userMerchant == merchant ? null : "The token's merchant is not the user's.";
        }
        return null;
    }

    private (bool Live, long Merchant)? Cached(string key, Func<(bool Live, long Merchant)?> lookup) =>
        cache.GetOrCreate(key, entry =>
        {
            entry.AbsoluteExpirationRelativeToNow = options.RevocationCacheTime;
            return lookup();
        });
}

/// <summary>Claims of tokens issued to dashboard users (authorization code flow).</summary>
public static class UserClaims
{
    /// <summary>The control plane's user id (internal, so not the <c>sub</c>, which is opaque).</summary>
    public const string UserId = "uid";
}
