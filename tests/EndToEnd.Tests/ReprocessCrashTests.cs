using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.Host;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The host is SIGKILLed in the middle of a reprocessing job; after the restart the job resumes
/// and finishes, and every number is exact.
/// </summary>
public class ReprocessCrashTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private const string Headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36";

    [Fact]
    public async Task A_reprocess_killed_mid_run_resumes_and_ends_exact()
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-reprocess-crash-" + Guid.NewGuid().ToString("N"));
        int port = Ports.Free();
        var server = new ServerProcess(data, port);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        try
        {
            // History built by the defective logic: 30 sites, each with human and headless traffic.
            var admin = await Analytics.Tests.Shared.TestTokens.OfflineAdminClientAsync(data);
            await server.StartAsync("--logic-version", "1");
            http.DefaultRequestHeaders.Authorization = new("Bearer", await Analytics.Tests.Shared.TestTokens.ClientCredentialsAsync(http, admin.ClientId, admin.Secret));
            const int sites = 30, humans = 60, headless = 20;
            var siteIds = new List<string>();
            for (int i = 0; i < sites; i++)
            {
                var created = await http.PostAsJsonAsync("/admin/sites", new { merchantId = 1, domain = $"s{i}.example" }, Ct);
                var site = JsonDocument.Parse(await created.Content.ReadAsStringAsync(Ct)).RootElement;
                siteIds.Add(site.GetProperty("id").GetString()!);
                await SendAsync(port, site.GetProperty("siteKey").GetString()!, TestHost.BrowserUserAgent, humans);
                await SendAsync(port, site.GetProperty("siteKey").GetString()!, Headless, headless);
            }
            await WaitAsync(async () => (await EventsAsync(http, siteIds[^1])) == humans + headless);

            // Version 2 deployed: reprocess the merchant, and kill the host mid-job.
            server.Kill();
            await server.StartAsync();
            var started = await http.PostAsJsonAsync("/admin/reprocess", new { merchantId = 1, from = Today(), to = Today() }, Ct);
            string id = JsonDocument.Parse(await started.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("id").GetString()!;
            // The 30 site-days (2,400 raw events) fit in one step of a round's worth: the kill lands
            // as soon as the job is planned, inside that step or before it (a step that died leaves
            // its rows invisible and its site-days not done), or between it and the job's cleanup.
            int doneAtKill = 0;
            string stateAtKill = "";
            await WaitAsync(async () =>
            {
                var job = await JobAsync(http, id);
                stateAtKill = job.GetProperty("state").GetString()!;
                doneAtKill = job.TryGetProperty("units", out var units) && units.ValueKind == JsonValueKind.Array ? units.EnumerateArray().Count(u => u.GetProperty("done").GetBoolean()) : 0;
                return stateAtKill != "queued";
            }, pollMs: 5);
            server.Kill();
            TestContext.Current.TestOutputHelper?.WriteLine($"killed in state {stateAtKill} with {doneAtKill} of {sites} site-days rebuilt");
            Assert.NotEqual("done", stateAtKill);

            await server.StartAsync();
            await WaitAsync(async () => (await JobAsync(http, id)).GetProperty("state").GetString() == "done");
            var final = await JobAsync(http, id);
            Assert.Equal(sites * (humans + headless), final.GetProperty("eventsDone").GetInt64());

            foreach (var siteId in siteIds)
            {
                var totals = await TotalsAsync(http, siteId);
                Assert.Equal(humans, totals["events"]);      // headless traffic is now bots
                Assert.Equal(1, totals["visitors"]);
                Assert.Equal(1, totals["visits"]);
            }
            var partitions = JsonDocument.Parse(await http.GetStringAsync("/admin/partitions?merchantId=1", Ct)).RootElement;
            Assert.Equal(sites, partitions.GetArrayLength());
            Assert.All(partitions.EnumerateArray(), p => Assert.False(p.GetProperty("outdated").GetBoolean()));
        }
        finally
        {
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    private static string Today() => DateTime.UtcNow.ToString("yyyy-MM-dd");

    private static async Task SendAsync(int port, string siteKey, string userAgent, int events)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", userAgent);
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/v1/ws"), Ct);
        var batch = new EventBatch { SiteKey = siteKey };
        for (int i = 0; i < events; i++) batch.Events.Add(Wire.Pageview("/" + i));
        Assert.Equal((uint)events, (await Wire.SendAsync(socket, batch)).Accepted);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
    }

    private static async Task<JsonElement> JobAsync(HttpClient http, string id) =>
        JsonDocument.Parse(await http.GetStringAsync($"/admin/reprocess/{id}", Ct)).RootElement;

    private static async Task<long> EventsAsync(HttpClient http, string siteId) => (await TotalsAsync(http, siteId))["events"];

    private static async Task<Dictionary<string, long>> TotalsAsync(HttpClient http, string siteId)
    {
        var json = JsonDocument.Parse(await http.GetStringAsync($"/v1/sites/{siteId}/aggregate?metrics=events,visitors,visits&from={Today()}&to={Today()}", Ct)).RootElement;
        return json.GetProperty("results").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, int pollMs = 100)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(pollMs, Ct);
        }
        throw new TimeoutException("condition not met in 60 s");
    }
}
