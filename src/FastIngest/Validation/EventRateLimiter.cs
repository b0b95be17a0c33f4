using System.Diagnostics;

namespace Analytics.FastIngest.Validation;

/// <summary>
/// Token bucket of events for one WebSocket connection: <see cref="IngestLimits.MaxEventsPerSecondPerConnection"/>
/// refill, <see cref="IngestLimits.EventBurstPerConnection"/> capacity. A batch that does not fit
/// is refused whole with RETRY and the wait until it would fit, so one socket cannot take the
/// server for itself. Hand-written rather than System.Threading.RateLimiting's token bucket:
/// that one replenishes on a timer per limiter, which 10k idle connections should not pay for;
/// this one is two fields computed on demand. Not thread-safe: one per connection, used by its
/// receive loop only.
/// </summary>
public sealed class EventRateLimiter(double eventsPerSecond, double burst)
{
    private readonly double _burst = burst;
    private double _tokens = burst;
    private long _last = Stopwatch.GetTimestamp();

    /// <summary>Takes <paramref name="events"/> tokens, or returns how long until they would be there.</summary>
    public bool TryAcquire(int events, out TimeSpan retryAfter)
    {
        long now = Stopwatch.GetTimestamp();
        _tokens = Math.Min(_burst, _tokens + Stopwatch.GetElapsedTime(_last, now).TotalSeconds * eventsPerSecond);
        _last = now;
        // A batch larger than the burst takes a full bucket (as TrafficLimits' buckets do), else it
        // could never fit and would be answered RETRY forever.
        double need = Math.Min(events, _burst);
        if (need <= _tokens)
        {
            _tokens -= need;
            retryAfter = TimeSpan.Zero;
            return true;
        }
        double missing = need - _tokens;
        retryAfter = TimeSpan.FromSeconds(Math.Max(missing, 1) / eventsPerSecond);
        return false;
    }
}
