using System.Net;
using System.Text.Json;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// A real Prometheus (Debian's prometheus package) owned by one test: a generated configuration
/// scraping the given targets every second, its TSDB in a temporary directory, its web API on a
/// free loopback port. Dispose (or the end of the test process, should Dispose never run) kills
/// it and deletes the directory; a start that fails kills it before throwing.
/// </summary>
public sealed class PrometheusServer : IDisposable
{
    public const string Binary = "/usr/bin/prometheus";

    private readonly string _directory;
    private readonly ChildProcess _process;
    private readonly HttpClient _http;

    private PrometheusServer(string directory, ChildProcess process, int port)
    {
        _directory = directory;
        _process = process;
        Port = port;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
    }

    public int Port { get; }

    /// <summary>Prometheus's own output so far (for a failing test's message).</summary>
    public string Log => _process.Log;

    /// <summary>Starts Prometheus scraping <paramref name="targets"/> ("127.0.0.1:PORT") at /metrics as job "analytics".</summary>
    public static async Task<PrometheusServer> StartAsync(IEnumerable<string> targets, CancellationToken ct)
    {
        if (!File.Exists(Binary))
            throw new InvalidOperationException($"Prometheus is not installed ({Binary}): apt-get install -y prometheus (test.sh does this).");
        string directory = Path.Combine(Path.GetTempPath(), "analytics-prometheus-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        string config = Path.Combine(directory, "prometheus.yml");
        // Scrape every second so a test waits a second or two, not the default minute.
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: analytics
                metrics_path: /metrics
                static_configs:
                  - targets: [{string.Join(", ", targets.Select(t => $"'{t}'"))}]
            """, ct);
        int port = ChildProcess.FreePort();
        var server = new PrometheusServer(directory, ChildProcess.Start(Binary,
        [
            "--config.file=" + config,
            "--storage.tsdb.path=" + Path.Combine(directory, "data"),
            "--web.listen-address=127.0.0.1:" + port,
            // Not the package's defaults under /usr/share: the web UI is not needed.
            "--web.console.templates=" + directory,
            "--web.console.libraries=" + directory,
        ]), port);
        try
        {
            await server._process.WaitUntilAsync(async () =>
            {
                try { return (await server._http.GetAsync("/-/ready", ct)).StatusCode == HttpStatusCode.OK; }
                catch (HttpRequestException) { return false; }
            }, "ready", ct);
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>An instant query through /api/v1/query: each series' labels and value.</summary>
    public async Task<IReadOnlyList<(Dictionary<string, string> Labels, double Value)>> QueryAsync(string promql, CancellationToken ct)
    {
        using var response = await _http.GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql), ct);
        string body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{promql}: {(int)response.StatusCode} {body}");
        using var json = JsonDocument.Parse(body);
        var data = json.RootElement.GetProperty("data");
        if (data.GetProperty("resultType").GetString() != "vector") throw new InvalidOperationException($"{promql}: not a vector: {body}");
        return data.GetProperty("result").EnumerateArray().Select(r => (
            r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
            double.Parse(r.GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture))).ToList();
    }

    /// <summary>Polls <paramref name="promql"/> until one series' value satisfies <paramref name="done"/> or 30 s pass; returns the last answer.</summary>
    public async Task<IReadOnlyList<(Dictionary<string, string> Labels, double Value)>> WaitForAsync(string promql, Func<double, bool> done, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        IReadOnlyList<(Dictionary<string, string> Labels, double Value)> last;
        do
        {
            last = await QueryAsync(promql, ct);
            if (last.Count == 1 && done(last[0].Value)) return last;
            await Task.Delay(250, ct);
        }
        while (DateTime.UtcNow < deadline);
        return last;
    }

    public void Dispose()
    {
        _process.Dispose();
        _http.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
