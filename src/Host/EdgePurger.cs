using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Analytics.ControlPlane;
using Analytics.QueryService.Http;
using Analytics.Rollup.Reprocessing;

namespace Analytics.Host;

/// <summary>
/// Tells the edge caches (`--edge-purge-url`, deploy/varnish/default.vcl) to drop the answers a
/// reprocessed site-day changed: once Rollup activates a rebuilt site-day, each edge gets
/// <c>PURGE</c> with <c>xkey: sd-S-D sm-S-M sy-S-Y</c> (<see cref="SurrogateKeys.ForSiteDay"/>).
/// Off the rebuild's path: the hook only queues the day; a failing edge is retried
/// <see cref="Attempts"/> times with doubling backoff, then logged and counted
/// (<c>analytics.edge.purges{outcome}</c>), and the rebuild never waits for it. An edge that
/// missed a purge serves the old answer until its max-age runs out (an hour at most).
/// </summary>
public sealed partial class EdgePurger(ReprocessQueue queue, SiteRegistry registry, EdgePurgeTargets targets, IMeterFactory meters, ILogger<EdgePurger> logger) : BackgroundService
{
    public const int Attempts = 4;
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(250);
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    private readonly Channel<(long SiteId, DateOnly Day)> _days = Channel.CreateUnbounded<(long, DateOnly)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Counter<long> _purges = meters.Create(HostTelemetry.HostMeterName).CreateCounter<long>("analytics.edge.purges", description: "Purge requests to edge caches by outcome (ok, retried, failed)");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var http = new HttpClient { Timeout = RequestTimeout };
        queue.SiteDayActivated += Enqueue;
        try
        {
            await foreach (var (siteId, day) in _days.Reader.ReadAllAsync(stoppingToken))
            {
                if (registry.FindById(siteId) is not { } site) continue;
                string keys = string.Join(' ', SurrogateKeys.ForSiteDay(site.PublicId, day));
                await Task.WhenAll(targets.Urls.Select(edge => PurgeAsync(http, edge, keys, stoppingToken)));
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

    private void Enqueue(long merchantId, long siteId, DateOnly day) => _days.Writer.TryWrite((siteId, day));

    private async Task PurgeAsync(HttpClient http, Uri edge, string keys, CancellationToken ct)
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
                if (response.IsSuccessStatusCode)
                {
                    _purges.Add(1, new KeyValuePair<string, object?>("outcome", "ok"));
                    LogPurged(edge, keys);
                    return;
                }
                error = $"HTTP {(int)response.StatusCode}";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                error = e.Message;
            }
            if (attempt == Attempts)
            {
                _purges.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
                LogPurgeFailed(edge, keys, attempt, error);
                return;
            }
            _purges.Add(1, new KeyValuePair<string, object?>("outcome", "retried"));
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
