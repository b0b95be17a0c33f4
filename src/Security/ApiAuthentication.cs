using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;

namespace Analytics.Security;

/// <summary>Where access tokens come from and who they are for.</summary>
public sealed class ApiAuthenticationOptions
{
    /// <summary>The issuer whose tokens the APIs accept (the token's <c>iss</c>, exactly). With an
    /// <see cref="Authority"/> it may stay null: the issuer its discovery document names.</summary>
    public string? Issuer { get; init; }

    /// <summary>The audience tokens must name (<c>aud</c>): this API's resource name at the issuer.</summary>
    public string Audience { get; init; } = DefaultAudience;

    /// <summary>
    /// A standard issuer (OpenID Connect discovery at <c>{Authority}/.well-known/openid-configuration</c>)
    /// whose published keys sign the tokens. Null in the embedded default: the keys are then
    /// <see cref="SigningKeys"/>, handed over in process by the embedded authorization server, so
    /// nothing is fetched over HTTP (and a host on port 0 needs no known address).
    /// </summary>
    public string? Authority { get; init; }

    public IReadOnlyList<SecurityKey> SigningKeys { get; init; } = [];

    /// <summary>Refuse plain-HTTP discovery (an external authority); off for loopback development.</summary>
    public bool RequireHttpsMetadata { get; init; } = true;

    /// <summary>How long a "this client/user is still live" answer is reused; a revoked client's
    /// tokens are refused at most this long after the revocation (see <see cref="CredentialStatus"/>).</summary>
    public TimeSpan RevocationCacheTime { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Tolerance for clocks that disagree between issuer and API. One minute: enough for
    /// NTP-synchronised hosts, short next to the access token's lifetime.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromMinutes(1);

    public const string DefaultAudience = "analytics-api";
}

/// <summary>
/// Authentication and authorization of the APIs (query and admin). Contract: a request is
/// authenticated by exactly one of two schemes, chosen by the credential's shape under the
/// <see cref="Scheme"/> policy scheme: <c>Authorization: Bearer ak_…</c> is a personal API key
/// (<see cref="ApiKeyAuthenticationHandler"/>), any other bearer credential is an access token
/// (JwtBearer: signature, issuer, audience, lifetime, <c>typ</c>). Both end with the same
/// claims (<see cref="TenantClaims"/>). A token without a merchant claim, or of a revoked API
/// client or a deleted user, is refused as unauthenticated (401). The policies, one per scope,
/// require an authenticated caller with a merchant and that scope (else 403).
/// </summary>
public static class ApiAuthentication
{
    /// <summary>The policy scheme APIs authenticate with (default scheme).</summary>
    public const string Scheme = "api";
    public const string ApiKeyScheme = "ApiKey";

    public static IServiceCollection AddAnalyticsApiAuthentication(this IServiceCollection services, ApiAuthenticationOptions options)
    {
        services.AddSingleton(options);
        services.AddMemoryCache();
        services.AddSingleton<CredentialStatus>();
        services.AddAuthentication(Scheme)
            .AddPolicyScheme(Scheme, "Access token or API key", o => o.ForwardDefaultSelector = context =>
                context.Request.Headers.Authorization.ToString().StartsWith("Bearer " + ApiKeyAuthenticationHandler.KeyPrefix, StringComparison.Ordinal)
                    ? ApiKeyScheme : JwtBearerDefaults.AuthenticationScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyScheme, null)
            .AddJwtBearer(o =>
            {
                // Keep claim names as issued ("sub", "scope", "merchant"), not WS-* URIs.
                o.MapInboundClaims = false;
                // Lifetimes are checked on the wall clock, whatever clock the host gives events.
                o.TimeProvider = TimeProvider.System;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = options.Issuer,
                    ValidAudience = options.Audience,
                    ValidateIssuer = true,
                    ValidateAudience = true,
                    ValidateLifetime = true,
                    RequireExpirationTime = true,
                    RequireSignedTokens = true,
                    ClockSkew = options.ClockSkew,
                    NameClaimType = TenantClaims.Subject,
                };
                if (options.Authority is null)
                {
                    o.TokenValidationParameters.IssuerSigningKeys = options.SigningKeys;
                    // Our issuer types access tokens "at+jwt" (RFC 9068): an identity token or any
                    // other JWT signed with the same key is not an access token.
                    o.TokenValidationParameters.ValidTypes = ["at+jwt"];
                }
                else
                {
                    o.Authority = options.Authority;
                    o.RequireHttpsMetadata = options.RequireHttpsMetadata;
                }
                o.Events = new JwtBearerEvents
                {
                    OnTokenValidated = context =>
                    {
                        string? refusal = context.HttpContext.RequestServices.GetRequiredService<CredentialStatus>().Refusal(context.Principal!);
                        if (refusal is not null) context.Fail(refusal);
                        return Task.CompletedTask;
                    },
                };
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(Scopes.StatsRead, ScopePolicy(Scopes.StatsRead))
            .AddPolicy(Scopes.SitesWrite, ScopePolicy(Scopes.SitesWrite))
            .AddPolicy(Scopes.Admin, ScopePolicy(Scopes.Admin));
        return services;
    }

    private static AuthorizationPolicy ScopePolicy(string scope) => new AuthorizationPolicyBuilder(Scheme)
        .RequireAuthenticatedUser()
        .RequireAssertion(c => c.User.MerchantId() is not null && c.User.HasScope(scope))
        .Build();
}
