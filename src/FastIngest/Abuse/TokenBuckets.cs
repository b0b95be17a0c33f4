using System.Collections.Concurrent;
using System.Diagnostics;

namespace Analytics.FastIngest.Abuse;

/// <summary>
/// Token buckets of events, one per key (an IP address, a site), shared by every connection and
/// request: <c>perSecond</c> refill, <c>burst</c> capacity, a request that does not fit refused
/// whole with the wait until it would fit (at least <see cref="MinimumRetryAfter"/>).
///
/// Hand-written rather than System.Threading.RateLimiting's partitioned token buckets, which
/// these replaced: that limiter allocated a closure on every acquire (~40 B, 80 B per batch for
/// the IP and the site), took one lock shared by all keys, and refilled on a timer. Here a bucket
/// is two numbers computed on demand at each acquire (like EventRateLimiter), found without
/// allocating, locked alone. A full bucket is the same as no bucket, so buckets that have
/// refilled are dropped at most every <see cref="SweepPeriod"/> by the acquire that notices the
/// time (10,000 idle addresses cost memory only until then, and no timer).
///
/// Checked against the library's TokenBucketRateLimiter (TokenBucketsTests: the same requests on
/// one clock, granted and refused alike; refill from whole 100 ns ticks in both). Two differences,
/// both on the strict side. The library, replenished on a timer as the partitioned limiter did,
/// does not move its clock while its bucket is full, so the first replenishment after a drain
/// credits the whole time it sat full: after an idle spell it let a second full burst through
/// 100 ms after the first. Here no span T ever lets more than burst + rate x T through. And a
/// refusal here tells the exact wait (a tick over, so a retry at that instant is granted), where
/// the library tells whole replenishment periods, rounded down.
/// </summary>
internal sealed class TokenBuckets<TKey>(double perSecond, double burst) where TKey : notnull
{
    /// <summary>The shortest wait a refused request is told: less only invites an immediate resend.</summary>
    internal static readonly TimeSpan MinimumRetryAfter = TimeSpan.FromMilliseconds(100);

    private static readonly long SweepPeriod = Stopwatch.Frequency * 10;

    private readonly ConcurrentDictionary<TKey, Bucket> _buckets = new();
    private long _nextSweep = Stopwatch.GetTimestamp() + SweepPeriod;

    public int Count => _buckets.Count;

    /// <summary>Takes <paramref name="permits"/> tokens from <paramref name="key"/>'s bucket, or says how long until they would be there.</summary>
    public bool TryAcquire(TKey key, int permits, out TimeSpan retryAfter) =>
        TryAcquire(key, permits, Stopwatch.GetTimestamp(), out retryAfter);

    /// <summary>The same at a given <see cref="Stopwatch"/> timestamp, so that a test drives these buckets and the library's on one clock.</summary>
    internal bool TryAcquire(TKey key, int permits, long now, out TimeSpan retryAfter)
    {
        if (now >= Volatile.Read(ref _nextSweep)) Sweep(now);
        while (true)
        {
            var bucket = _buckets.GetOrAdd(key, static (_, start) => new Bucket(start.burst, start.now), (burst, now));
            lock (bucket.Gate)
            {
                // Dropped by a sweep between the lookup and the lock: look again (a new bucket is full anyway).
                if (bucket.Dropped) continue;
                bucket.Refill(now, perSecond, burst);
                if (permits <= bucket.Tokens)
                {
                    bucket.Tokens -= permits;
                    retryAfter = TimeSpan.Zero;
                    return true;
                }
                // Rounded up to the tick and one over (TimeSpan.FromSeconds truncates, and the refill is
                // computed in floating point), so that a retry at exactly this wait finds the tokens there.
                retryAfter = TimeSpan.FromTicks((long)Math.Ceiling((permits - bucket.Tokens) / perSecond * TimeSpan.TicksPerSecond) + 1);
                if (retryAfter < MinimumRetryAfter) retryAfter = MinimumRetryAfter;
                return false;
            }
        }
    }

    private void Sweep(long now)
    {
        long due = Volatile.Read(ref _nextSweep);
        // One acquire sweeps; the others go on.
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + SweepPeriod, due) != due) return;
        foreach (var (key, bucket) in _buckets)
        {
            lock (bucket.Gate)
            {
                bucket.Refill(now, perSecond, burst);
                if (bucket.Tokens < burst) continue;
                bucket.Dropped = true;
            }
            _buckets.TryRemove(new KeyValuePair<TKey, Bucket>(key, bucket));
        }
    }

    private sealed class Bucket(double tokens, long last)
    {
        public readonly Lock Gate = new();
        public double Tokens = tokens;
        public bool Dropped;
        private long _last = last;

        public void Refill(long now, double perSecond, double burst)
        {
            if (now <= _last) return;
            Tokens = Math.Min(burst, Tokens + Stopwatch.GetElapsedTime(_last, now).TotalSeconds * perSecond);
            _last = now;
        }
    }
}
