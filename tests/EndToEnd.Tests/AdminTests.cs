using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Analytics.Host;

namespace Analytics.EndToEnd.Tests;

public class AdminTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_admin_endpoint_creates_sites_for_the_token_holder_only()
    {
        await using var host = await TestHost.StartAsync(engine);
        var body = new { merchant = "Shop Ltd", domain = "shop.example" };
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Http.PostAsJsonAsync("/admin/sites", body, Ct)).StatusCode);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/sites") { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", AnalyticsHost.AdminToken(host.DataDirectory));
        var created = await host.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var site = JsonDocument.Parse(await created.Content.ReadAsStringAsync(Ct)).RootElement;
        string key = site.GetProperty("siteKey").GetString()!;
        Assert.Equal(20, key.Length);

        // The new key works for ingest at once.
        using var socket = await host.ConnectAsync();
        var batch = new Analytics.Contracts.V1.EventBatch { SiteKey = key };
        batch.Events.Add(Wire.Pageview());
        Assert.Equal(1u, (await Wire.SendAsync(socket, batch)).Accepted);
    }

    [Fact]
    public async Task The_cli_creates_and_lists_sites_as_json()
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-cli-" + Guid.NewGuid().ToString("N"));
        try
        {
            var created = JsonDocument.Parse(await RunAsync("sites", "create", "--domain", "blog.example", "--merchant", "Blog Inc", "--data", data)).RootElement;
            Assert.Equal("blog.example", created.GetProperty("domain").GetString());
            Assert.Equal("Blog Inc", created.GetProperty("merchantName").GetString());
            var list = JsonDocument.Parse(await RunAsync("sites", "list", "--data", data)).RootElement;
            Assert.Equal(created.GetProperty("siteKey").GetString(), list[0].GetProperty("siteKey").GetString());
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<string> RunAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "analytics.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string output = await process.StandardOutput.ReadToEndAsync(Ct);
        await process.WaitForExitAsync(Ct);
        Assert.True(process.ExitCode == 0, await process.StandardError.ReadToEndAsync(Ct));
        return output;
    }
}
