using System.Security.Cryptography;
using System.Text;
using Analytics.ControlPlane;
using Microsoft.Extensions.DependencyInjection;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Analytics.Identity;

/// <summary>
/// API clients (OAuth2 client credentials). A client lives in two places on purpose: the control
/// plane owns what the product needs (merchant, scopes, revocation, listing per merchant), and
/// OpenIddict's application store owns what the protocol needs (it authenticates the client at
/// the token endpoint against its own PBKDF2 hash of the secret). The control plane keeps a
/// SHA-256 of the secret (200 random bits: a fast hash is safe, see <see cref="ApiKeys"/>). The
/// secret is returned once and stored nowhere in clear. Revoking marks the control-plane row:
/// the token endpoint then refuses the client, and the APIs refuse its outstanding tokens.
/// </summary>
public static class ApiClients
{
    public static async Task<(ApiClient Client, string Secret)> CreateAsync(IServiceProvider services, long merchantId, string displayName,
        IReadOnlyList<string> scopes, CancellationToken ct = default)
    {
        if (scopes.Count == 0 || scopes.Any(s => !Security.Scopes.All.Contains(s)))
            throw new ArgumentException($"scopes: one or more of {string.Join(", ", Security.Scopes.All)}.");
        var store = services.GetRequiredService<IControlPlaneStore>();
        if (store.GetMerchant(merchantId) is null) throw new ArgumentException($"There is no merchant {merchantId}.");
        string clientId = "cl_" + Identifiers.RandomBase32(16);
        string secret = Identifiers.RandomBase32(40);
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = clientId,
            ClientSecret = secret,
            ClientType = ClientTypes.Confidential,
            DisplayName = displayName,
            Permissions = { Permissions.Endpoints.Token, Permissions.Endpoints.Revocation, Permissions.GrantTypes.ClientCredentials },
        };
        foreach (string scope in scopes) descriptor.Permissions.Add(Permissions.Prefixes.Scope + scope);
        await using (var scope = services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>().CreateAsync(descriptor, ct);
        var client = store.CreateApiClient(merchantId, clientId, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(secret))), displayName, string.Join(' ', scopes));
        return (client, secret);
    }

    /// <summary>The services the CLI needs to manage clients without a running server: the control
    /// plane and OpenIddict's stores in the same database.</summary>
    public static ServiceProvider OfflineServices(IControlPlaneStore store, string controlPlane)
    {
        var services = new ServiceCollection();
        services.AddSingleton(store);
        services.AddDbContext<IdentityDbContext>(db => AnalyticsIdentity.UseStore(db, controlPlane));
        services.AddOpenIddict().AddCore(core => core.UseEntityFrameworkCore().UseDbContext<IdentityDbContext>());
        return services.BuildServiceProvider();
    }
}
