using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Analytics.Tenancy.Tests;

/// <summary>One host for the hostile-token cases: a merchant with a site, a live and a revoked client.</summary>
public sealed class HostileTokenFixture(EngineFixture engine) : IAsyncLifetime
{
    public AuthHost Host { get; private set; } = null!;
    public Site Site { get; private set; } = null!;
    public long MerchantId { get; private set; }
    public string LiveClientId { get; private set; } = "";
    public string RevokedClientId { get; private set; } = "";
    /// <summary>The issuer's own signing key, read from its file: tokens signed with it are
    /// genuine, so each case shows that only the one thing it breaks gets it refused.</summary>
    public RsaSecurityKey SigningKey { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Host = await AuthHost.StartAsync(engine);
        (var merchant, Site) = Host.NewMerchant("Hostile Target");
        MerchantId = merchant.Id;
        LiveClientId = (await ApiClients.CreateAsync(Host.App.Services, MerchantId, "live", ["stats:read"])).Client.ClientId;
        RevokedClientId = (await ApiClients.CreateAsync(Host.App.Services, MerchantId, "revoked", ["stats:read"])).Client.ClientId;
        Host.Store.RevokeApiClient(RevokedClientId);
        var rsa = RSA.Create();
        rsa.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(Host.DataDirectory, "identity", IssuerKeys.SigningFile)));
        SigningKey = new RsaSecurityKey(rsa);
        SigningKey.KeyId = Base64UrlEncoder.Encode(SigningKey.ComputeJwkThumbprint());
    }

    public async ValueTask DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>
/// Hostile access tokens, crafted with the reference JWT library (Microsoft.IdentityModel), each
/// breaking one rule of an otherwise genuine token: all get 401 from the query API, and none
/// reaches data. The genuine token is checked first (200), so a refusal is never an accident of
/// the crafting.
/// </summary>
public class NegativeJwtTests(HostileTokenFixture fixture) : IClassFixture<HostileTokenFixture>
{
    private static readonly JsonWebTokenHandler Handler = new() { SetDefaultTimesOnTokenCreation = false };

    private SecurityTokenDescriptor Genuine(Action<SecurityTokenDescriptor>? change = null)
    {
        var now = DateTime.UtcNow;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = fixture.Host.Issuer,
            Audience = "analytics-api",
            TokenType = "at+jwt",
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddMinutes(10),
            Claims = new Dictionary<string, object>
            {
                ["sub"] = fixture.LiveClientId,
                ["client_id"] = fixture.LiveClientId,
                ["merchant"] = fixture.MerchantId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["scope"] = "stats:read",
            },
            SigningCredentials = new SigningCredentials(fixture.SigningKey, SecurityAlgorithms.RsaSha256),
        };
        change?.Invoke(descriptor);
        return descriptor;
    }

    private async Task<HttpStatusCode> QueryAsync(string token)
    {
        using var response = await fixture.Host.GetAsync(AuthHost.AggregatePath(fixture.Site), token);
        string body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        if (response.StatusCode != HttpStatusCode.OK) Assert.DoesNotContain("pageviews", body);
        return response.StatusCode;
    }

    [Fact]
    public async Task A_genuine_token_crafted_the_same_way_is_accepted()
    {
        Assert.Equal(HttpStatusCode.OK, await QueryAsync(Handler.CreateToken(Genuine())));
    }

    [Fact]
    public async Task An_unsigned_token_with_alg_none_is_refused()
    {
        string header = AuthHost.Base64Url(Encoding.UTF8.GetBytes("""{"alg":"none","typ":"at+jwt"}"""));
        string genuine = Handler.CreateToken(Genuine());
        string payload = genuine.Split('.')[1];
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync($"{header}.{payload}."));
        // Also with the library's own unsigned form.
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.SigningCredentials = null))));
    }

    [Fact]
    public async Task A_token_signed_with_another_key_is_refused_even_under_the_real_key_id()
    {
        var other = new RsaSecurityKey(RSA.Create(2048)) { KeyId = fixture.SigningKey.KeyId };
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.SigningCredentials = new SigningCredentials(other, SecurityAlgorithms.RsaSha256)))));
        var symmetric = new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32));
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.SigningCredentials = new SigningCredentials(symmetric, SecurityAlgorithms.HmacSha256)))));
    }

    [Fact]
    public async Task A_token_whose_payload_was_edited_after_signing_is_refused()
    {
        string[] parts = Handler.CreateToken(Genuine()).Split('.');
        var payload = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(Base64UrlEncoder.Decode(parts[1]))!;
        string edited = AuthHost.Base64Url(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(payload.ToDictionary(p => p.Key, p => p.Key == "scope" ? (object)"stats:read admin" : p.Value))));
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync($"{parts[0]}.{edited}.{parts[2]}"));
    }

    [Fact]
    public async Task A_token_of_another_issuer_is_refused()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.Issuer = "https://issuer.example/"))));
    }

    [Fact]
    public async Task A_token_for_another_audience_is_refused()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.Audience = "another-api"))));
    }

    [Fact]
    public async Task A_token_expired_beyond_the_clock_skew_is_refused()
    {
        // Clock skew is one minute: expired five minutes ago is out.
        var then = DateTime.UtcNow.AddMinutes(-20);
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => (d.IssuedAt, d.NotBefore, d.Expires) = (then, then, DateTime.UtcNow.AddMinutes(-5))))));
    }

    [Fact]
    public async Task A_token_not_yet_valid_is_refused()
    {
        var later = DateTime.UtcNow.AddMinutes(5);
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => (d.IssuedAt, d.NotBefore, d.Expires) = (later, later, later.AddMinutes(10))))));
    }

    [Fact]
    public async Task A_token_without_a_merchant_claim_is_refused()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.Claims.Remove("merchant")))));
    }

    [Fact]
    public async Task A_token_of_a_revoked_client_is_refused()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d =>
        {
            d.Claims["sub"] = fixture.RevokedClientId;
            d.Claims["client_id"] = fixture.RevokedClientId;
        }))));
    }

    [Fact]
    public async Task A_token_that_is_not_an_access_token_is_refused()
    {
        // Same key, issuer and audience, but typed as a plain JWT (as an identity token would be).
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.TokenType = "JWT"))));
    }

    [Fact]
    public async Task A_token_naming_a_merchant_its_client_does_not_belong_to_is_refused()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, await QueryAsync(Handler.CreateToken(Genuine(d => d.Claims["merchant"] = (fixture.MerchantId + 1000).ToString(System.Globalization.CultureInfo.InvariantCulture)))));
    }
}
