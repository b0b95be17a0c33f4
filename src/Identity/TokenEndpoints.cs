using System.Globalization;
using Analytics.ControlPlane;
using Analytics.Security;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Analytics.Identity;

/// <summary>
/// The decisions OpenIddict leaves to the application, after it has validated the protocol
/// (client authentication, PKCE, redirect URI, code and refresh-token redemption): who the
/// subject is and which scopes it gets. The control plane is asked every time, so a revoked
/// client gets no new token and a deleted user cannot refresh.
/// </summary>
public static class TokenEndpoints
{
    public static IEndpointRouteBuilder MapAnalyticsIdentity(this IEndpointRouteBuilder app)
    {
        app.MapPost(AnalyticsIdentity.TokenPath, ExchangeAsync);
        app.MapGet(AnalyticsIdentity.AuthorizePath, AuthorizeAsync);
        app.MapLoginPage();
        app.MapApiKeys();
        return app;
    }

    private static async Task<IResult> ExchangeAsync(HttpContext context, IControlPlaneStore store, IdentityServerOptions options)
    {
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("The OpenIddict request is missing.");
        if (request.IsClientCredentialsGrantType())
        {
            var client = store.FindApiClient(request.ClientId!);
            if (client is null || client.RevokedAt is not null) return Refuse(Errors.InvalidClient, "The client is unknown or revoked.");
            var allowed = Security.Scopes.Parse(client.Scopes);
            var requested = request.GetScopes();
            if (requested.Any(s => !allowed.Contains(s))) return Refuse(Errors.InvalidScope, $"This client may request: {string.Join(' ', allowed)}.");
            return SignIn(TokenClaims.ForClient(client, requested.IsEmpty ? allowed : requested, options.Audience));
        }
        if (request.IsAuthorizationCodeGrantType() || request.IsRefreshTokenGrantType())
        {
            // OpenIddict has validated the code or refresh token (and PKCE); rebuild the claims
            // from the control plane so a changed role or merchant takes effect at refresh.
            var redeemed = await context.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
            var user = long.TryParse(redeemed.Principal?.GetClaim(UserClaims.UserId), NumberStyles.None, CultureInfo.InvariantCulture, out long id) ? store.GetUser(id) : null;
            if (user is null) return Refuse(Errors.InvalidGrant, "The user no longer exists.");
            var granted = redeemed.Principal!.GetScopes().Where(s => s == OpenIddictConstants.Scopes.OfflineAccess || TokenClaims.UserScopes(user).Contains(s));
            return SignIn(TokenClaims.ForUser(user, granted, options.Audience));
        }
        return Refuse(Errors.UnsupportedGrantType, "Supported: client_credentials, authorization_code, refresh_token.");
    }

    private static async Task<IResult> AuthorizeAsync(HttpContext context, IControlPlaneStore store, IdentityServerOptions options)
    {
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("The OpenIddict request is missing.");
        var login = await context.AuthenticateAsync(LoginPage.CookieScheme);
        var user = login.Succeeded && long.TryParse(login.Principal?.GetClaim(UserClaims.UserId), NumberStyles.None, CultureInfo.InvariantCulture, out long id)
            ? store.GetUser(id) : null;
        if (user is null)
        {
            // Not signed in (or the user is gone): the login page, then back here with the same request.
            return Results.Challenge(new AuthenticationProperties { RedirectUri = context.Request.PathBase + context.Request.Path + context.Request.QueryString },
                [LoginPage.CookieScheme]);
        }
        var allowed = TokenClaims.UserScopes(user);
        var granted = request.GetScopes().Where(s => s == OpenIddictConstants.Scopes.OfflineAccess || allowed.Contains(s)).ToList();
        if (!granted.Any(allowed.Contains)) granted.AddRange(allowed);
        return SignIn(TokenClaims.ForUser(user, granted, options.Audience));
    }

    private static IResult SignIn(System.Security.Claims.ClaimsPrincipal principal) =>
        Results.SignIn(principal, properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);

    private static IResult Refuse(string error, string description) => Results.Forbid(
        new AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }),
        [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
}
