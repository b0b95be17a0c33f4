using System.Net;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The lines `analytics serve` prints once it listens name the roles it runs and only the
/// endpoints this process serves: a node of a split deployment points at nothing it would answer
/// with 404. Checked against the real process: the ingest and query paths the banner names
/// answer, and the query API and dashboard it leaves out are not mapped.
/// </summary>
public sealed class BannerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_ingest_node_names_its_ingest_endpoints_and_no_query_api_or_dashboard()
    {
        await StartAsync("ingest", lastLine: "send traffic", async (lines, client) =>
        {
            Assert.Contains(lines, l => l.StartsWith("Analytics is running (", StringComparison.Ordinal) && l.EndsWith("; roles ingest)", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.TrimStart().StartsWith("ingest ", StringComparison.Ordinal) && l.Contains("/v1/ws", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.TrimStart().StartsWith("send traffic", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("query API", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("dashboard", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("see numbers", StringComparison.Ordinal));
            // What it names answers; what it leaves out is not there.
            Assert.NotEqual(HttpStatusCode.NotFound, (await client.PostAsync("/v1/events", new ByteArrayContent([]), Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/sites/x/aggregate?metrics=pageviews", Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/", Ct)).StatusCode);
        });
    }

    [Fact]
    public async Task A_query_and_rollup_node_names_the_dashboard_and_query_api_and_no_ingest_endpoint()
    {
        await StartAsync("query,rollup", lastLine: "see numbers", async (lines, client) =>
        {
            Assert.Contains(lines, l => l.StartsWith("Analytics is running (", StringComparison.Ordinal) && l.EndsWith("; roles rollup, query)", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.TrimStart().StartsWith("query API", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.TrimStart().StartsWith("dashboard ", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.TrimStart().StartsWith("see numbers", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("ingest ", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("send traffic", StringComparison.Ordinal));
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/sites/x/aggregate?metrics=pageviews", Ct)).StatusCode);
            // The dashboard's page (200 when built, 503 naming the build command when not).
            Assert.NotEqual(HttpStatusCode.NotFound, (await client.GetAsync("/", Ct)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/v1/events", new ByteArrayContent([]), Ct)).StatusCode);
        });
    }

    /// <param name="lastLine">The start of the last line this node's banner prints: output arrives line by line.</param>
    private static async Task StartAsync(string roles, string lastLine, Func<IReadOnlyList<string>, HttpClient, Task> check)
    {
        string data = Path.Combine(Path.GetTempPath(), "analytics-banner-" + Guid.NewGuid().ToString("N"));
        int port = Ports.Free();
        var server = new ServerProcess(data, port);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            await server.StartAsync("--roles", roles);
            // The banner follows the start; healthz can answer a moment before it is written.
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (!server.Output.Any(l => l.TrimStart().StartsWith(lastLine, StringComparison.Ordinal)) && DateTime.UtcNow < deadline) await Task.Delay(100, Ct);
            var lines = server.Output.ToList();
            TestContext.Current.TestOutputHelper?.WriteLine(string.Join("\n", lines));
            await check(lines, http);
        }
        finally
        {
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}
