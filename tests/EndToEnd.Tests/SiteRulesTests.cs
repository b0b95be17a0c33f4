using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Analytics.ControlPlane;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// What a site may be, over the admin and merchant APIs of a running host: a domain is a bare host
/// name (the default origin rule compares it with the Origin header's host), a site key is one
/// ingest accepts, and a refused site leaves nothing behind.
/// </summary>
public class SiteRulesTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(HttpStatusCode Status, JsonElement Body, string? MediaType)> SendAsync(TestHost host, HttpMethod method, string path, HttpContent content)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Authorization = new("Bearer", host.Token);
        using var response = await host.Http.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("/admin/sites", "https://shop.example", "scheme")]
    [InlineData("/admin/sites", "shop.example/", "path")]
    [InlineData("/admin/sites", "shop.example:8080", "port")]
    [InlineData("/admin/sites", "shop_example.com", "'_'")]
    [InlineData("/admin/sites", "shop..example", "empty label")]
    [InlineData("/v1/sites", "https://shop.example", "scheme")]
    [InlineData("/v1/sites", "shop.example:8080", "port")]
    public async Task A_domain_that_is_not_a_host_name_is_400_naming_the_field_and_what_is_wrong(string path, string domain, string wrong)
    {
        await using var host = await TestHost.StartAsync(engine);
        int sitesBefore = host.App.Services.GetRequiredService<SiteRegistry>().ListSites().Count;
        var (status, problem, mediaType) = await SendAsync(host, HttpMethod.Post, path, JsonContent.Create(new { merchantId = host.Site.MerchantId, domain }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("application/problem+json", mediaType);
        Assert.Equal("domain", problem.GetProperty("field").GetString());
        string detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains(wrong, detail);
        Assert.Contains("a host name such as shop.example, without scheme, port or path", detail);
        Assert.Equal(sitesBefore, host.App.Services.GetRequiredService<SiteRegistry>().ListSites().Count);
    }

    [Theory]
    [InlineData("Shop.Example", "shop.example")]
    [InlineData("localhost", "localhost")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    public async Task A_host_name_is_stored_lower_case_and_as_punycode(string domain, string stored)
    {
        await using var host = await TestHost.StartAsync(engine);
        var (status, site, _) = await SendAsync(host, HttpMethod.Post, "/admin/sites", JsonContent.Create(new { merchantId = host.Site.MerchantId, domain }));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(stored, site.GetProperty("domain").GetString());
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("dot.ted")]
    [InlineData("schlüssel")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")] // 65 characters
    public async Task A_site_key_ingest_would_refuse_is_400_naming_siteKey(string siteKey)
    {
        await using var host = await TestHost.StartAsync(engine);
        var (status, problem, mediaType) = await SendAsync(host, HttpMethod.Post, "/admin/sites",
            JsonContent.Create(new { merchantId = host.Site.MerchantId, domain = "keys.example", siteKey }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("application/problem+json", mediaType);
        Assert.Equal("siteKey", problem.GetProperty("field").GetString());
        Assert.Contains("1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task A_site_key_of_64_allowed_characters_is_stored_and_accepted_by_ingest()
    {
        await using var host = await TestHost.StartAsync(engine);
        string key = "Az09_-" + new string('k', 58);
        var (status, site, _) = await SendAsync(host, HttpMethod.Post, "/admin/sites", JsonContent.Create(new { merchantId = host.Site.MerchantId, domain = "keys.example", siteKey = key }));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(key, site.GetProperty("siteKey").GetString());
        using var socket = await host.ConnectAsync();
        var batch = new Analytics.Contracts.V1.EventBatch { SiteKey = key };
        batch.Events.Add(Wire.Pageview());
        Assert.Equal(1u, (await Wire.SendAsync(socket, batch)).Accepted);
    }

    [Fact]
    public async Task A_refused_site_with_a_new_merchant_name_creates_no_merchant()
    {
        await using var host = await TestHost.StartAsync(engine);
        var store = host.App.Services.GetRequiredService<IControlPlaneStore>();
        int merchantsBefore = store.ListMerchants().Count;

        var badZone = await SendAsync(host, HttpMethod.Post, "/admin/sites", JsonContent.Create(new { merchant = "Retry Shop", domain = "retry.example", timeZone = "Mars/Olympus" }));
        Assert.Equal(HttpStatusCode.BadRequest, badZone.Status);
        Assert.Equal("timeZone", badZone.Body.GetProperty("field").GetString());
        var badDomain = await SendAsync(host, HttpMethod.Post, "/admin/sites", JsonContent.Create(new { merchant = "Retry Shop", domain = "https://retry.example" }));
        Assert.Equal(HttpStatusCode.BadRequest, badDomain.Status);
        var takenKey = await SendAsync(host, HttpMethod.Post, "/admin/sites", JsonContent.Create(new { merchant = "Retry Shop", domain = "retry.example", siteKey = host.Site.SiteKey }));
        Assert.Equal(HttpStatusCode.Conflict, takenKey.Status);
        Assert.Equal(merchantsBefore, store.ListMerchants().Count);

        var created = await SendAsync(host, HttpMethod.Post, "/admin/sites", JsonContent.Create(new { merchant = "Retry Shop", domain = "retry.example", timeZone = "Europe/Berlin" }));
        Assert.Equal(HttpStatusCode.Created, created.Status);
        Assert.Equal(merchantsBefore + 1, store.ListMerchants().Count);
        Assert.Single(store.ListMerchants(), m => m.Name == "Retry Shop");
    }

    [Theory]
    [InlineData("1e10")]
    [InlineData("1e300")]
    [InlineData("721")]
    [InlineData("-1")]
    public async Task A_grace_period_out_of_range_is_400_however_large(string hours)
    {
        await using var host = await TestHost.StartAsync(engine);
        var (status, problem, mediaType) = await SendAsync(host, HttpMethod.Post, $"/v1/sites/{host.Site.PublicId}/keys/rotate",
            new StringContent($"{{\"graceHours\":{hours}}}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("application/problem+json", mediaType);
        Assert.Equal("graceHours must be between 0 and 720.", problem.GetProperty("detail").GetString());
        Assert.Equal(host.Site.SiteKey, host.App.Services.GetRequiredService<IControlPlaneStore>().FindSiteById(host.Site.SiteId)!.SiteKey);
    }
}
