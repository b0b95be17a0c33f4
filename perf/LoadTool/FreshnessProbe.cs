using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.LoadTool;

/// <summary>
/// Freshness: while the ingest phase loads the server, a probe sends one pageview at a time to a
/// site of its own and measures from just before the send until the query API counts it. That is
/// the delay a merchant sees on a dashboard (the requirement is at most one hour; we aim for
/// seconds). Freshness figures in perf/README.md from before perf/run-all.sh started the clock at
/// the ack instead, a few milliseconds later.
/// </summary>
public static class FreshnessProbe
{
    public sealed record Result(int Samples, double P50Ms, double P99Ms, double MaxMs, long EventsSent);

    /// <summary>A probe ready to send: its token, its own site and an open socket.</summary>
    public sealed class Prepared(string token, string siteId, string siteKey, ClientWebSocket socket) : IDisposable
    {
        public string Token => token;
        public string SiteId => siteId;
        public string SiteKey => siteKey;
        public ClientWebSocket Socket => socket;
        public void Dispose() => socket.Dispose();
    }

    /// <summary>Everything before the first sample, done before the phase starts: on a busy machine
    /// the token, the site and the connection can take longer than a short (smoke) phase.</summary>
    public static async Task<Prepared> PrepareAsync(HttpClient http, Uri baseAddress, string dataDirectory, CancellationToken ct)
    {
        // The probe's site belongs to the admin client's own merchant: a token reads only its merchant's sites.
        var (token, merchantId) = await AdminClient.TokenAsync(http, baseAddress, dataDirectory, ct);
        using var create = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, "/admin/sites"))
        {
            Content = JsonContent.Create(new { merchantId, domain = "probe.example" }),
        };
        create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var site = JsonDocument.Parse(await (await http.SendAsync(create, ct)).Content.ReadAsStringAsync(ct)).RootElement;
        string siteId = site.GetProperty("id").GetString()!;
        string siteKey = site.GetProperty("siteKey").GetString()!;

        var ws = new UriBuilder(baseAddress) { Scheme = "ws", Path = "/v1/ws" }.Uri;
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36 freshness-probe");
        try
        {
            await socket.ConnectAsync(ws, ct);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new Prepared(token, siteId, siteKey, socket);
    }

    public static async Task<Result> RunAsync(Prepared probe, HttpClient http, Uri baseAddress, CancellationToken stop)
    {
        var (token, siteId, siteKey, socket) = (probe.Token, probe.SiteId, probe.SiteKey, probe.Socket);
        var samples = new List<double>();
        var buffer = new byte[4096];
        string day = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        long sent = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var batch = new EventBatch { SiteKey = siteKey, Seq = (ulong)++sent };
                batch.Events.Add(new Event { Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Name = "pageview", Url = "https://probe.example/" });
                var sentAt = Stopwatch.StartNew();
                await socket.SendAsync(batch.ToByteArray(), WebSocketMessageType.Binary, true, stop);
                await socket.ReceiveAsync(buffer, stop);
                while (!stop.IsCancellationRequested)
                {
                    using var query = new HttpRequestMessage(HttpMethod.Get, new Uri(baseAddress, $"/v1/sites/{siteId}/aggregate?metrics=pageviews&from={day}&to={day}"));
                    query.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    using var answer = await http.SendAsync(query, stop);
                    var json = JsonDocument.Parse(await answer.Content.ReadAsStringAsync(stop)).RootElement;
                    if (json.GetProperty("results").GetProperty("pageviews").GetInt64() >= sent)
                    {
                        samples.Add(sentAt.Elapsed.TotalMilliseconds);
                        break;
                    }
                    await Task.Delay(20, stop);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The phase ended; an unfinished sample is dropped.
        }
        samples.Sort();
        if (samples.Count == 0) return new Result(0, double.NaN, double.NaN, double.NaN, sent);
        double Percentile(double p) => samples[Math.Min(samples.Count - 1, (int)Math.Ceiling(p * samples.Count) - 1)];
        return new Result(samples.Count, Percentile(0.50), Percentile(0.99), samples[^1], sent);
    }
}
