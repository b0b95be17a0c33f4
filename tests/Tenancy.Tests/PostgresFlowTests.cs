using System.Net;
using Analytics.Host;
using Analytics.Identity;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// OpenIddict's tables live in the control-plane database: here a real PostgreSQL (a throwaway
/// cluster of Debian's server). Two hosts share it as two nodes of one deployment with the same
/// issuer keys: the tables are created once, a refresh token issued by one node is redeemed on
/// the other, and a client revoked on one is refused by the other.
/// </summary>
public class PostgresFlowTests(EngineFixture engine, PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Two_nodes_on_one_postgres_control_plane_share_clients_codes_and_refresh_tokens()
    {
        string controlPlane = "postgres:" + postgres.CreateDatabase("oauth");
        await using var a = await AuthHost.StartAsync(engine, controlPlane: controlPlane);
        // The second node gets the first node's issuer keys (as a deployment shares them) and the same issuer.
        string dataB = Path.Combine(Path.GetTempPath(), "analytics-tenancy-b-" + Guid.NewGuid().ToString("N"));
        Analytics.Host.Cli.DataDirectoryLock.CreateOwnerOnly(Path.Combine(dataB, "identity"));
        foreach (string file in (string[])[IssuerKeys.SigningFile, IssuerKeys.EncryptionFile])
        {
            string target = Path.Combine(dataB, "identity", file);
            File.Copy(Path.Combine(a.DataDirectory, "identity", file), target);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        await using var b = await AuthHost.StartAsync(engine, controlPlane: controlPlane, dataDirectory: dataB);

        var (merchant, site) = a.NewMerchant("Postgres Shop");
        a.NewUser(merchant.Id, "owner@pg.example", "correct horse battery");
        var (client, secret) = await ApiClients.CreateAsync(a.App.Services, merchant.Id, "script", ["stats:read"], TestContext.Current.CancellationToken);

        // A token from node A works on node B.
        string token = await TestTokens.ClientCredentialsAsync(a.Http, client.ClientId, secret);
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);

        // Signed in on A, refreshed on B.
        var tokens = await a.SignInAsync("owner@pg.example", "correct horse battery");
        var refreshed = await b.TokenRequestAsync(new()
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = tokens.GetProperty("refresh_token").GetString()!, ["client_id"] = "dashboard",
        });
        Assert.Equal(HttpStatusCode.OK, (await a.GetAsync(AuthHost.AggregatePath(site), refreshed.GetProperty("access_token").GetString()!)).StatusCode);

        // Revoked on A: B refuses the client at its token endpoint and its outstanding token.
        a.Store.RevokeApiClient(client.ClientId);
        await Task.Delay(AuthHost.RevocationCache * 2, TestContext.Current.CancellationToken);
        await Assert.ThrowsAsync<HttpRequestException>(() => TestTokens.ClientCredentialsAsync(b.Http, client.ClientId, secret));
        Assert.Equal(HttpStatusCode.Unauthorized, (await b.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);
    }
}
