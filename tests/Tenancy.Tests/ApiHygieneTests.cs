using System.Net;
using System.Text;
using System.Text.Json;
using Analytics.Host;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Playwright;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// Properties every API endpoint must have, checked on every endpoint of the app's own endpoint
/// data sources, so an endpoint added later cannot miss them: it is in the OpenAPI document, and
/// each error the framework answers for it (401, 403, 404, 405, 413, 415) is
/// application/problem+json. The docs page is checked in a real browser to load from the app only.
/// </summary>
public class ApiHygieneTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>API endpoints that cannot be described in OpenAPI 3, and why.</summary>
    private static readonly Dictionary<string, string> Undescribed = new()
    {
        ["* /v1/ws"] = "WebSocket ingest (any method, upgrade); the protocol is schemas/events.proto",
        ["* /v1/echo"] = "benchmark WebSocket, mapped only with --echo",
    };

    private sealed record Api(string Method, string Pattern, RouteEndpoint Endpoint)
    {
        public string Key => $"{Method} {Pattern}";
        public string? Policy => Endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).FirstOrDefault(p => p is not null);
        public bool TakesJson => Endpoint.Metadata.GetMetadata<IAcceptsMetadata>()?.ContentTypes.Contains("application/json") == true;
        /// <summary>The pattern with every route parameter filled in (a well-formed public id).</summary>
        public string Path => System.Text.RegularExpressions.Regex.Replace(Pattern, "{[^}]+}", "aaaaaaaaaaaaaaaa");
    }

    private static List<Api> ApiEndpoints(AuthHost host) =>
        ((IEndpointRouteBuilder)host.App).DataSources.SelectMany(s => s.Endpoints).OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText is { } p && (p.StartsWith("/v1", StringComparison.Ordinal) || p.StartsWith("/admin", StringComparison.Ordinal)))
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => new Api(m, e.RoutePattern.RawText!, e)))
            .DistinctBy(a => a.Key).OrderBy(a => a.Key, StringComparer.Ordinal).ToList();

    [Fact]
    public async Task Every_v1_and_admin_endpoint_is_in_the_openapi_document_with_both_security_schemes()
    {
        await using var host = await AuthHost.StartAsync(engine);
        using var response = await host.Http.GetAsync(ApiConventions.OpenApiPath, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        var paths = document.GetProperty("paths").EnumerateObject().ToDictionary(p => p.Name.TrimEnd('/'), p => p.Value);

        var schemes = document.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("http", schemes.GetProperty("bearer").GetProperty("type").GetString());
        Assert.Equal("bearer", schemes.GetProperty("bearer").GetProperty("scheme").GetString());
        Assert.Equal("JWT", schemes.GetProperty("bearer").GetProperty("bearerFormat").GetString());
        Assert.Equal("bearer", schemes.GetProperty("apiKey").GetProperty("scheme").GetString());

        var missing = new List<string>();
        foreach (var api in ApiEndpoints(host))
        {
            if (Undescribed.ContainsKey(api.Key)) continue;
            if (!paths.TryGetValue(api.Pattern.TrimEnd('/'), out var item) || !item.TryGetProperty(api.Method.ToLowerInvariant(), out var operation))
            {
                missing.Add(api.Key);
                continue;
            }
            if (api.Policy is null) continue;
            var security = operation.GetProperty("security").EnumerateArray().SelectMany(r => r.EnumerateObject().Select(p => p.Name)).ToList();
            Assert.True(security.SequenceEqual(["bearer", "apiKey"]), $"{api.Key}: security {string.Join(", ", security)}");
            Assert.Contains($"`{api.Policy}`", operation.GetProperty("description").GetString());
        }
        Assert.True(missing.Count == 0, "endpoints missing from the OpenAPI document: " + string.Join(", ", missing));
        // Both v1 query endpoints say they can answer CSV where they can.
        Assert.True(paths["/v1/sites/{site}/timeseries"].GetProperty("get").GetProperty("responses").GetProperty("200").GetProperty("content").TryGetProperty("text/csv", out _));
    }

    [Fact]
    public async Task Every_error_the_framework_answers_on_the_api_is_problem_json()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, _) = host.NewMerchant("Problem Shop");
        string full = await host.ClientTokenAsync(merchant.Id, "admin stats:read sites:write");
        var narrow = new Dictionary<string, string>
        {
            // A token without the endpoint's scope, per scope.
            ["stats:read"] = await host.ClientTokenAsync(merchant.Id, "sites:write"),
            ["sites:write"] = await host.ClientTokenAsync(merchant.Id, "stats:read"),
            ["admin"] = await host.ClientTokenAsync(merchant.Id, "stats:read sites:write"),
        };
        var apis = ApiEndpoints(host).Where(a => !Undescribed.ContainsKey(a.Key)).ToList();
        var checkedStatuses = new HashSet<int>();

        async Task<HttpResponseMessage> ExpectProblemAsync(HttpMethod method, string path, string? token, HttpContent? content, int status, string what)
        {
            using var request = new HttpRequestMessage(method, path) { Content = content };
            if (token is not null) request.Headers.Authorization = new("Bearer", token);
            var response = await host.Http.SendAsync(request, Ct);
            string body = await response.Content.ReadAsStringAsync(Ct);
            Assert.True((int)response.StatusCode == status, $"{what}: {(int)response.StatusCode} {body}");
            Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", $"{what}: {response.Content.Headers.ContentType} {body}");
            var problem = JsonDocument.Parse(body).RootElement;
            Assert.Equal(status, problem.GetProperty("status").GetInt32());
            Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()), what);
            checkedStatuses.Add(status);
            return response;
        }

        foreach (var api in apis.Where(a => a.Policy is not null))
        {
            var method = new HttpMethod(api.Method);
            using (var anonymous = await ExpectProblemAsync(method, api.Path, null, null, 401, $"{api.Key} anonymous"))
                Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.First().Scheme);
            (await ExpectProblemAsync(method, api.Path, narrow[api.Policy!], null, 403, $"{api.Key} without {api.Policy}")).Dispose();
            if (api.TakesJson)
            {
                (await ExpectProblemAsync(method, api.Path, full, new StringContent("{}", Encoding.UTF8, "text/plain"), 415, $"{api.Key} text/plain body")).Dispose();
                (await ExpectProblemAsync(method, api.Path, full, new ByteArrayContent("{}"u8.ToArray()), 415, $"{api.Key} body without a content type")).Dispose();
                string big = "{\"name\": \"" + new string('x', (int)ApiConventions.MaxBodyBytes) + "\"}";
                (await ExpectProblemAsync(method, api.Path, full, new StringContent(big, Encoding.UTF8, "application/json"), 413, $"{api.Key} body over 64 KiB")).Dispose();
            }
        }
        // A method a route does not have, for every route.
        foreach (var route in apis.GroupBy(a => a.Pattern))
        {
            string other = new[] { "PATCH", "PUT", "DELETE", "GET" }.First(m => route.All(a => a.Method != m));
            using var wrongMethod = await ExpectProblemAsync(new HttpMethod(other), route.First().Path, full, null, 405, $"{other} {route.Key}");
            Assert.NotEmpty(wrongMethod.Content.Headers.Allow);
        }
        (await ExpectProblemAsync(HttpMethod.Get, "/v1/no-such-endpoint", full, null, 404, "unknown /v1 path")).Dispose();
        (await ExpectProblemAsync(HttpMethod.Get, "/admin/no-such-endpoint", full, null, 404, "unknown /admin path")).Dispose();
        Assert.Equal([401, 403, 404, 405, 413, 415], checkedStatuses.Order());
    }

    [Fact]
    public async Task The_docs_page_renders_in_chromium_loading_nothing_but_the_apps_own_urls()
    {
        Assert.True(File.Exists(Chromium), "needs Debian's chromium at /usr/bin/chromium (./test.sh installs it: apt-get install chromium)");
        await using var host = await AuthHost.StartAsync(engine);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync();
        page.SetDefaultTimeout(20_000);
        var requested = new List<string>();
        page.Request += (_, request) => { lock (requested) requested.Add(request.Url); };
        // Anything outside the app is refused, so a page that needs a CDN shows it by not rendering.
        await page.RouteAsync("**/*", route => route.Request.Url.StartsWith(host.BaseAddress + "/", StringComparison.Ordinal) ? route.ContinueAsync() : route.AbortAsync());

        await page.GotoAsync(host.BaseAddress + ApiConventions.DocsPath);
        // Rendered from the document: an operation of the query API appears.
        // 30 s: the page's script is ~3 MB, parsed on a busy 2-core machine.
        await Assertions.Expect(page.GetByText("/v1/sites/{site}/timeseries").First).ToBeVisibleAsync(new() { Timeout = 30_000 });
        string[] foreign;
        lock (requested) foreign = requested.Where(u => !u.StartsWith(host.BaseAddress + "/", StringComparison.Ordinal) && !u.StartsWith("data:", StringComparison.Ordinal) && !u.StartsWith("blob:", StringComparison.Ordinal)).ToArray();
        Assert.True(foreign.Length == 0, "requests outside the app: " + string.Join(", ", foreign));
        lock (requested) Assert.Contains(host.BaseAddress + ApiConventions.OpenApiPath, requested);
    }
}
