using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Analytics.Tenancy.Tests;

/// <summary>The OAuth2 flows and API keys end to end, over HTTP, as clients outside the process see them.</summary>
public class FlowTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_client_credentials_token_is_a_jwt_for_one_merchant_and_reads_that_merchants_site()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Shop A");
        var (client, secret) = await ApiClients.CreateAsync(host.App.Services, merchant.Id, "script", ["stats:read"], Ct);
        var answer = await host.TokenRequestAsync(new() { ["grant_type"] = "client_credentials", ["client_id"] = client.ClientId, ["client_secret"] = secret });
        Assert.Equal("Bearer", answer.GetProperty("token_type").GetString());
        Assert.False(answer.TryGetProperty("refresh_token", out _)); // client credentials: no refresh token
        string token = answer.GetProperty("access_token").GetString()!;

        // Read with the reference JWT library, not ours: an unencrypted, signed access token.
        var jwt = new JsonWebTokenHandler().ReadJsonWebToken(token);
        Assert.Equal("RS256", jwt.Alg);
        Assert.Equal("at+jwt", jwt.Typ);
        Assert.Equal(host.Issuer, jwt.Issuer);
        Assert.Equal(["analytics-api"], jwt.Audiences);
        Assert.Equal(merchant.Id.ToString(), jwt.GetClaim("merchant").Value);
        Assert.Equal("stats:read", jwt.GetClaim("scope").Value);
        Assert.Equal(client.ClientId, jwt.GetClaim("client_id").Value);
        Assert.Equal(TimeSpan.FromMinutes(15), jwt.ValidTo - jwt.IssuedAt);

        using var ok = await host.GetAsync(AuthHost.AggregatePath(site), token);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(site.PublicId, (await ok.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("site_id").GetString());
        // stats:read does not open the admin API, nor site management.
        using var admin = await host.GetAsync("/admin/sites", token);
        Assert.Equal(HttpStatusCode.Forbidden, admin.StatusCode);
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/sites") { Content = JsonContent.Create(new { domain = "more.example" }) };
        create.Headers.Authorization = new("Bearer", token);
        Assert.Equal(HttpStatusCode.Forbidden, (await host.Http.SendAsync(create, Ct)).StatusCode);

        // sites:write creates a site for the token's merchant, whatever the body says.
        string writer = await host.ClientTokenAsync(merchant.Id, "stats:read sites:write");
        using var own = new HttpRequestMessage(HttpMethod.Post, "/v1/sites") { Content = JsonContent.Create(new { domain = "more.example", merchantId = merchant.Id + 1 }) };
        own.Headers.Authorization = new("Bearer", writer);
        using var created = await host.Http.SendAsync(own, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        string newSite = (await created.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString()!;
        Assert.Equal(merchant.Id, host.Store.FindSiteByPublicId(newSite)!.MerchantId);
    }

    [Fact]
    public async Task The_token_endpoint_refuses_a_wrong_secret_an_unheld_scope_and_a_revoked_client()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, _) = host.NewMerchant("Shop B");
        var (client, secret) = await ApiClients.CreateAsync(host.App.Services, merchant.Id, "script", ["stats:read"], Ct);
        var wrong = await host.TokenRequestAsync(new() { ["grant_type"] = "client_credentials", ["client_id"] = client.ClientId, ["client_secret"] = secret + "x" }, HttpStatusCode.Unauthorized);
        Assert.Equal("invalid_client", wrong.GetProperty("error").GetString());
        var scope = await host.TokenRequestAsync(new() { ["grant_type"] = "client_credentials", ["client_id"] = client.ClientId, ["client_secret"] = secret, ["scope"] = "admin" }, HttpStatusCode.BadRequest);
        Assert.False(scope.TryGetProperty("access_token", out _));

        Assert.True(host.Store.RevokeApiClient(client.ClientId));
        var revoked = await host.TokenRequestAsync(new() { ["grant_type"] = "client_credentials", ["client_id"] = client.ClientId, ["client_secret"] = secret }, HttpStatusCode.Unauthorized);
        Assert.Equal("invalid_client", revoked.GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_revoked_clients_outstanding_token_is_refused_once_the_revocation_cache_expires()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Shop C");
        var (client, secret) = await ApiClients.CreateAsync(host.App.Services, merchant.Id, "script", ["stats:read"], Ct);
        string token = await Analytics.Tests.Shared.TestTokens.ClientCredentialsAsync(host.Http, client.ClientId, secret);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);
        host.Store.RevokeApiClient(client.ClientId);
        await Task.Delay(AuthHost.RevocationCache * 2, Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);
    }

    [Fact]
    public async Task A_user_signs_in_with_code_and_pkce_refreshes_then_a_revoked_refresh_token_is_refused()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Shop D");
        host.NewUser(merchant.Id, "owner@shop-d.example", "correct horse battery");
        using var browser = new Browser(host.BaseAddress);

        // A wrong password re-renders the form with 401 and sets no login cookie.
        var login = await browser.Client.GetAsync("/account/login", Ct);
        var fields = AuthHost.HiddenFields(await login.Content.ReadAsStringAsync(Ct));
        fields["email"] = "owner@shop-d.example";
        fields["password"] = "wrong password";
        var refused = await browser.Client.PostAsync("/account/login", new FormUrlEncodedContent(fields), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.DoesNotContain(browser.Cookies.GetCookies(new Uri(host.BaseAddress)), c => c.Name == "analytics.login");

        // A code redeemed with the wrong verifier is refused (PKCE); a fresh code with the right one works.
        var (stolen, _) = await host.AuthorizeAsync(browser, "owner@shop-d.example", "correct horse battery");
        await host.TokenRequestAsync(new()
        {
            ["grant_type"] = "authorization_code", ["code"] = stolen, ["redirect_uri"] = host.RedirectUri, ["client_id"] = "dashboard",
            ["code_verifier"] = AuthHost.Base64Url(new byte[32]),
        }, HttpStatusCode.BadRequest);
        var (code, verifier) = await host.AuthorizeAsync(browser, "owner@shop-d.example", "correct horse battery");
        var tokens = await host.TokenRequestAsync(new()
        {
            ["grant_type"] = "authorization_code", ["code"] = code, ["redirect_uri"] = host.RedirectUri, ["client_id"] = "dashboard", ["code_verifier"] = verifier,
        });
        string access = tokens.GetProperty("access_token").GetString()!;
        string refresh = tokens.GetProperty("refresh_token").GetString()!;
        Assert.Equal(merchant.Id.ToString(), new JsonWebTokenHandler().ReadJsonWebToken(access).GetClaim("merchant").Value);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), access)).StatusCode);

        var refreshed = await host.TokenRequestAsync(new() { ["grant_type"] = "refresh_token", ["refresh_token"] = refresh, ["client_id"] = "dashboard" });
        string access2 = refreshed.GetProperty("access_token").GetString()!;
        string refresh2 = refreshed.GetProperty("refresh_token").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), access2)).StatusCode);

        using var revoke = await host.Http.PostAsync("/connect/revoke", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["token"] = refresh2, ["token_type_hint"] = "refresh_token", ["client_id"] = "dashboard",
        }), Ct);
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        var after = await host.TokenRequestAsync(new() { ["grant_type"] = "refresh_token", ["refresh_token"] = refresh2, ["client_id"] = "dashboard" }, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_grant", after.GetProperty("error").GetString());

        // A code is single use; replaying it (a leaked code) also revokes what it already gave.
        var (again, verifier2) = await host.AuthorizeAsync(browser, "owner@shop-d.example", "correct horse battery");
        var redeem = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code", ["code"] = again, ["redirect_uri"] = host.RedirectUri, ["client_id"] = "dashboard", ["code_verifier"] = verifier2,
        };
        string refresh3 = (await host.TokenRequestAsync(redeem)).GetProperty("refresh_token").GetString()!;
        await host.TokenRequestAsync(redeem, HttpStatusCode.BadRequest);
        await host.TokenRequestAsync(new() { ["grant_type"] = "refresh_token", ["refresh_token"] = refresh3, ["client_id"] = "dashboard" }, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task The_login_page_never_redirects_to_another_site()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, _) = host.NewMerchant("Shop E");
        host.NewUser(merchant.Id, "owner@shop-e.example", "correct horse battery");
        using var browser = new Browser(host.BaseAddress);
        foreach (string target in (string[])["//evil.example/x", "/\\evil.example", "https://evil.example/", "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/\u007F/evil.example"])
        {
            var page = await browser.Client.GetAsync("/account/login?ReturnUrl=" + Uri.EscapeDataString(target), Ct);
            var fields = AuthHost.HiddenFields(await page.Content.ReadAsStringAsync(Ct));
            Assert.Equal("/", fields["returnUrl"]);
            fields["returnUrl"] = target; // a tampered form
            fields["email"] = "owner@shop-e.example";
            fields["password"] = "correct horse battery";
            var posted = await browser.Client.PostAsync("/account/login", new FormUrlEncodedContent(fields), Ct);
            Assert.Equal(HttpStatusCode.Redirect, posted.StatusCode);
            Assert.Equal("/", posted.Headers.Location!.ToString());
        }
        // Without the antiforgery token the form is refused.
        var bare = await browser.Client.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["email"] = "owner@shop-e.example", ["password"] = "correct horse battery",
        }), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, bare.StatusCode);
    }

    [Fact]
    public async Task A_token_issued_before_a_restart_is_still_valid_after_it_and_the_keys_are_owner_only()
    {
        var host = await AuthHost.StartAsync(engine);
        string token;
        Analytics.ControlPlane.Site site;
        try
        {
            (var merchant, site) = host.NewMerchant("Shop F");
            token = await host.ClientTokenAsync(merchant.Id, "stats:read");
            Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);
            host.KeepData = true;
        }
        finally
        {
            await host.DisposeAsync();
        }
        await using var restarted = await AuthHost.StartAsync(engine, restartOf: host);
        Assert.Equal(HttpStatusCode.OK, (await restarted.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);
        foreach (string file in (string[])[IssuerKeys.SigningFile, IssuerKeys.EncryptionFile])
        {
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(restarted.DataDirectory, "identity", file)));
        }
    }

    [Fact]
    public async Task A_new_data_directory_and_its_control_plane_files_are_owner_only_after_a_start()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix file modes");
            return;
        }
        await using var host = await AuthHost.StartAsync(engine);
        host.NewMerchant("Shop M"); // a write: the WAL and shared-memory files exist
        const UnixFileMode ownerDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Assert.Equal(ownerDirectory, File.GetUnixFileMode(host.DataDirectory));
        Assert.Equal(ownerDirectory, File.GetUnixFileMode(Path.Combine(host.DataDirectory, "identity")));
        string[] files = Directory.GetFiles(host.DataDirectory, ControlPlaneStore.DefaultFileName + "*");
        Assert.Contains(files, f => f.EndsWith(ControlPlaneStore.DefaultFileName, StringComparison.Ordinal));
        Assert.Contains(files, f => f.EndsWith("-wal", StringComparison.Ordinal));
        foreach (string file in files)
            Assert.True(File.GetUnixFileMode(file) == (UnixFileMode.UserRead | UnixFileMode.UserWrite), $"{file}: {File.GetUnixFileMode(file)}");
    }

    [Fact]
    public async Task An_api_key_reads_stats_until_revoked_and_its_secret_is_not_in_the_control_plane_file()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Shop G");
        host.NewUser(merchant.Id, "owner@shop-g.example", "correct horse battery");
        string userToken = (await host.SignInAsync("owner@shop-g.example", "correct horse battery")).GetProperty("access_token").GetString()!;

        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/keys") { Content = JsonContent.Create(new { name = "nightly export", scopes = "stats:read" }) };
        create.Headers.Authorization = new("Bearer", userToken);
        using var created = await host.Http.SendAsync(create, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await created.Content.ReadFromJsonAsync<JsonElement>(Ct);
        string key = body.GetProperty("key").GetString()!;
        string prefix = body.GetProperty("prefix").GetString()!;
        Assert.StartsWith("ak_" + prefix + "_", key);

        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), key)).StatusCode);
        // A key cannot mint keys, and its scopes stop at stats:read.
        using var mint = new HttpRequestMessage(HttpMethod.Post, "/v1/keys") { Content = JsonContent.Create(new { name = "x" }) };
        mint.Headers.Authorization = new("Bearer", key);
        Assert.Equal(HttpStatusCode.Forbidden, (await host.Http.SendAsync(mint, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await host.GetAsync("/admin/sites", key)).StatusCode);
        // A well-formed key with a wrong secret, and a listing that never shows secrets.
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(site), key[..^4] + "aaaa")).StatusCode);
        using var list = await host.GetAsync("/v1/keys", userToken);
        string listed = await list.Content.ReadAsStringAsync(Ct);
        Assert.Contains(prefix, listed);
        Assert.DoesNotContain(key, listed);

        // The secret appears nowhere in the control plane's files (database, WAL, shared memory).
        byte[] secret = Encoding.UTF8.GetBytes(key);
        byte[] secretPart = Encoding.UTF8.GetBytes(key[("ak_" + prefix + "_").Length..]);
        foreach (var (file, bytes) in await ReadControlPlaneFilesAsync(host.DataDirectory))
        {
            Assert.True(bytes.AsSpan().IndexOf(secret) < 0, $"key found in {file}");
            Assert.True(bytes.AsSpan().IndexOf(secretPart) < 0, $"key secret found in {file}");
        }

        using var revoke = new HttpRequestMessage(HttpMethod.Delete, "/v1/keys/" + prefix);
        revoke.Headers.Authorization = new("Bearer", userToken);
        Assert.Equal(HttpStatusCode.NoContent, (await host.Http.SendAsync(revoke, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(site), key)).StatusCode);
    }

    [Fact]
    public async Task A_key_is_revoked_only_by_its_own_user_or_an_owner_never_by_a_key_or_a_client()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Shop K");
        host.NewUser(merchant.Id, "owner@shop-k.example", "correct horse battery");
        host.NewUser(merchant.Id, "viewer@shop-k.example", "correct horse battery", UserRoles.Viewer);
        string owner = (await host.SignInAsync("owner@shop-k.example", "correct horse battery")).GetProperty("access_token").GetString()!;
        string viewer = (await host.SignInAsync("viewer@shop-k.example", "correct horse battery")).GetProperty("access_token").GetString()!;
        var (ownerKey, ownerSecret) = await CreateKeyAsync(host, owner, "stats:read");
        var (viewerKey, viewerSecret) = await CreateKeyAsync(host, viewer, "stats:read");
        string client = await host.ClientTokenAsync(merchant.Id, "stats:read sites:write");

        Assert.Equal(HttpStatusCode.Forbidden, await RevokeAsync(host, ownerKey, viewer)); // a viewer: not another user's key
        Assert.Equal(HttpStatusCode.Forbidden, await RevokeAsync(host, ownerKey, client)); // no user behind a client
        Assert.Equal(HttpStatusCode.Forbidden, await RevokeAsync(host, ownerKey, viewerSecret)); // a key never revokes
        Assert.Equal(HttpStatusCode.Forbidden, await RevokeAsync(host, viewerKey, viewerSecret)); // not even itself
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), ownerSecret)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), viewerSecret)).StatusCode);

        var (ownKey, _) = await CreateKeyAsync(host, viewer, "stats:read");
        Assert.Equal(HttpStatusCode.NoContent, await RevokeAsync(host, ownKey, viewer)); // one's own key
        Assert.Equal(HttpStatusCode.NoContent, await RevokeAsync(host, viewerKey, owner)); // the owner manages the merchant's keys
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(site), viewerSecret)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), ownerSecret)).StatusCode);
    }

    /// <summary>GET /v1/keys: an owner sees every key of the merchant and whose it is, a viewer only
    /// their own (as they may revoke only those), a key or a client none; pages of at most
    /// <c>limit</c> keys in the order they were made, the next one named by a Link header.</summary>
    [Fact]
    public async Task Keys_are_listed_to_whoever_may_revoke_them_a_page_at_a_time()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, _) = host.NewMerchant("Shop M");
        host.NewUser(merchant.Id, "owner@shop-m.example", "correct horse battery");
        host.NewUser(merchant.Id, "viewer@shop-m.example", "correct horse battery", UserRoles.Viewer);
        string owner = (await host.SignInAsync("owner@shop-m.example", "correct horse battery")).GetProperty("access_token").GetString()!;
        string viewer = (await host.SignInAsync("viewer@shop-m.example", "correct horse battery")).GetProperty("access_token").GetString()!;
        var made = new List<(string Prefix, string Secret, string User)>();
        for (int i = 0; i < 5; i++)
        {
            bool mine = i % 2 == 0;
            var (prefix, secret) = await CreateKeyAsync(host, mine ? owner : viewer, "stats:read");
            made.Add((prefix, secret, mine ? "owner@shop-m.example" : "viewer@shop-m.example"));
        }

        var all = await ListKeysAsync(host, owner, "/v1/keys");
        Assert.Equal(made.Select(k => (k.Prefix, k.User)), all.Keys);
        Assert.Null(all.Next);
        var own = await ListKeysAsync(host, viewer, "/v1/keys");
        Assert.Equal(made.Where(k => k.User.StartsWith("viewer", StringComparison.Ordinal)).Select(k => (k.Prefix, k.User)), own.Keys);

        // Pages of two: 2 + 2 + 1, each Link naming the next, the last none.
        var seen = new List<(string, string)>();
        string? next = "/v1/keys?limit=2";
        int pages = 0;
        while (next is not null)
        {
            var page = await ListKeysAsync(host, owner, next);
            Assert.True(page.Keys.Count <= 2, $"{page.Keys.Count} keys on a page of 2");
            seen.AddRange(page.Keys);
            next = page.Next;
            Assert.True(++pages <= 3, "at most three pages of two for five keys");
        }
        Assert.Equal(made.Select(k => (k.Prefix, k.User)), seen);

        // Neither a key nor a client lists keys; a bad limit or cursor is named.
        Assert.Equal(HttpStatusCode.Forbidden, (await host.GetAsync("/v1/keys", made[0].Secret)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await host.GetAsync("/v1/keys", await host.ClientTokenAsync(merchant.Id, "stats:read"))).StatusCode);
        foreach (string bad in new[] { "limit=0", "limit=501", "limit=x", "after=nosuchkey" })
        {
            using var refused = await host.GetAsync("/v1/keys?" + bad, owner);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains(bad.Split('=')[0], JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("title").GetString(), StringComparison.Ordinal);
        }
    }

    private static async Task<(List<(string Prefix, string User)> Keys, string? Next)> ListKeysAsync(AuthHost host, string bearer, string path)
    {
        using var response = await host.GetAsync(path, bearer);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var keys = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.EnumerateArray()
            .Select(k => (k.GetProperty("prefix").GetString()!, k.GetProperty("user").GetString()!)).ToList();
        string? link = response.Headers.TryGetValues("Link", out var values) ? values.Single() : null;
        var next = link is null ? null : System.Text.RegularExpressions.Regex.Match(link, "^<([^>]+)>; rel=\"next\"$");
        Assert.True(next is null || next.Success, $"Link: {link}");
        return (keys, next?.Groups[1].Value);
    }

    [Fact]
    public async Task A_key_never_has_more_than_its_users_current_role_allows()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Shop L");
        var user = host.NewUser(merchant.Id, "owner@shop-l.example", "correct horse battery");
        string owner = (await host.SignInAsync("owner@shop-l.example", "correct horse battery", "stats:read sites:write")).GetProperty("access_token").GetString()!;
        var (_, key) = await CreateKeyAsync(host, owner, "stats:read sites:write");
        Assert.Equal(HttpStatusCode.Created, await CreateSiteAsync(host, key, "one.shop-l.example"));

        // Demoted to viewer: the key keeps reading but no longer writes, and the still valid token
        // of the owner's time mints no sites:write key.
        Assert.True(host.Store.UpdateUser(user.Id, user.PasswordHash, UserRoles.Viewer));
        Assert.Equal(HttpStatusCode.Forbidden, await CreateSiteAsync(host, key, "two.shop-l.example"));
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), key)).StatusCode);
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/keys") { Content = JsonContent.Create(new { scopes = "stats:read sites:write" }) };
        create.Headers.Authorization = new("Bearer", owner);
        Assert.Equal(HttpStatusCode.Forbidden, (await host.Http.SendAsync(create, Ct)).StatusCode);
    }

    private static async Task<(string Prefix, string Key)> CreateKeyAsync(AuthHost host, string token, string scopes)
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/keys") { Content = JsonContent.Create(new { name = "script", scopes }) };
        create.Headers.Authorization = new("Bearer", token);
        using var created = await host.Http.SendAsync(create, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await created.Content.ReadFromJsonAsync<JsonElement>(Ct);
        return (body.GetProperty("prefix").GetString()!, body.GetProperty("key").GetString()!);
    }

    private static async Task<HttpStatusCode> RevokeAsync(AuthHost host, string prefix, string bearer)
    {
        using var revoke = new HttpRequestMessage(HttpMethod.Delete, "/v1/keys/" + prefix);
        revoke.Headers.Authorization = new("Bearer", bearer);
        using var response = await host.Http.SendAsync(revoke, Ct);
        return response.StatusCode;
    }

    private static async Task<HttpStatusCode> CreateSiteAsync(AuthHost host, string bearer, string domain)
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, "/v1/sites") { Content = JsonContent.Create(new { domain }) };
        create.Headers.Authorization = new("Bearer", bearer);
        using var response = await host.Http.SendAsync(create, Ct);
        return response.StatusCode;
    }

    /// <summary>Every file of the control plane's database (the database, its WAL and shared
    /// memory) with its contents. SQLite checkpoints the WAL into the database and deletes it (and
    /// the shared memory) when its last connection closes, so a file listed may be gone when it is
    /// opened (seen once under CI's load); the database file changed with it, so the directory is
    /// listed and every file read again.</summary>
    private static async Task<List<(string File, byte[] Bytes)>> ReadControlPlaneFilesAsync(string directory)
    {
        for (int attempt = 1; ; attempt++)
        {
            var files = new List<(string, byte[])>();
            try
            {
                foreach (string file in Directory.GetFiles(directory, ControlPlaneStore.DefaultFileName + "*"))
                    files.Add((file, await ReadSharedAsync(file)));
                return files;
            }
            catch (FileNotFoundException) when (attempt < 5)
            {
            }
        }
    }

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = new MemoryStream();
        await file.CopyToAsync(copy, Ct);
        return copy.ToArray();
    }
}
