using System.Security.Claims;

namespace Analytics.Security;

/// <summary>
/// The credentials behind an authenticated caller whose revocation is served over HTTP, by name:
/// <c>key:{prefix}</c> for a personal API key (DELETE /v1/keys/{prefix}). Answers fetched with
/// one are filed under its name in shared caches (as a keyed hash, never the name itself: see the
/// query service's SurrogateKeys), so that revoking the key drops them. Access tokens need no
/// name: their answers' edge lifetime ends with the token (QueryCaching caps it by <c>exp</c>),
/// 15 minutes at most, which bounds a revoked client or deleted user too.
/// </summary>
public static class CredentialNames
{
    public static string ApiKey(string prefix) => "key:" + prefix;

    public static IEnumerable<string> Of(ClaimsPrincipal principal)
    {
        if (principal.FindFirst(ApiKeyAuthenticationHandler.KeyPrefixClaim)?.Value is { Length: > 0 } prefix) yield return ApiKey(prefix);
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
