using System.Net;
using System.Net.Http.Headers;
using Analytics.ControlPlane;
using Analytics.EndToEnd.Tests;
using Analytics.Host;
using Analytics.Identity;
using Analytics.Tests.Shared;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// A real Varnish with deploy/varnish/default.vcl in front of a real host: an answer stored for a
/// credential is not served once the credential is gone, whether it was revoked (the host purges
/// the credential's surrogate key) or an access token expired (the answer's edge lifetime ends
/// with the token).
/// </summary>
public class EdgeCredentialTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // A range that ended months ago: the host says max-age 3600, so only the fix ends it sooner.
    private static string SettledPath(Site site) => $"/v1/sites/{site.PublicId}/aggregate?metrics=pageviews,visitors&from=2026-01-15&to=2026-01-15";

    private static async Task<(HttpStatusCode Status, string? Cache, TimeSpan? MaxAge)> GetAsync(HttpClient edge, string path, string bearer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        using var response = await edge.SendAsync(request, Ct);
        string? cache = response.Headers.TryGetValues("X-Cache", out var values) ? values.Single() : null;
        return (response.StatusCode, cache, response.Headers.CacheControl?.MaxAge);
    }

    [Fact]
    public async Task A_revoked_api_key_is_refused_at_the_edge_not_served_its_cached_answer()
    {
        int edgePort = EndToEnd.Tests.ChildProcess.FreePort();
        await using var host = await AuthHost.StartAsync(engine, edgePurgeUrls: [new Uri($"http://127.0.0.1:{edgePort}/")]);
        using var varnish = await VarnishServer.StartAsync(edgePort, new Uri(host.BaseAddress).Port, Ct);
        using var edge = new HttpClient { BaseAddress = varnish.Url };
        var (merchant, site) = host.NewMerchant("Edge Key " + Guid.NewGuid().ToString("N")[..8]);
        string email = $"owner-{Guid.NewGuid():N}@edge.example";
        var user = host.NewUser(merchant.Id, email, "correct horse battery");
        string owner = (await host.SignInAsync(email, "correct horse battery")).GetProperty("access_token").GetString()!;
        var (key, secret) = ApiKeys.Create(host.Store, merchant.Id, user.Id, "script", "stats:read");
        string path = SettledPath(site);

        var first = await GetAsync(edge, path, secret);
        Assert.True(first.Status == HttpStatusCode.OK, $"{first.Status}\n{varnish.Log}");
        Assert.Equal("MISS", first.Cache);
        Assert.Equal(TimeSpan.FromHours(1), first.MaxAge);
        Assert.Equal("HIT", (await GetAsync(edge, path, secret)).Cache);

        using var revoke = new HttpRequestMessage(HttpMethod.Delete, "/v1/keys/" + key.Prefix);
        revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", owner);
        Assert.Equal(HttpStatusCode.NoContent, (await host.Http.SendAsync(revoke, Ct)).StatusCode);

        // The purge is sent beside the revocation, not before its answer: a moment's HIT is allowed.
        var after = await GetAsync(edge, path, secret);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (after.Cache == "HIT" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
            after = await GetAsync(edge, path, secret);
        }
        Assert.True(after.Status == HttpStatusCode.Unauthorized, $"{after.Status} {after.Cache} 10 s after the revocation\n{varnish.Log}");
        Assert.Equal("MISS", after.Cache);
    }

    [Fact]
    public async Task An_api_key_revoked_offline_by_the_cli_naming_the_edge_is_purged_there_before_the_cli_returns()
    {
        int edgePort = EndToEnd.Tests.ChildProcess.FreePort();
        // The server itself purges nothing here: only the CLI knows the edge.
        await using var host = await AuthHost.StartAsync(engine);
        using var varnish = await VarnishServer.StartAsync(edgePort, new Uri(host.BaseAddress).Port, Ct);
        using var edge = new HttpClient { BaseAddress = varnish.Url };
        var (merchant, site) = host.NewMerchant("Edge Cli " + Guid.NewGuid().ToString("N")[..8]);
        var user = host.NewUser(merchant.Id, $"owner-{Guid.NewGuid():N}@edge.example", "correct horse battery");
        var (key, secret) = ApiKeys.Create(host.Store, merchant.Id, user.Id, "script", "stats:read");
        var (other, otherSecret) = ApiKeys.Create(host.Store, merchant.Id, user.Id, "other script", "stats:read");
        string path = SettledPath(site);
        Assert.Equal("MISS", (await GetAsync(edge, path, secret)).Cache);
        Assert.Equal("HIT", (await GetAsync(edge, path, secret)).Cache);
        Assert.Equal("MISS", (await GetAsync(edge, path, otherSecret)).Cache);

        // A bad edge URL, or a data directory without the query nodes' surrogate-key secret, stops
        // the command before anything is revoked: one line, non-zero exit, the key still works.
        var badUrl = await HostCommand.RunAsync(["keys", "revoke", "--prefix", key.Prefix, "--edge-purge-url", "ftp://edge.example/", "--data", host.DataDirectory], environment: null);
        Assert.True(badUrl.ExitCode == 2, badUrl.ToString());
        Assert.Equal("analytics keys revoke: --edge-purge-url 'ftp://edge.example/': use the edge cache's http(s):// URL, e.g. http://127.0.0.1:6081/", Assert.Single(badUrl.StderrLines));
        string elsewhere = Directory.CreateTempSubdirectory("analytics-no-secret-").FullName;
        try
        {
            var noSecret = await HostCommand.RunAsync(["keys", "revoke", "--prefix", key.Prefix, "--edge-purge-url", varnish.Url.ToString(), "--data", elsewhere, "--control-plane", "sqlite:" + Path.Combine(host.DataDirectory, "control-plane.db")], environment: null);
            Assert.True(noSecret.ExitCode != 0, noSecret.ToString());
            Assert.Contains("surrogate-key.secret does not exist", Assert.Single(noSecret.StderrLines));
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }
        Assert.Equal("HIT", (await GetAsync(edge, path, secret)).Cache);

        await RevokeThroughTheCliAsync(["keys", "revoke", "--prefix", key.Prefix], $"revoked key {key.Prefix}", host, varnish, edge, path, secret, otherSecret);

        // An edge that does not answer: the key is revoked all the same, and the command says
        // which edge kept the answers, with exit code 1.
        var unreachable = new Uri($"http://127.0.0.1:{EndToEnd.Tests.ChildProcess.FreePort()}/");
        var failed = await HostCommand.RunAsync(["keys", "revoke", "--prefix", other.Prefix, "--edge-purge-url", unreachable.ToString(), "--data", host.DataDirectory], environment: null);
        Assert.True(failed.ExitCode == 1, failed.ToString());
        Assert.Contains($"revoked key {other.Prefix}", failed.Stdout);
        Assert.Contains($"edge {unreachable} did not purge", Assert.Single(failed.StderrLines));
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(site), otherSecret)).StatusCode);
    }

    [Fact]
    public async Task An_api_client_revoked_by_the_cli_naming_the_edge_loses_its_tokens_cached_answers_there_at_once()
    {
        int edgePort = EndToEnd.Tests.ChildProcess.FreePort();
        await using var host = await AuthHost.StartAsync(engine);
        using var varnish = await VarnishServer.StartAsync(edgePort, new Uri(host.BaseAddress).Port, Ct);
        using var edge = new HttpClient { BaseAddress = varnish.Url };
        var (merchant, site) = host.NewMerchant("Edge Client " + Guid.NewGuid().ToString("N")[..8]);
        var (client, secret) = await ApiClients.CreateAsync(host.App.Services, merchant.Id, "integration", ["stats:read"], Ct);
        string token = await TestTokens.ClientCredentialsAsync(host.Http, client.ClientId, secret);
        string otherToken = await host.ClientTokenAsync(merchant.Id, "stats:read");
        string path = SettledPath(site);
        // A dashboard user's answers carry no client name (their token names the dashboard's
        // client, which no revocation concerns), an API client's do.
        string email = $"owner-{Guid.NewGuid():N}@edge.example";
        host.NewUser(merchant.Id, email, "correct horse battery");
        string userToken = (await host.SignInAsync(email, "correct horse battery")).GetProperty("access_token").GetString()!;
        Assert.DoesNotContain(await SurrogateKeysAsync(host, path, userToken), k => k.StartsWith("c-", StringComparison.Ordinal));
        Assert.Single(await SurrogateKeysAsync(host, path, token), k => k.StartsWith("c-", StringComparison.Ordinal));
        Assert.Equal("MISS", (await GetAsync(edge, path, token)).Cache);
        Assert.Equal("HIT", (await GetAsync(edge, path, token)).Cache);
        Assert.Equal("MISS", (await GetAsync(edge, path, otherToken)).Cache);
        Assert.Equal("HIT", (await GetAsync(edge, path, otherToken)).Cache);

        var badUrl = await HostCommand.RunAsync(["clients", "revoke", "--client-id", client.ClientId, "--edge-purge-url", "ftp://edge.example/", "--data", host.DataDirectory], environment: null);
        Assert.True(badUrl.ExitCode == 2, badUrl.ToString());
        Assert.Equal("HIT", (await GetAsync(edge, path, token)).Cache);

        // The token has minutes left, but the edge no longer answers for it: the host does, 401.
        await RevokeThroughTheCliAsync(["clients", "revoke", "--client-id", client.ClientId], $"revoked client {client.ClientId}", host, varnish, edge, path, token, otherToken);
    }

    /// <summary>The Surrogate-Key of an answer straight from the host (an edge strips it).</summary>
    private static async Task<string[]> SurrogateKeysAsync(AuthHost host, string path, string bearer)
    {
        using var response = await host.GetAsync(path, bearer);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response.Headers.GetValues("Surrogate-Key").Single().Split(' ');
    }

    /// <summary>Runs the CLI's revoke <paramref name="command"/> naming the edge, then checks at
    /// once (the purge is done when the command returns) that the revoked credential's request
    /// reaches the host and gets 401, while another credential's answer stays a HIT.</summary>
    private static async Task RevokeThroughTheCliAsync(string[] command, string said, AuthHost host, VarnishServer varnish, HttpClient edge, string path,
        string revokedBearer, string otherBearer)
    {
        var revoked = await HostCommand.RunAsync([.. command, "--edge-purge-url", varnish.Url.ToString(), "--data", host.DataDirectory], environment: null);
        Assert.True(revoked.ExitCode == 0, revoked.ToString());
        Assert.Contains(said, revoked.Stdout);
        Assert.Contains("purged c-", revoked.Stdout);
        var after = await GetAsync(edge, path, revokedBearer);
        Assert.True(after.Status == HttpStatusCode.Unauthorized, $"{after.Status} {after.Cache} after the CLI returned\n{varnish.Log}");
        Assert.Equal("MISS", after.Cache);
        Assert.Equal("HIT", (await GetAsync(edge, path, otherBearer)).Cache);
    }

    [Fact]
    public async Task An_answer_fetched_with_an_access_token_is_not_served_after_the_token_expired()
    {
        var lifetime = TimeSpan.FromSeconds(6);
        int edgePort = EndToEnd.Tests.ChildProcess.FreePort();
        await using var host = await AuthHost.StartAsync(engine,
            auth: new AuthSettings { AccessTokenLifetime = lifetime, ClockSkew = TimeSpan.Zero, RevocationCacheTime = AuthHost.RevocationCache });
        using var varnish = await VarnishServer.StartAsync(edgePort, new Uri(host.BaseAddress).Port, Ct);
        using var edge = new HttpClient { BaseAddress = varnish.Url };
        var (merchant, site) = host.NewMerchant("Edge Token " + Guid.NewGuid().ToString("N")[..8]);
        string token = await host.ClientTokenAsync(merchant.Id, "stats:read");
        string path = SettledPath(site);

        var first = await GetAsync(edge, path, token);
        Assert.True(first.Status == HttpStatusCode.OK, $"{first.Status}\n{varnish.Log}");
        Assert.Equal("MISS", first.Cache);
        // At most what the token had left, not the settled range's hour.
        Assert.InRange(first.MaxAge!.Value, TimeSpan.Zero, lifetime);
        Assert.Equal("HIT", (await GetAsync(edge, path, token)).Cache);

        // A second past the token's own exp (the validator allows no clock skew here).
        var expiry = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(token).ValidTo;
        await Task.Delay(expiry + TimeSpan.FromSeconds(1) - DateTime.UtcNow, Ct);
        var expired = await GetAsync(edge, path, token);
        Assert.True(expired.Status == HttpStatusCode.Unauthorized, $"{expired.Status} {expired.Cache} after the token expired\n{varnish.Log}");
        Assert.NotEqual("HIT", expired.Cache);
    }
}
