using System.Security.Claims;

namespace Analytics.Security;

/// <summary>
/// The credentials behind an authenticated caller whose revocation edge caches must hear of, by
/// name: <c>key:{prefix}</c> for a personal API key (DELETE /v1/keys/{prefix}, `analytics keys
/// revoke`), <c>client:{client id}</c> for an API client's access tokens (`analytics clients
/// revoke`). Answers fetched with one are filed under its name in shared caches (as a keyed hash,
/// never the name itself: see the query service's SurrogateKeys), so that revoking it drops them.
/// Every access token's answers also leave the edge when the token expires (QueryCaching caps
/// their lifetime by <c>exp</c>, 15 minutes at most), which bounds a deleted user's.
/// </summary>
public static class CredentialNames
{
    public static string ApiKey(string prefix) => "key:" + prefix;

    public static string ApiClient(string clientId) => "client:" + clientId;

    public static IEnumerable<string> Of(ClaimsPrincipal principal)
    {
        if (principal.FindFirst(ApiKeyAuthenticationHandler.KeyPrefixClaim)?.Value is { Length: > 0 } prefix) yield return ApiKey(prefix);
        // A user's token names the client the user signed in with (the dashboard) too, which is
        // revoked with no user's answers: only an API client's own tokens (no user) get its name.
        if (principal.FindFirst(UserClaims.UserId) is null && principal.FindFirst(TenantClaims.ClientId)?.Value is { Length: > 0 } clientId)
            yield return ApiClient(clientId);
    }
}

/// <summary>
/// What shared caches must forget, told by whoever changes it: a credential revoked
/// (<see cref="CredentialNames"/>), or a site's answers changed without new events (its goals or
/// funnels). Registered only where edge caches are configured (the host's EdgePurger); without
/// them nothing keeps answers beyond the client's own cache.
/// </summary>
public interface IAnswerInvalidation
{
    void CredentialRevoked(string credential);
    void SiteChanged(string sitePublicId);
}
