using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Analytics.ControlPlane;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// Every endpoint the host maps, taken from its own endpoint data sources, is either listed as
/// public (with the reason) or has a case here: a new endpoint without a case fails the sweep.
/// For each protected endpoint, against merchant B's resources: without a token, 401; with
/// merchant A's token (all non-admin scopes), 403 or 404 (or, for lists of one's own things, 200
/// with none of B's) and none of B's data in the body; with B's own credentials, the case's
/// success status, which proves the request really aimed at B's data.
/// </summary>
public class CrossTenantTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Endpoints anyone may call, and why.</summary>
    private static readonly Dictionary<string, string> Public = new()
    {
        ["* /v1/ws"] = "ingest from browsers (WebSocket); a batch names its site key, which is public in the merchant's HTML",
        ["POST /v1/events"] = "ingest over HTTP, as above",
        ["OPTIONS /v1/events"] = "CORS preflight of the HTTP ingest",
        ["GET /v1/echo"] = "benchmark baseline, mapped only with --echo; echoes the caller's own bytes",
        ["GET /agent.js"] = "the browser agent script",
        ["GET /"] = "the dashboard page: no data of its own, it signs in and asks the API with the user's token",
        ["GET /dashboard/{file}"] = "the dashboard's built script and stylesheet",
        ["GET /favicon.ico"] = "the icon browsers ask for on every page",
        ["GET /healthz"] = "liveness probe; answers \"ok\"",
        ["GET /livez"] = "liveness probe (Kubernetes, HAProxy); answers \"ok\" while the process runs",
        ["GET /readyz"] = "readiness probe; answers \"ready\" or 503 with a reason (starting, draining, store unreachable), no merchant's data",
        ["GET /metrics"] = "process-wide Prometheus counters, no merchant's data; keep it on the private network",
        ["POST /connect/token"] = "OAuth2 token endpoint; authenticates the client (secret, code + PKCE, refresh token) itself",
        ["GET /connect/authorize"] = "OAuth2 authorization endpoint; sends unauthenticated users to the sign-in page",
        ["GET /account/login"] = "the sign-in form",
        ["POST /account/login"] = "the sign-in form's post; checks the password",
        ["POST /account/logout"] = "signs the caller's own cookie out",
        ["GET /openapi/{documentName}.json"] = "the OpenAPI document: describes the endpoints, holds no merchant's data",
        ["GET /docs/api/{documentName?}"] = "the API reference page (Scalar), rendered from the OpenAPI document",
        ["GET /docs/api/scalar.js"] = "the API reference page's script, served from the app itself",
        ["GET /docs/api/scalar.aspnetcore.js"] = "the API reference page's script, served from the app itself",
        ["GET /docs/api/favicon.svg"] = "the API reference page's icon",
    };

    private enum Owner { AdminClient, User }

    /// <param name="Path">With {site}, {merchant}, {job}, {prefix}, {sitekey}, {out}, {goal}, {funnel} standing for B's values.</param>
    /// <param name="OwnStatus">What B's own credentials (<paramref name="As"/>) get.</param>
    /// <param name="ListsOwn">A's token is answered with A's own (empty) list: 200, none of B's data.</param>
    private sealed record Case(string Path, Func<Target, object?>? Body, HttpStatusCode OwnStatus, Owner As = Owner.AdminClient, bool ListsOwn = false, int Order = 0);

    private sealed record Target(Merchant Merchant, Site Site, string Job, string KeyPrefix, string Out, Funnel Funnel);

    private static readonly Dictionary<string, Case> Cases = new()
    {
        ["GET /v1/sites"] = new("/v1/sites", null, HttpStatusCode.OK, ListsOwn: true),
        // Creates a site for the caller's own merchant: A gets its own new site, never one of B's.
        ["POST /v1/sites/"] = new("/v1/sites", _ => new { domain = "new.example" }, HttpStatusCode.Created, ListsOwn: true),
        ["GET /v1/sites/{site}/timeseries"] = new("/v1/sites/{site}/timeseries?metrics=pageviews&interval=hour", null, HttpStatusCode.OK),
        ["GET /v1/sites/{site}/aggregate"] = new("/v1/sites/{site}/aggregate?metrics=pageviews,visitors", null, HttpStatusCode.OK),
        ["POST /v1/query"] = new("/v1/query", t => new { site_id = t.Site.PublicId, date_range = "day", metrics = new[] { "visitors" } }, HttpStatusCode.OK),
        ["GET /v1/query"] = new("/v1/query?query={\"site_id\":\"{site}\",\"date_range\":\"7d\",\"metrics\":[\"pageviews\"]}", null, HttpStatusCode.OK),
        ["POST /admin/sites"] = new("/admin/sites", t => new { merchantId = t.Merchant.Id, domain = "second.b-secret.example" }, HttpStatusCode.Created),
        ["GET /admin/sites"] = new("/admin/sites", null, HttpStatusCode.OK),
        ["POST /admin/reprocess"] = new("/admin/reprocess", t => new { merchantId = t.Merchant.Id, site = t.Site.PublicId, from = "2026-01-01", to = "2026-01-02" }, HttpStatusCode.Accepted),
        ["GET /admin/reprocess/{id}"] = new("/admin/reprocess/{job}", null, HttpStatusCode.OK),
        ["GET /admin/partitions"] = new("/admin/partitions?merchantId={merchant}", null, HttpStatusCode.OK),
        ["POST /admin/export"] = new("/admin/export", t => new { merchantId = t.Merchant.Id, from = "2026-01-01", to = "2026-01-02", kind = "raw", format = "parquet", @out = t.Out }, HttpStatusCode.OK),
        ["GET /v1/sites/{site}/origins"] = new("/v1/sites/{site}/origins", null, HttpStatusCode.OK),
        ["POST /v1/sites/{site}/origins"] = new("/v1/sites/{site}/origins", _ => new { origin = "https://b-shop.example" }, HttpStatusCode.Created),
        ["DELETE /v1/sites/{site}/origins"] = new("/v1/sites/{site}/origins?origin=https://b-shop.example", null, HttpStatusCode.NoContent, Order: 1),
        ["GET /v1/sites/{site}/rejections"] = new("/v1/sites/{site}/rejections", null, HttpStatusCode.OK),
        ["POST /v1/sites/{site}/keys/rotate"] = new("/v1/sites/{site}/keys/rotate", _ => new { graceHours = 1 }, HttpStatusCode.OK),
        // After the rotation: B's original key is in its grace period, and B's own call revokes it.
        ["DELETE /v1/sites/{site}/keys/{key}"] = new("/v1/sites/{site}/keys/{sitekey}", null, HttpStatusCode.OK, Order: 1),
        ["GET /v1/keys/"] = new("/v1/keys", null, HttpStatusCode.OK, Owner.User, ListsOwn: true),
        ["POST /v1/keys/"] = new("/v1/keys", _ => new { name = "b", scopes = "stats:read" }, HttpStatusCode.Created, Owner.User, ListsOwn: true),
        ["GET /v1/sites/{site}/goals"] = new("/v1/sites/{site}/goals", null, HttpStatusCode.OK),
        ["POST /v1/sites/{site}/goals"] = new("/v1/sites/{site}/goals", _ => new { name = "Created by B", kind = "event", match = "b" }, HttpStatusCode.Created),
        ["PUT /v1/sites/{site}/goals/{goal_id}"] = new("/v1/sites/{site}/goals/{goal}", _ => new { name = "B secret goal", kind = "page", match = "/b-secret-checkout" }, HttpStatusCode.OK),
        // After the funnel that uses B's goal is gone.
        ["DELETE /v1/sites/{site}/goals/{goal_id}"] = new("/v1/sites/{site}/goals/{goal}", null, HttpStatusCode.NoContent, Order: 2),
        ["GET /v1/sites/{site}/funnels"] = new("/v1/sites/{site}/funnels", null, HttpStatusCode.OK),
        ["POST /v1/sites/{site}/funnels"] = new("/v1/sites/{site}/funnels", _ => new { name = "Created by B", steps = new[] { "Created by B", "B second goal" } }, HttpStatusCode.Created),
        ["PUT /v1/sites/{site}/funnels/{funnel_id}"] = new("/v1/sites/{site}/funnels/{funnel}", _ => new { name = "B funnel", steps = new[] { "B second goal", "B secret goal" } }, HttpStatusCode.OK),
        ["DELETE /v1/sites/{site}/funnels/{funnel_id}"] = new("/v1/sites/{site}/funnels/{funnel}", null, HttpStatusCode.NoContent, Order: 1),
        ["POST /v1/funnel"] = new("/v1/funnel", t => new { site_id = t.Site.PublicId, date_range = "7d", funnel_id = t.Funnel.Id }, HttpStatusCode.OK),
        // Last: B's own call revokes B's key.
        ["DELETE /v1/keys/{prefix}"] = new("/v1/keys/{prefix}", null, HttpStatusCode.NoContent, Owner.User, Order: 2),
    };

    [Fact]
    public async Task Every_endpoint_refuses_anonymous_callers_and_other_merchants_and_serves_its_owner()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var endpoints = ((IEndpointRouteBuilder)host.App).DataSources.SelectMany(s => s.Endpoints).OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => $"{m} {e.RoutePattern.RawText}"))
            .Distinct().OrderBy(e => e, StringComparer.Ordinal).ToList();
        var unknown = endpoints.Where(e => !Public.ContainsKey(e) && !Cases.ContainsKey(e)).ToList();
        Assert.True(unknown.Count == 0, "endpoints without a cross-tenant case or a public reason: " + string.Join(", ", unknown));
        // Every case aims at a route that exists (a renamed route must not leave its case idle).
        Assert.Empty(Cases.Keys.Except(endpoints));

        // Merchant A: a client with every non-admin scope. Merchant B: an admin client and a user with a key.
        var (a, _) = host.NewMerchant("Merchant A");
        var (bMerchant, bSite) = host.NewMerchant("Merchant B Secretive");
        string aToken = await host.ClientTokenAsync(a.Id, "stats:read sites:write");
        string bAdmin = await host.ClientTokenAsync(bMerchant.Id, "admin stats:read sites:write");
        host.NewUser(bMerchant.Id, "owner@b-secret.example", "correct horse battery");
        string bUser = (await host.SignInAsync("owner@b-secret.example", "correct horse battery", "stats:read")).GetProperty("access_token").GetString()!;
        var (bKey, _) = ApiKeys.Create(host.Store, bMerchant.Id, host.Store.FindUserByEmail("owner@b-secret.example")!.Id, "b script", "stats:read");
        string job = (await SendAsync(host, HttpMethod.Post, "/admin/reprocess", bAdmin, new { merchantId = bMerchant.Id, from = "2026-01-01", to = "2026-01-01" }))
            .Body.GetProperty("id").GetString()!;
        string outDirectory = Path.Combine(host.DataDirectory, "export-b");
        var bGoal = host.Store.CreateGoal(bSite.SiteId, "B secret goal", GoalKinds.Event, "b-secret-event");
        var bSecond = host.Store.CreateGoal(bSite.SiteId, "B second goal", GoalKinds.Page, "/b-secret-page");
        var bFunnel = host.Store.CreateFunnel(bSite.SiteId, "B secret funnel", [bGoal.Id, bSecond.Id]);
        var target = new Target(bMerchant, bSite, job, bKey.Prefix, outDirectory, bFunnel);
        string[] secrets = [bSite.Domain, bSite.SiteKey, bMerchant.Name, "owner@b-secret.example", "B secret", "b-secret-"];

        foreach (var (endpoint, c) in Cases.OrderBy(c => c.Value.Order))
        {
            var method = new HttpMethod(endpoint[..endpoint.IndexOf(' ')]);
            string PathFor(string site) => c.Path.Replace("{site}", site).Replace("{merchant}", bMerchant.Id.ToString())
                .Replace("{job}", job).Replace("{prefix}", bKey.Prefix).Replace("{goal}", bGoal.Id.ToString()).Replace("{funnel}", bFunnel.Id.ToString()).Replace("{sitekey}", bSite.SiteKey);
            string path = PathFor(bSite.PublicId);
            object? body = c.Body?.Invoke(target);

            var anonymous = await SendAsync(host, method, path, null, body);
            Assert.True(anonymous.Status == HttpStatusCode.Unauthorized, $"{endpoint} without a token: {(int)anonymous.Status}");

            var other = await SendAsync(host, method, path, aToken, body);
            bool refused = other.Status is HttpStatusCode.Forbidden or HttpStatusCode.NotFound;
            bool ownList = c.ListsOwn && other.Status is HttpStatusCode.OK or HttpStatusCode.Created or HttpStatusCode.Forbidden;
            Assert.True(refused || ownList, $"{endpoint} with merchant A's token: {(int)other.Status} {other.Text}");
            foreach (string secret in c.ListsOwn ? [.. secrets, bKey.Prefix, bSite.PublicId] : secrets)
                Assert.False(other.Text.Contains(secret, StringComparison.OrdinalIgnoreCase), $"{endpoint} showed merchant A '{secret}': {other.Text}");
            // B's site answers A exactly as a site that does not exist: nothing tells A that B's id is real.
            if (c.Path.Contains("{site}", StringComparison.Ordinal))
            {
                var nobody = await SendAsync(host, method, PathFor(NoSuchSite), aToken, body);
                Assert.Equal(Answer(nobody, NoSuchSite), Answer(other, bSite.PublicId));
            }

            var own = await SendAsync(host, method, path, c.As == Owner.User ? bUser : bAdmin, body);
            Assert.True(own.Status == c.OwnStatus, $"{endpoint} with merchant B's own credentials: {(int)own.Status} {own.Text}");
        }
        // B's key was revoked by B in the last case, never by A's attempt before it.
        Assert.NotNull(host.Store.FindApiKey(bKey.Prefix)!.Value.Key.RevokedAt);
        // B's site key: rotated once by B (A's attempts changed nothing), then its old key revoked by B.
        Assert.Null(host.Store.FindSiteByKey(bSite.SiteKey));
        Assert.Empty(host.Store.ListRetiredSiteKeys(bSite.SiteId));
    }

    /// <summary>A well-formed public site id that no site has.</summary>
    private const string NoSuchSite = "aaaaaaaaaaaaaaaa";

    /// <summary>What a refusal tells the caller, with the site id it names blanked: status, title and detail.</summary>
    private static string Answer((HttpStatusCode Status, string Text, JsonElement Body) answer, string site) =>
        answer.Body.ValueKind == JsonValueKind.Object
            ? $"{(int)answer.Status} {Field(answer.Body, "title")} {Field(answer.Body, "detail").Replace(site, "SITE", StringComparison.Ordinal)}"
            : $"{(int)answer.Status} {answer.Text.Replace(site, "SITE", StringComparison.Ordinal)}";

    private static string Field(JsonElement body, string name) => body.TryGetProperty(name, out var value) ? value.ToString() : "";

    private static async Task<(HttpStatusCode Status, string Text, JsonElement Body)> SendAsync(AuthHost host, HttpMethod method, string path, string? token, object? body)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null) request.Headers.Authorization = new("Bearer", token);
        if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await host.Http.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        JsonElement json = default;
        if (text.StartsWith('{') || text.StartsWith('[')) json = JsonDocument.Parse(text).RootElement;
        return (response.StatusCode, text, json);
    }
}
