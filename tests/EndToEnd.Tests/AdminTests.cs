using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Analytics.Host;
using Analytics.Host.Cli;

namespace Analytics.EndToEnd.Tests;

public class AdminTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_admin_endpoint_creates_sites_for_the_token_holder_only()
    {
        await using var host = await TestHost.StartAsync(engine);
        var body = new { merchant = "Shop Ltd", domain = "shop.example" };
        using var anonymous = new HttpClient { BaseAddress = new Uri(host.BaseAddress) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/admin/sites", body, Ct)).StatusCode);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/sites") { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", host.Token);
        var created = await host.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var site = JsonDocument.Parse(await created.Content.ReadAsStringAsync(Ct)).RootElement;
        string key = site.GetProperty("siteKey").GetString()!;
        Assert.Equal(20, key.Length);
        // Sites are named by a random public id; the sequential internal id is not shown.
        Assert.Matches("^[a-z2-7]{16}$", site.GetProperty("id").GetString());
        Assert.False(site.TryGetProperty("siteId", out _));

        // The new key works for ingest at once.
        using var socket = await host.ConnectAsync();
        var batch = new Analytics.Contracts.V1.EventBatch { SiteKey = key };
        batch.Events.Add(Wire.Pageview());
        Assert.Equal(1u, (await Wire.SendAsync(socket, batch)).Accepted);
    }

    [Fact]
    public async Task Creating_a_site_with_a_taken_key_is_409_and_a_bad_time_zone_or_merchant_is_400()
    {
        await using var host = await TestHost.StartAsync(engine);
        async Task<HttpStatusCode> CreateAsync(object body) =>
            (await host.Http.SendAsync(host.AdminRequest(HttpMethod.Post, "/admin/sites", body), Ct)).StatusCode;
        Assert.Equal(HttpStatusCode.Conflict, await CreateAsync(new { merchantId = host.Site.MerchantId, domain = "x.example", siteKey = host.Site.SiteKey }));
        Assert.Equal(HttpStatusCode.BadRequest, await CreateAsync(new { merchantId = host.Site.MerchantId, domain = "x.example", timeZone = "Mars/Olympus" }));
        Assert.Equal(HttpStatusCode.BadRequest, await CreateAsync(new { merchantId = 987654, domain = "x.example" }));
        Assert.Equal(HttpStatusCode.Created, await CreateAsync(new { merchantId = host.Site.MerchantId, domain = "x.example", timeZone = "Europe/Berlin" }));
        // Admin calls name sites by public id too, and only within the merchant.
        var partitions = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Get, $"/admin/partitions?merchantId={host.Site.MerchantId}&site={host.Site.PublicId}"), Ct);
        Assert.Equal(HttpStatusCode.OK, partitions.StatusCode);
        var wrongMerchant = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Get, $"/admin/partitions?merchantId={host.Site.MerchantId + 1}&site={host.Site.PublicId}"), Ct);
        Assert.Equal(HttpStatusCode.NotFound, wrongMerchant.StatusCode);
    }

    [Fact]
    public async Task Reprocess_and_export_refuse_more_than_ten_years_in_one_job_with_400()
    {
        await using var host = await TestHost.StartAsync(engine);
        string outDir = Path.Combine(host.DataDirectory, "export");
        // 2000-01-01 .. 2010-01-09 is 3661 days apart: one more than the cap.
        foreach (var (path, body) in ((string, object)[])[
            ("/admin/reprocess", new { merchantId = host.Site.MerchantId, from = "2000-01-01", to = "2010-01-09" }),
            ("/admin/export", new { merchantId = host.Site.MerchantId, from = "2000-01-01", to = "2010-01-09", kind = "raw", format = "parquet", @out = outDir })])
        {
            using var response = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Post, path, body), Ct);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("At most ten years", await response.Content.ReadAsStringAsync(Ct));
        }
        Assert.False(Directory.Exists(outDir));
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

    [Fact]
    public async Task The_reprocess_command_reports_progress_as_json_lines_when_not_on_a_terminal()
    {
        await using var host = await TestHost.StartAsync(engine);
        using (var socket = await host.ConnectAsync())
        {
            var batch = new Analytics.Contracts.V1.EventBatch { SiteKey = host.Site.SiteKey };
            for (int i = 0; i < 20; i++) batch.Events.Add(Wire.Pageview("/" + i));
            await Wire.SendAsync(socket, batch);
        }
        await host.WaitForAggregateAsync(t => t["pageviews"] == 20);
        string today = DateTime.UtcNow.ToString("yyyy-MM-dd");
        // The CLI authenticates with the admin client that bootstrap saved (client credentials).
        var bootstrap = JsonDocument.Parse(await RunAsync("bootstrap", "--data", host.DataDirectory)).RootElement;
        Assert.StartsWith("cl_", bootstrap.GetProperty("clientId").GetString());
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(host.DataDirectory, "admin-client.json")));
        string output = await RunAsync("reprocess", "--merchant", host.Site.MerchantId.ToString(), "--from", today, "--to", today,
            "--url", host.BaseAddress, "--data", host.DataDirectory);
        var progress = output.Split('\n').Where(l => l.StartsWith("{\"job\"", StringComparison.Ordinal)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.NotEmpty(progress);
        Assert.Equal("done", progress[^1].GetProperty("state").GetString());
        Assert.Equal(20, progress[^1].GetProperty("eventsDone").GetInt64());
        Assert.Equal(20, (await host.AggregateAsync())["pageviews"]);

        string status = await RunAsync("partitions", "status", "--merchant", host.Site.MerchantId.ToString(), "--url", host.BaseAddress, "--data", host.DataDirectory);
        var partition = JsonDocument.Parse(status).RootElement[0];
        Assert.False(partition.GetProperty("outdated").GetBoolean());
        Assert.Equal(20, partition.GetProperty("events").GetInt64());
        Assert.Equal(host.Site.PublicId, partition.GetProperty("site").GetString());
        Assert.False(partition.TryGetProperty("siteId", out _));
    }

    [Fact]
    public async Task Reprocessing_a_merchant_that_does_not_exist_is_404_and_the_cli_exits_1_with_one_line()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var response = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Post, "/admin/reprocess", new { merchantId = 987654, from = "2026-01-01", to = "2026-01-02" }), Ct);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("There is no merchant 987654.", await response.Content.ReadAsStringAsync(Ct));

        await RunAsync("bootstrap", "--data", host.DataDirectory);
        var result = await HostCommand.RunAsync("reprocess", "--merchant", "987654", "--from", "2026-01-01", "--to", "2026-01-02", "--url", host.BaseAddress, "--data", host.DataDirectory);
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Equal(["404 Unknown merchant: There is no merchant 987654."], result.StderrLines);
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public async Task A_reprocess_of_a_range_without_raw_events_says_so_and_prints_the_job_on_one_line()
    {
        await using var host = await TestHost.StartAsync(engine);
        await RunAsync("bootstrap", "--data", host.DataDirectory);
        var result = await HostCommand.RunAsync("reprocess", "--merchant", host.Site.MerchantId.ToString(), "--from", "2020-01-01", "--to", "2020-01-31",
            "--url", host.BaseAddress, "--data", host.DataDirectory);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal([$"nothing was reprocessed: merchant {host.Site.MerchantId} from 2020-01-01 to 2020-01-31 holds no raw events (check --merchant, --site, --from and --to)"],
            result.StderrLines);
        // Redirected, stdout is JSON lines only: the progress, then the final job on one line.
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal("done", lines[^1].GetProperty("state").GetString());
        Assert.Equal(0, lines[^1].GetProperty("partitions").GetInt64());
        Assert.Equal(lines[^1].GetProperty("id").GetString(), lines[0].GetProperty("job").GetString());
    }

    [Fact]
    public async Task A_process_without_the_rollup_role_refuses_reprocessing_with_503_naming_the_role()
    {
        await using var host = await TestHost.StartAsync(engine, roles: Roles.Ingest | Roles.Query);
        using var response = await host.Http.SendAsync(host.AdminRequest(HttpMethod.Post, "/admin/reprocess",
            new { merchantId = host.Site.MerchantId, from = "2026-01-01", to = "2026-01-02" }), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        string body = await response.Content.ReadAsStringAsync(Ct);
        Assert.Contains("This process runs ingest, query; send reprocessing to a process with the rollup role", body);
    }

    /// <summary>
    /// Access tokens living 4 s (and no clock skew) against a job of 250 site-days (three steps, an
    /// insert touching at most 100 days): the CLI with the admin client of --data gets a new token
    /// when a poll is 401 and follows the job to its end; with --token it says the token expired
    /// and how to follow the job, which keeps running.
    /// </summary>
    [Fact]
    public async Task The_reprocess_command_outlives_its_access_token()
    {
        // Long enough that the --token run's child process starts and posts within it on a busy
        // machine; the job (each step several engine statements per page) runs well past it.
        var lifetime = TimeSpan.FromSeconds(4);
        const int days = 250;
        var clock = new ManualClock(DateTimeOffset.UtcNow.Date.AddDays(-days - 10));
        await using var host = await TestHost.StartAsync(engine, clock: clock,
            auth: new AuthSettings { AccessTokenLifetime = lifetime, ClockSkew = TimeSpan.Zero });
        for (int d = 0; d < days; d++)
        {
            clock.Now = DateTimeOffset.UtcNow.Date.AddDays(d - days - 10).AddHours(12);
            using var socket = await host.ConnectAsync();
            var batch = new Analytics.Contracts.V1.EventBatch { SiteKey = host.Site.SiteKey };
            batch.Events.Add(Wire.Pageview("/" + d));
            Assert.Equal(1u, (await Wire.SendAsync(socket, batch)).Accepted);
        }
        var client = JsonDocument.Parse(await RunAsync("bootstrap", "--data", host.DataDirectory)).RootElement;
        async Task<string> FreshTokenAsync() => await Analytics.Tests.Shared.TestTokens.ClientCredentialsAsync(host.Http,
            client.GetProperty("clientId").GetString()!, client.GetProperty("clientSecret").GetString()!, "admin");
        string from = clock.Now.AddDays(1 - days).ToString("yyyy-MM-dd"), to = clock.Now.ToString("yyyy-MM-dd");
        for (var deadline = DateTime.UtcNow.AddSeconds(120); ;)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/admin/partitions?merchantId={host.Site.MerchantId}");
            request.Headers.Authorization = new("Bearer", await FreshTokenAsync());
            var partitions = JsonDocument.Parse(await (await host.Http.SendAsync(request, Ct)).Content.ReadAsStringAsync(Ct)).RootElement;
            if (partitions.EnumerateArray().Sum(p => p.GetProperty("events").GetInt64()) == days) break;
            Assert.True(DateTime.UtcNow < deadline, "the events were not stored in 120 s");
            await Task.Delay(100, Ct);
        }

        // 30 site-days took 3.9 s in a CI run; these 250 took 13.9 s on an idle machine, over three
        // times the token's life.
        var renewed = await HostCommand.RunAsync(["reprocess", "--merchant", host.Site.MerchantId.ToString(), "--from", from, "--to", to,
            "--url", host.BaseAddress, "--data", host.DataDirectory], environment: null, timeoutSeconds: 240);
        Assert.True(renewed.ExitCode == 0, renewed.ToString());
        var job = JsonDocument.Parse(renewed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]).RootElement;
        Assert.Equal("done", job.GetProperty("state").GetString());
        Assert.Equal(days, job.GetProperty("eventsDone").GetInt64());
        // The test means something only if the job outlived a token (it takes one step per site-day).
        var ran = job.GetProperty("finishedAt").GetDateTimeOffset() - job.GetProperty("createdAt").GetDateTimeOffset();
        Assert.True(ran > lifetime, $"the job took {ran}: too short to outlive a token of {lifetime}");

        var given = await HostCommand.RunAsync(["reprocess", "--merchant", host.Site.MerchantId.ToString(), "--from", from, "--to", to,
            "--url", host.BaseAddress, "--data", host.DataDirectory, "--token", await FreshTokenAsync()], environment: null);
        Assert.True(given.ExitCode == 1, given.ToString());
        Assert.True(given.Stderr.Contains("the access token expired", StringComparison.Ordinal), given.ToString());
        string id = JsonDocument.Parse(given.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0]).RootElement.GetProperty("job").GetString()!;
        Assert.Equal([$"the access token expired (tokens live 15 minutes; --token/ANALYTICS_TOKEN cannot be renewed); job {id} keeps running: " +
            $"follow it with GET {host.BaseAddress}/admin/reprocess/{id} and a new token, or run without --token to use the admin client of --data"], given.StderrLines);
        Assert.DoesNotContain("cannot reach", given.Stderr);
    }

    [Fact]
    public async Task The_migrate_command_applies_the_schema_once_and_is_safe_to_rerun()
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-migrate-" + Guid.NewGuid().ToString("N"));
        try
        {
            var first = JsonDocument.Parse(await RunAsync("migrate", "--data", data)).RootElement;
            Assert.Equal(new uint[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }, first.GetProperty("applied").EnumerateArray().Select(m => m.GetProperty("version").GetUInt32()));
            var second = JsonDocument.Parse(await RunAsync("migrate", "--data", data)).RootElement;
            Assert.Equal(0, second.GetProperty("applied").GetArrayLength());
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public void The_progress_bar_shows_rate_and_eta()
    {
        string line = AdminCommands.ProgressLine("running", 2_500, 10_000, 1_000);
        Assert.Contains("[#######.......................]  25.0%", line);
        Assert.Contains("2,500/10,000 events", line);
        Assert.Contains("1,000 events/s", line);
        Assert.Contains("ETA 0:00:07", line);
    }

    private static async Task<string> RunAsync(params string[] args)
    {
        var result = await HostCommand.RunAsync(args);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout;
    }
}
