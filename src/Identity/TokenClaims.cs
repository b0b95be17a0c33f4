using System.Globalization;
using System.Security.Claims;
using Analytics.ControlPlane;
using Analytics.Security;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Analytics.Identity;

/// <summary>
/// What a token says, in one place. Every access token names one merchant (<c>merchant</c>), its
/// scopes and the audience; API clients' tokens carry the client id (the APIs refuse tokens of
/// revoked clients by it), users' tokens the user id (<c>uid</c>; tokens of deleted users are
/// refused). Everything goes into the access token only: there are no identity tokens.
/// </summary>
public static class TokenClaims
{
    /// <summary>Scopes a dashboard user may be granted, by role. <c>admin</c> (across merchants) is
    /// never granted to a user: operators use an admin API client (<c>analytics bootstrap</c>).</summary>
    public static IReadOnlyList<string> UserScopes(User user) => Security.Scopes.ForRole(user.Role);

    public static ClaimsPrincipal ForClient(ApiClient client, IEnumerable<string> scopes, string audience)
    {
        var identity = NewIdentity();
        identity.SetClaim(Claims.Subject, client.ClientId)
            .SetClaim(TenantClaims.ClientId, client.ClientId)
            .SetClaim(TenantClaims.Merchant, client.MerchantId.ToString(CultureInfo.InvariantCulture));
        return Finish(identity, scopes, audience);
    }

    public static ClaimsPrincipal ForUser(User user, IEnumerable<string> scopes, string audience)
    {
        var identity = NewIdentity();
        identity.SetClaim(Claims.Subject, "user:" + user.Id.ToString(CultureInfo.InvariantCulture))
            .SetClaim(UserClaims.UserId, user.Id.ToString(CultureInfo.InvariantCulture))
            .SetClaim(Claims.Email, user.Email)
            .SetClaim(TenantClaims.Merchant, user.MerchantId.ToString(CultureInfo.InvariantCulture));
        return Finish(identity, scopes, audience);
    }

    private static ClaimsIdentity NewIdentity() =>
        new(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);

    private static ClaimsPrincipal Finish(ClaimsIdentity identity, IEnumerable<string> scopes, string audience)
    {
        identity.SetScopes(scopes);
        identity.SetResources(audience);
        identity.SetDestinations(_ => [Destinations.AccessToken]);
        return new ClaimsPrincipal(identity);
    }
}
