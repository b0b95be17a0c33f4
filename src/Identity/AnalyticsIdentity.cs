using System.Data.Common;
using Analytics.ControlPlane;
using Analytics.Security;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Analytics.Identity;

public sealed class IdentityServerOptions
{
    /// <summary>The issuer (<c>iss</c> of every token); the server's public base address.</summary>
    public required Uri Issuer { get; init; }

    /// <summary>The control plane (<c>sqlite:PATH</c> or <c>postgres:CONNECTION-STRING</c>):
    /// OpenIddict's tables live in the same database.</summary>
    public required string ControlPlane { get; init; }

    /// <summary>Signing and encryption keys (<see cref="IssuerKeys"/>) and the cookie/antiforgery key ring.</summary>
    public required string KeyDirectory { get; init; }

    public string Audience { get; init; } = ApiAuthenticationOptions.DefaultAudience;

    /// <summary>15 minutes: short, because a JWT cannot be recalled once issued (a revoked client's
    /// tokens are refused by the APIs' revocation check; a stolen token still works until then).</summary>
    public TimeSpan AccessTokenLifetime { get; init; } = TimeSpan.FromMinutes(15);

    public TimeSpan RefreshTokenLifetime { get; init; } = TimeSpan.FromDays(14);
}

/// <summary>
/// The embedded authorization server's configuration, in one place. Endpoints:
/// <c>POST /connect/token</c> (client credentials, authorization code + PKCE, refresh token),
/// <c>GET /connect/authorize</c> (dashboard users, after signing in at <c>/account/login</c>),
/// <c>POST /connect/revoke</c>, and discovery at <c>/.well-known/openid-configuration</c> with
/// the public keys at <c>/.well-known/jwks</c>. Access tokens are signed, unencrypted JWTs
/// (<c>typ at+jwt</c>, audience <see cref="IdentityServerOptions.Audience"/>) so any JwtBearer
/// validator reads them; codes and refresh tokens are encrypted and stored, so they can be
/// redeemed once and revoked. Plain HTTP is allowed because the embedded server listens on
/// loopback; in production TLS terminates in front of it.
/// </summary>
public static class AnalyticsIdentity
{
    public const string TokenPath = "/connect/token";
    public const string AuthorizePath = "/connect/authorize";
    public const string RevokePath = "/connect/revoke";
    public const string DashboardClientId = "dashboard";

    public static IServiceCollection AddAnalyticsIdentity(this IServiceCollection services, IdentityServerOptions options, IssuerKeys keys)
    {
        services.AddSingleton(options);
        services.AddDbContext<IdentityDbContext>(db => UseStore(db, options.ControlPlane));
        services.AddOpenIddict()
            .AddCore(core => core.UseEntityFrameworkCore().UseDbContext<IdentityDbContext>())
            .AddServer(server =>
            {
                server.SetIssuer(options.Issuer);
                // Token lifetimes run on the wall clock, not on the host's event clock (tests
                // move that one to place events in the past).
                server.Configure(o => o.TimeProvider = TimeProvider.System);
                server.SetTokenEndpointUris(TokenPath[1..])
                    .SetAuthorizationEndpointUris(AuthorizePath[1..])
                    .SetRevocationEndpointUris(RevokePath[1..]);
                server.AllowClientCredentialsFlow()
                    .AllowAuthorizationCodeFlow()
                    .RequireProofKeyForCodeExchange()
                    .AllowRefreshTokenFlow();
                server.RegisterScopes([.. Security.Scopes.All, OpenIddictConstants.Scopes.OfflineAccess]);
                server.AddSigningKey(keys.Signing).AddEncryptionKey(keys.Encryption);
                server.DisableAccessTokenEncryption();
                server.SetAccessTokenLifetime(options.AccessTokenLifetime).SetRefreshTokenLifetime(options.RefreshTokenLifetime);
                server.UseAspNetCore()
                    .EnableTokenEndpointPassthrough()
                    .EnableAuthorizationEndpointPassthrough()
                    .DisableTransportSecurityRequirement();
            });
        services.AddAuthentication().AddCookie(LoginPage.CookieScheme, cookie =>
        {
            cookie.LoginPath = LoginPage.Path;
            cookie.Cookie.Name = "analytics.login";
            cookie.Cookie.HttpOnly = true;
            cookie.Cookie.SameSite = SameSiteMode.Lax;
            cookie.Cookie.Path = "/";
            cookie.ExpireTimeSpan = TimeSpan.FromHours(8);
            cookie.SlidingExpiration = false;
        });
        services.AddAntiforgery(a => a.Cookie.Name = "analytics.antiforgery");
        // The login cookie and antiforgery tokens are protected with a key ring kept beside the
        // issuer keys: sign-ins survive restarts, and nodes sharing the directory agree.
        services.AddDataProtection().SetApplicationName("analytics")
            .PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(options.KeyDirectory, "data-protection")));
        return services;
    }

    internal static void UseStore(DbContextOptionsBuilder db, string controlPlane)
    {
        var (kind, target) = Split(controlPlane);
        if (kind == "postgres") db.UseNpgsql(target);
        else db.UseSqlite(new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder { DataSource = target, Pooling = true }.ToString());
        db.UseOpenIddict();
    }

    private static (string Kind, string Target) Split(string spec)
    {
        int colon = spec.IndexOf(':');
        string kind = colon < 0 ? "" : spec[..colon];
        if (kind is not ("sqlite" or "postgres") || colon == spec.Length - 1)
            throw new ControlPlaneUnavailableException($"--control-plane '{spec}': use sqlite:PATH or postgres:CONNECTION-STRING.");
        return (kind, spec[(colon + 1)..]);
    }

    /// <summary>
    /// Creates OpenIddict's tables in the control-plane database when they are missing (the
    /// control plane's own migrations do not know them; EF Core's EnsureCreated would do nothing
    /// because the database already has tables) and registers the dashboard's public client.
    /// Several nodes starting at once: the loser of the race sees the tables and moves on.
    /// </summary>
    public static async Task InitializeIdentityAsync(this IServiceProvider services, CancellationToken ct = default)
    {
        await CreateTablesAsync(services, ct);
        var options = services.GetRequiredService<IdentityServerOptions>();
        await EnsureDashboardClientAsync(services, new Uri(options.Issuer, "/"), ct);
    }

    public static async Task CreateTablesAsync(IServiceProvider services, CancellationToken ct = default)
    {
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<IdentityDbContext>();
            if (!await TablesExistAsync(db, ct))
            {
                try
                {
                    await db.GetService<IRelationalDatabaseCreator>().CreateTablesAsync(ct);
                }
                catch (DbException)
                {
                    if (!await TablesExistAsync(db, ct)) throw;
                }
            }
        }
    }

    private static async Task<bool> TablesExistAsync(IdentityDbContext db, CancellationToken ct)
    {
        string sql = db.Database.IsNpgsql()
            ? "SELECT count(*) AS \"Value\" FROM information_schema.tables WHERE table_name = 'OpenIddictApplications' AND table_schema = current_schema()"
            : "SELECT count(*) AS \"Value\" FROM sqlite_master WHERE type = 'table' AND name = 'OpenIddictApplications'";
        return await db.Database.SqlQueryRaw<long>(sql).SingleAsync(ct) > 0;
    }

    /// <summary>
    /// The dashboard page (served by this host) signs users in with authorization code + PKCE as
    /// a public client: no secret, redirect back to the page itself. Redirect URIs must match
    /// exactly, so each address the page is served from is added (the issuer's, and the bound
    /// address when it differs, as on port 0).
    /// </summary>
    public static async Task EnsureDashboardClientAsync(IServiceProvider services, Uri redirectUri, CancellationToken ct = default)
    {
        await using var scope = services.CreateAsyncScope();
        var manager = scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>();
        var existing = await manager.FindByClientIdAsync(DashboardClientId, ct);
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = DashboardClientId,
            ClientType = ClientTypes.Public,
            ConsentType = ConsentTypes.Implicit,
            DisplayName = "Analytics dashboard",
            Permissions =
            {
                Permissions.Endpoints.Authorization, Permissions.Endpoints.Token, Permissions.Endpoints.Revocation,
                Permissions.GrantTypes.AuthorizationCode, Permissions.GrantTypes.RefreshToken, Permissions.ResponseTypes.Code,
                Permissions.Prefixes.Scope + Security.Scopes.StatsRead, Permissions.Prefixes.Scope + Security.Scopes.SitesWrite,
                Permissions.Prefixes.Scope + OpenIddictConstants.Scopes.OfflineAccess,
            },
            Requirements = { Requirements.Features.ProofKeyForCodeExchange },
        };
        if (existing is null)
        {
            descriptor.RedirectUris.Add(redirectUri);
            await manager.CreateAsync(descriptor, ct);
            return;
        }
        await manager.PopulateAsync(descriptor, existing, ct);
        if (!descriptor.RedirectUris.Add(redirectUri)) return;
        await manager.PopulateAsync(existing, descriptor, ct);
        await manager.UpdateAsync(existing, ct);
    }
}
