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
/// Freshness: while the ingest phase loads the server, a probe sends one pageview every
/// <c>interval</c> to a site of its own and measures, per pageview, from just before its send
/// until the query API counts it. That is the delay a merchant sees on a dashboard (the
/// requirement is at most one hour; we aim for seconds). Sends do not wait for the previous
/// pageview to become visible, so a slow Rollup still yields one sample per interval (a probe
/// that waited produced 1-3 samples in 10 s at 100,000 events/s, which is no percentile).
/// Pageviews of one socket are appended and stored in order, so a count of k means the first k
/// are visible. When the phase ends the probe stops sending and keeps polling (up to
/// <see cref="Grace"/>) until every pageview sent is counted; those that never are reported as
/// unfinished rather than dropped, because they are the slowest. Percentiles need at least
/// <see cref="MinimumSamples"/> samples; below that the report says "not measured (N samples)".
/// </summary>
public static class FreshnessProbe
{
    /// <summary>Fewer samples than this give no percentile (issue #17: a p99 needs at least 60).</summary>
    public const int MinimumSamples = 60;

    /// <summary>How long, after the phase, the probe waits for pageviews still not visible.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    /// <summary>How often the aggregate is polled: the resolution of every sample.</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    /// <param name="Samples">Pageviews counted by the query API (one sample each).</param>
    /// <param name="P50Ms">Null (like <paramref name="P95Ms"/> and <paramref name="P99Ms"/>) below <see cref="MinimumSamples"/> samples.</param>
    /// <param name="Percentiles">"measured", or "not measured (N samples)" when the percentiles are null.</param>
    /// <param name="Unfinished">Pageviews sent and acknowledged that the query API had not counted <see cref="Grace"/> after the phase.</param>
    /// <param name="IntervalMs">One pageview sent per this many milliseconds.</param>
    public sealed record Result(int Samples, double? P50Ms, double? P95Ms, double? P99Ms, double MaxMs, long EventsSent,
        string Percentiles = "measured", int Unfinished = 0, double IntervalMs = 0)
    {
        public bool Measured => P99Ms is not null;

        /// <summary>A percentile for a table: the number, or "not measured (N samples)".</summary>
        public string Show(double? percentileMs) =>
            percentileMs is double v ? v.ToString("N0", CultureInfo.InvariantCulture) : $"not measured ({Samples} samples)";
    }

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

    /// <summary>
    /// Sends until <paramref name="stopSending"/>, then waits for the outstanding pageviews (up to
    /// <see cref="Grace"/>); <paramref name="abort"/> ends everything (Ctrl+C).
    /// </summary>
    public static async Task<Result> RunAsync(Prepared probe, HttpClient http, Uri baseAddress, TimeSpan interval, CancellationToken stopSending, CancellationToken abort)
    {
        var sentAt = new List<long>(); // Stopwatch timestamps, index k-1 for the k-th pageview; under the lock
        var samples = new List<double>();
        using var sendingDone = new CancellationTokenSource();
        var sender = SendAsync(probe, interval, sentAt, stopSending, abort);
        var poller = PollAsync(probe, http, baseAddress, sentAt, samples, sendingDone.Token, abort);
        long sent;
        try
        {
            sent = await sender;
        }
        finally
        {
            await sendingDone.CancelAsync();
        }
        await poller;

        samples.Sort();
        // A pageview whose ack the end of the phase cut off can still be counted: never below 0.
        int unfinished = (int)Math.Max(0, sent - samples.Count);
        double intervalMs = interval.TotalMilliseconds;
        if (samples.Count < MinimumSamples)
        {
            return new Result(samples.Count, null, null, null, samples.Count == 0 ? double.NaN : samples[^1], sent,
                $"not measured ({samples.Count} samples)", unfinished, intervalMs);
        }
        double Percentile(double p) => samples[Math.Min(samples.Count - 1, (int)Math.Ceiling(p * samples.Count) - 1)];
        return new Result(samples.Count, Percentile(0.50), Percentile(0.95), Percentile(0.99), samples[^1], sent, "measured", unfinished, intervalMs);
    }

    /// <summary>One pageview per interval on a fixed schedule, each sent after the previous one's ack; returns how many were acknowledged.</summary>
    private static async Task<long> SendAsync(Prepared probe, TimeSpan interval, List<long> sentAt, CancellationToken stop, CancellationToken abort)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, abort);
        var buffer = new byte[4096];
        long sent = 0;
        long next = Stopwatch.GetTimestamp();
        long step = (long)(interval.TotalSeconds * Stopwatch.Frequency);
        try
        {
            while (!linked.IsCancellationRequested)
            {
                var batch = new EventBatch { SiteKey = probe.SiteKey, Seq = (ulong)sent + 1 };
                batch.Events.Add(new Event { Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()), Name = "pageview", Url = "https://probe.example/" });
                long at = Stopwatch.GetTimestamp();
                lock (sentAt) sentAt.Add(at);
                await probe.Socket.SendAsync(batch.ToByteArray(), WebSocketMessageType.Binary, true, linked.Token);
                await probe.Socket.ReceiveAsync(buffer, linked.Token);
                sent++;
                // A late ack moves the schedule rather than sending a burst to catch up.
                next = Math.Max(next + step, Stopwatch.GetTimestamp());
                await Task.Delay(Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next), linked.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException && stop.IsCancellationRequested && !abort.IsCancellationRequested)
        {
            // The phase ended. A pageview sent but not yet acknowledged is not counted as sent; if
            // the server stores it anyway, the counts below only reach it sooner.
        }
        lock (sentAt)
        {
            if (sentAt.Count > sent) sentAt.RemoveRange((int)sent, sentAt.Count - (int)sent);
        }
        abort.ThrowIfCancellationRequested();
        return sent;
    }

    /// <summary>Polls the probe site's pageview count; every newly counted pageview is one sample.
    /// After <paramref name="sendingDone"/> it goes on until all are counted or <see cref="Grace"/> has passed.</summary>
    private static async Task PollAsync(Prepared probe, HttpClient http, Uri baseAddress, List<long> sentAt, List<double> samples, CancellationToken sendingDone, CancellationToken abort)
    {
        string day = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var query = new Uri(baseAddress, $"/v1/sites/{probe.SiteId}/aggregate?metrics=pageviews&from={day}&to={day}");
        long? graceEnds = null;
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, query);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", probe.Token);
            using var answer = await http.SendAsync(request, abort);
            var json = JsonDocument.Parse(await answer.Content.ReadAsStringAsync(abort)).RootElement;
            long counted = json.GetProperty("results").GetProperty("pageviews").GetInt64();
            long now = Stopwatch.GetTimestamp();
            int total;
            lock (sentAt)
            {
                total = sentAt.Count;
                for (int k = samples.Count; k < Math.Min(counted, total); k++) samples.Add(Stopwatch.GetElapsedTime(sentAt[k], now).TotalMilliseconds);
            }
            if (sendingDone.IsCancellationRequested)
            {
                graceEnds ??= now + (long)(Grace.TotalSeconds * Stopwatch.Frequency);
                lock (sentAt) total = sentAt.Count; // final once sending is done
                if (samples.Count >= total || now > graceEnds) return;
            }
            await Task.Delay(PollInterval, abort);
        }
    }
}
