using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Analytics.ControlPlane;
using Analytics.Host;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// Production may point the APIs at any standard issuer (`serve --authority URL --audience NAME`).
/// Here the issuer is another host's embedded server, reached only over HTTP through its
/// discovery document and published keys, exactly as a third-party issuer would be.
/// </summary>
public class ExternalIssuerTests(EngineFixture engine)
{
    [Fact]
    public async Task A_host_with_an_authority_accepts_that_issuers_tokens_and_refuses_others()
    {
        // The issuer names its real address in its tokens and discovery document, so its port is chosen first.
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        await using var issuer = await AuthHost.StartAsync(engine, urls: $"http://127.0.0.1:{port}");
        await using var api = await AuthHost.StartAsync(engine,
            auth: new AuthSettings { Authority = issuer.BaseAddress, Audience = "analytics-api" },
            controlPlane: ControlPlaneStore.DefaultSpec(issuer.DataDirectory));
        var (merchant, site) = issuer.NewMerchant("Federated Shop");
        string token = await issuer.ClientTokenAsync(merchant.Id, "stats:read");

        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);
        // This host issues nothing itself.
        using var tokenEndpoint = await api.Http.PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials" }), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, tokenEndpoint.StatusCode);
        // A token in the issuer's name but signed with another key is refused.
        var forged = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer.Issuer,
            Audience = "analytics-api",
            TokenType = "at+jwt",
            Claims = new Dictionary<string, object> { ["merchant"] = merchant.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), ["scope"] = "stats:read" },
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(RSA.Create(2048)), SecurityAlgorithms.RsaSha256),
        });
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.GetAsync(AuthHost.AggregatePath(site), forged)).StatusCode);
    }
}
