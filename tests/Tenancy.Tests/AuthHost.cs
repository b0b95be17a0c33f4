using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Web;
using Analytics.ControlPlane;
using Analytics.Host;
using Analytics.Identity;
using Analytics.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

[assembly: AssemblyFixture(typeof(Analytics.Tests.Shared.EngineFixture))]

namespace Analytics.Tenancy.Tests;

/// <summary>
/// One embedded host (its own data directory, control plane and database) on a free loopback
/// port, with helpers that act as an outside client would: tokens from the token endpoint,
/// a browser-like sign-in through the login form. Revocation checks are cached for only 200 ms
/// here so tests of revocation need not wait the production 10 s.
/// </summary>
public sealed class AuthHost : IAsyncDisposable
{
    public static readonly TimeSpan RevocationCache = TimeSpan.FromMilliseconds(200);

    private AuthHost(WebApplication app, string data, string database)
    {
        App = app;
        DataDirectory = data;
        Database = database;
        BaseAddress = app.BoundAddress();
        Http = new HttpClient { BaseAddress = new Uri(BaseAddress) };
    }

    public WebApplication App { get; }
    public string DataDirectory { get; }
    public string Database { get; }
    public string BaseAddress { get; }
    /// <summary>No credentials by default: each request says which it uses.</summary>
    public HttpClient Http { get; }
    public bool KeepData { get; set; }
    public IControlPlaneStore Store => App.Services.GetRequiredService<IControlPlaneStore>();
    public string Issuer => AnalyticsHost.IssuerOf(new HostSettings { DataDirectory = DataDirectory, Urls = Urls });
    public string Urls { get; private init; } = "http://127.0.0.1:0";
    public string RedirectUri => BaseAddress + "/";

    /// <param name="urls">Where to listen (port 0 unless a test needs the address before start).</param>
    /// <param name="auth">Token settings; default: own issuer, revocation cache <see cref="RevocationCache"/>.</param>
    /// <param name="controlPlane">Another host's control plane to share (sqlite:PATH).</param>
    /// <param name="dashboard">A dashboard build (dist directory) to serve; default: the nearest dashboard/dist.</param>
    /// <param name="edgePurgeUrls">Edge caches the host tells what to drop.</param>
    public static async Task<AuthHost> StartAsync(EngineFixture engine, AuthHost? restartOf = null, string urls = "http://127.0.0.1:0",
        AuthSettings? auth = null, string? controlPlane = null, string? dataDirectory = null, string? dashboard = null, IReadOnlyList<Uri>? edgePurgeUrls = null)
    {
        string id = Guid.NewGuid().ToString("N");
        string data = restartOf?.DataDirectory ?? dataDirectory ?? Path.Combine(Path.GetTempPath(), "analytics-tenancy-" + id);
        string database = restartOf?.Database ?? "tenancy_" + id;
        var app = await AnalyticsHost.BuildAsync(new HostSettings
        {
            DataDirectory = data,
            ChDbPath = engine.ChDbPath,
            Database = database,
            Urls = urls,
            Quiet = true,
            Auth = auth ?? new AuthSettings { RevocationCacheTime = RevocationCache },
            ControlPlane = controlPlane,
            Enrichment = engine.Enrichment,
            DashboardPath = dashboard,
            EdgePurgeUrls = edgePurgeUrls ?? [],
        });
        try
        {
            await app.StartAsync();
            if (auth?.Authority is null) await AnalyticsIdentity.EnsureDashboardClientAsync(app.Services, new Uri(app.BoundAddress() + "/"));
            return new AuthHost(app, data, database) { Urls = urls };
        }
        catch
        {
            // Started or not, a host that failed here still runs Rollup and holds its log.
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            throw;
        }
    }

    public (Merchant Merchant, Site Site) NewMerchant(string name)
    {
        var merchant = Store.CreateMerchant(name);
        return (merchant, Store.CreateSite(merchant.Id, name.ToLowerInvariant().Replace(' ', '-') + ".example"));
    }

    public Task<string> ClientTokenAsync(long merchantId, string scopes) => TestTokens.ClientTokenAsync(App.Services, Http, merchantId, scopes);

    public async Task<HttpResponseMessage> GetAsync(string path, string? bearer)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (bearer is not null) request.Headers.Authorization = new("Bearer", bearer);
        return await Http.SendAsync(request, TestContext.Current.CancellationToken);
    }

    public static string AggregatePath(Site site) => $"/v1/sites/{site.PublicId}/aggregate?metrics=pageviews,visitors";

    public User NewUser(long merchantId, string email, string password, string role = UserRoles.Owner) =>
        Store.CreateUser(merchantId, email, UserPasswords.Hash(password), role);

    public async Task<JsonElement> TokenRequestAsync(Dictionary<string, string> form, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await Http.PostAsync("/connect/token", new FormUrlEncodedContent(form), TestContext.Current.CancellationToken);
        string body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>
    /// A browser's authorization code flow with PKCE: authorize (redirected to the login page),
    /// post the login form with its antiforgery token (cookies kept), follow back to authorize,
    /// take the code from the redirect to the dashboard's URI. Returns the code and verifier.
    /// </summary>
    public async Task<(string Code, string Verifier)> AuthorizeAsync(Browser browser, string email, string password, string scope = "stats:read offline_access")
    {
        var ct = TestContext.Current.CancellationToken;
        string verifier = Base64Url(RandomNumberGenerator.GetBytes(32));
        string challenge = Base64Url(SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(verifier)));
        string state = Guid.NewGuid().ToString("N");
        string authorize = $"/connect/authorize?client_id=dashboard&response_type=code&redirect_uri={Uri.EscapeDataString(RedirectUri)}" +
                           $"&scope={Uri.EscapeDataString(scope)}&code_challenge={challenge}&code_challenge_method=S256&state={state}";
        var response = await browser.Client.GetAsync(authorize, ct);
        if (response.StatusCode == HttpStatusCode.Redirect && response.Headers.Location!.ToString().Contains("/account/login", StringComparison.Ordinal))
        {
            var login = await browser.Client.GetAsync(response.Headers.Location, ct);
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);
            var fields = HiddenFields(await login.Content.ReadAsStringAsync(ct));
            fields["email"] = email;
            fields["password"] = password;
            var posted = await browser.Client.PostAsync("/account/login", new FormUrlEncodedContent(fields), ct);
            Assert.True(posted.StatusCode == HttpStatusCode.Redirect, $"login: {(int)posted.StatusCode} {await posted.Content.ReadAsStringAsync(ct)}");
            response = await browser.Client.GetAsync(posted.Headers.Location, ct);
        }
        Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"authorize: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
        var back = new Uri(new Uri(BaseAddress), response.Headers.Location!);
        Assert.Equal(RedirectUri, back.GetLeftPart(UriPartial.Path));
        var query = HttpUtility.ParseQueryString(back.Query);
        Assert.Equal(state, query["state"]);
        return (query["code"] ?? throw new InvalidOperationException("no code in " + back), verifier);
    }

    /// <summary>The whole sign-in of a dashboard user: code, then tokens.</summary>
    public async Task<JsonElement> SignInAsync(string email, string password, string scope = "stats:read offline_access")
    {
        using var browser = new Browser(BaseAddress);
        var (code, verifier) = await AuthorizeAsync(browser, email, password, scope);
        return await TokenRequestAsync(new()
        {
            ["grant_type"] = "authorization_code", ["code"] = code, ["redirect_uri"] = RedirectUri,
            ["client_id"] = "dashboard", ["code_verifier"] = verifier,
        });
    }

    public static Dictionary<string, string> HiddenFields(string html) =>
        Regex.Matches(html, "<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\">")
            .ToDictionary(m => WebUtility.HtmlDecode(m.Groups[1].Value), m => WebUtility.HtmlDecode(m.Groups[2].Value));

    public static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        if (KeepData) return;
        try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>An HTTP client that keeps cookies and does not follow redirects (the test follows them).</summary>
public sealed class Browser : IDisposable
{
    public Browser(string baseAddress)
    {
        Client = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, UseCookies = true, AllowAutoRedirect = false }) { BaseAddress = new Uri(baseAddress) };
    }

    public CookieContainer Cookies { get; } = new();
    public HttpClient Client { get; }

    public void Dispose() => Client.Dispose();
}
