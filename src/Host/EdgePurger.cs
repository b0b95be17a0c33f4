using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Analytics.ControlPlane;
using Analytics.QueryService.Http;
using Analytics.Rollup.Reprocessing;
using Analytics.Security;

namespace Analytics.Host;

/// <summary>
/// Tells the edge caches (`--edge-purge-url`, deploy/varnish/default.vcl) to drop answers that
/// changed or may no longer be served: each edge gets <c>PURGE</c> with <c>xkey: k1 k2 …</c>.
/// <list type="bullet">
/// <item>once Rollup activates a rebuilt site-day: <c>sd-S-D sm-S-M sy-S-Y</c>
/// (<see cref="SurrogateKeys.ForSiteDay"/>);</item>
/// <item>a revoked API key (<see cref="IAnswerInvalidation.CredentialRevoked"/>): its credential key
/// (<see cref="SurrogateKeys.Credential"/>), so the next request reaches this server and is refused;</item>
/// <item>a site whose goals or funnels changed (<see cref="IAnswerInvalidation.SiteChanged"/>): <c>s-S</c>.</item>
/// </list>
/// One component for every node with edges configured, whatever its roles: the node that serves
/// the change purges. Off the caller's path: callers only queue keys; a failing edge is retried
/// <see cref="Attempts"/> times with doubling backoff, then logged and counted
/// (<c>analytics.edge.purges{outcome}</c>), and the caller never waits for it. An edge that
/// missed a purge serves the old answer until its max-age runs out (an hour at most).
/// </summary>
public sealed partial class EdgePurger(ReprocessQueue queue, SiteRegistry registry, SurrogateKeys surrogateKeys, EdgePurgeTargets targets, IMeterFactory meters, ILogger<EdgePurger> logger)
    : BackgroundService, IAnswerInvalidation
{
    public const int Attempts = 4;
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(250);
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    // Each item names its keys when the loop gets to it: a site-day's need a control-plane lookup,
    // which must not run on the rebuild's path.
    private readonly Channel<Func<IReadOnlyList<string>>> _keys = Channel.CreateUnbounded<Func<IReadOnlyList<string>>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Counter<long> _purges = meters.Create(HostTelemetry.HostMeterName).CreateCounter<long>("analytics.edge.purges", description: "Purge requests to edge caches by outcome (ok, retried, failed)");

    /// <summary>Queues a purge of <paramref name="keys"/> at every edge; returns at once.</summary>
    private void Purge(IReadOnlyList<string> keys) => _keys.Writer.TryWrite(() => keys);

    public void CredentialRevoked(string credential) => Purge([surrogateKeys.Credential(credential)]);

    public void SiteChanged(string sitePublicId) => Purge([SurrogateKeys.Site(sitePublicId)]);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var http = new HttpClient { Timeout = RequestTimeout };
        queue.SiteDayActivated += Enqueue;
        try
        {
            await foreach (var keysOf in _keys.Reader.ReadAllAsync(stoppingToken))
            {
                var keys = keysOf();
                if (keys.Count == 0) continue;
                string header = string.Join(' ', keys);
                await Task.WhenAll(targets.Urls.Select(edge => PurgeAsync(http, edge, header, stoppingToken)));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            queue.SiteDayActivated -= Enqueue;
        }
    }

    // Only a process running reprocessing (the Rollup role) raises this; elsewhere it never fires.
    private void Enqueue(long merchantId, long siteId, DateOnly day) =>
        _keys.Writer.TryWrite(() => registry.FindById(siteId) is { } site ? SurrogateKeys.ForSiteDay(site.PublicId, day) : []);

    private async Task PurgeAsync(HttpClient http, Uri edge, string keys, CancellationToken ct)
    {
        string? error = await SendAsync(http, edge, keys, () => _purges.Add(1, new KeyValuePair<string, object?>("outcome", "retried")), ct);
        if (error is null)
        {
            _purges.Add(1, new KeyValuePair<string, object?>("outcome", "ok"));
            LogPurged(edge, keys);
            return;
        }
        _purges.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
        LogPurgeFailed(edge, keys, Attempts, error);
    }

    /// <summary>
    /// <c>PURGE</c> with <c>xkey: keys</c> at <paramref name="edge"/>, tried <see cref="Attempts"/>
    /// times with doubling backoff (<paramref name="retrying"/> is called before each retry).
    /// Returns null once the edge answered 2xx, else the last attempt's error. Also used by the
    /// offline CLI (`analytics keys revoke --edge-purge-url`), which has no purger running.
    /// </summary>
    public static async Task<string?> SendAsync(HttpClient http, Uri edge, string keys, Action? retrying, CancellationToken ct)
    {
        var backoff = FirstBackoff;
        for (int attempt = 1; ; attempt++)
        {
            string error;
            try
            {
                using var request = new HttpRequestMessage(new HttpMethod("PURGE"), edge);
                request.Headers.TryAddWithoutValidation("xkey", keys);
                using var response = await http.SendAsync(request, ct);
                if (response.IsSuccessStatusCode) return null;
                error = $"HTTP {(int)response.StatusCode}";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                error = e.Message;
            }
            if (attempt == Attempts) return error;
            retrying?.Invoke();
            await Task.Delay(backoff, ct);
            backoff *= 2;
        }
    }

    [LoggerMessage(EventId = 3301, Level = LogLevel.Information, Message = "Edge {Edge} purged {Keys}")]
    private partial void LogPurged(Uri edge, string keys);

    [LoggerMessage(EventId = 3302, Level = LogLevel.Warning, Message = "Edge {Edge} did not purge {Keys} after {Attempts} attempts ({Error}); it serves old answers until their max-age ends")]
    private partial void LogPurgeFailed(Uri edge, string keys, int attempts, string error);
}

/// <summary>The edge caches' purge URLs (`--edge-purge-url`); empty: no notifier runs.</summary>
public sealed record EdgePurgeTargets(IReadOnlyList<Uri> Urls);
