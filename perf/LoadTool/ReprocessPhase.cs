using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Analytics.LoadTool;

/// <summary>
/// Reprocessing throughput: once Rollup has stored everything the load phases sent, rebuild the
/// demo merchant's derived data from its raw events (a real job through the admin API, the same
/// path `analytics reprocess` uses) and report raw events per second with the dataset's size.
/// </summary>
public static class ReprocessPhase
{
    public sealed record Result(long RawEvents, int SiteDays, double Seconds, double EventsPerSecond, double StoreWaitSeconds);

    public static async Task<Result> RunAsync(HttpClient http, Uri baseAddress, string dataDirectory, long expectedEvents, CancellationToken ct)
    {
        // Rollup is slower than ingest: wait until the backlog is stored (lag 0, stored >= sent).
        var wait = Stopwatch.StartNew();
        while (true)
        {
            string metrics = await http.GetStringAsync(new Uri(baseAddress, "/metrics"), ct);
            if (Metric(metrics, "analytics_rollup_lag_records") == 0 && Metric(metrics, "analytics_rollup_events_stored_total") >= expectedEvents) break;
            if (wait.Elapsed > TimeSpan.FromMinutes(30)) throw new TimeoutException("Rollup did not catch up within 30 minutes");
            await Task.Delay(500, ct);
        }
        double storeWait = wait.Elapsed.TotalSeconds;

        var (token, _) = await AdminClient.TokenAsync(http, baseAddress, dataDirectory, ct);
        string today = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        using var start = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, "/admin/reprocess"))
        {
            Content = JsonContent.Create(new { merchantId = 1, from = DateTime.UtcNow.AddDays(-1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), to = today }),
        };
        start.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await http.SendAsync(start, ct);
        string body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"reprocess refused: {(int)response.StatusCode} {body}");
        string id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var poll = new HttpRequestMessage(HttpMethod.Get, new Uri(baseAddress, $"/admin/reprocess/{id}"));
            poll.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var job = JsonDocument.Parse(await (await http.SendAsync(poll, ct)).Content.ReadAsStringAsync(ct)).RootElement;
            string state = job.GetProperty("state").GetString()!;
            if (state == "failed") throw new InvalidOperationException("reprocess failed: " + job.GetProperty("error"));
            if (state == "done")
            {
                long events = job.GetProperty("eventsDone").GetInt64();
                int units = job.GetProperty("units").GetArrayLength();
                double seconds = clock.Elapsed.TotalSeconds;
                return new Result(events, units, seconds, events / seconds, storeWait);
            }
            await Task.Delay(100, ct);
        }
    }

    internal static double Metric(string text, string name)
    {
        foreach (var line in text.Split('\n'))
        {
            // OpenTelemetry's exporter writes a series without labels as "name{} value".
            if (line.StartsWith(name + " ", StringComparison.Ordinal))
                return double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
            if (line.StartsWith(name + "{} ", StringComparison.Ordinal))
                return double.Parse(line[(name.Length + 3)..], CultureInfo.InvariantCulture);
        }
        return double.NaN;
    }
}
