using System.Diagnostics;
using System.Reflection;
using System.Threading.RateLimiting;
using Analytics.FastIngest.Abuse;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// <see cref="TokenBuckets{TKey}"/> is a hand-written replacement of System.Threading.RateLimiting's
/// <see cref="TokenBucketRateLimiter"/>, so it is checked against that library: the same capacity
/// and refill rate, the same acquisitions at the same instants, the same answers.
///
/// One clock for both: the library reads <see cref="Stopwatch"/> itself; its replenishment at a
/// given timestamp is its private <c>ReplenishInternal(long)</c>, the hook dotnet/runtime's own
/// rate-limiting tests drive it through, by reflection as here. With <c>AutoReplenishment</c> off a
/// replenishment adds rate × time since the previous one (in whole 100 ns ticks), fractions of a
/// token included, capped at the limit: the same arithmetic as ours, so the answers are compared
/// exactly. A refused request retried after the wait we told must then be granted: that wait is
/// one tick over the exact one, so the retry is not a tie left to floating-point rounding.
///
/// Where they differ (the second test): a replenishment that finds the library's bucket full
/// returns without moving its clock, so the first one after the bucket is drained credits all the
/// time it sat full. Replenished on a timer, as the partitioned limiter that ingest used before
/// did every 100 ms, a bucket idle for a while lets a second full burst through right after the
/// first. Ours counts from the last acquire and never lets more than burst + rate × T through in
/// any span T, which the first test checks over every span of every sequence.
/// </summary>
public sealed class TokenBucketsTests
{
    private static readonly long StampsPerSecond = Stopwatch.Frequency;

    /// <summary>Seed, then the library's rate (tokens per period) and capacity.</summary>
    public static TheoryData<int, int, double, int> Sequences()
    {
        var data = new TheoryData<int, int, double, int>();
        foreach (int seed in new[] { 1, 2, 3 })
        {
            data.Add(seed, 7, 3, 10);     // 2.33/s: every refill leaves a fraction of a token
            data.Add(seed, 50, 1, 200);   // ingest's scale: bursts of whole batches
            data.Add(seed, 1, 10, 3);     // 0.1/s: idle gaps of tens of seconds
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Sequences))]
    public void Grants_and_refuses_the_same_requests_as_the_library_replenished_before_each_acquire(int seed, int tokensPerPeriod, double periodSeconds, int burst)
    {
        const int keys = 3, steps = 3000;
        double perSecond = tokensPerPeriod / periodSeconds;
        var rng = new Random(seed);
        // An hour ahead of now: later than the libraries' construction, so their clocks can be set to it.
        long start = Stopwatch.GetTimestamp() + 3600 * StampsPerSecond;
        var ours = new TokenBuckets<int>(perSecond, burst);
        var library = new LibraryBucket[keys];
        var grants = new List<(long At, int Permits)>[keys];
        var refused = new (long At, int Permits, TimeSpan RetryAfter)?[keys];
        for (int k = 0; k < keys; k++)
        {
            library[k] = new LibraryBucket(tokensPerPeriod, TimeSpan.FromSeconds(periodSeconds), burst, start);
            grants[k] = [];
        }

        long now = start;
        for (int step = 0; step < steps; step++)
        {
            // Every key acquires first at the start, when both buckets are full on one clock; after
            // an acquire the library's bucket is never full at the next replenishment (a grant takes
            // at least one token, a refusal means fewer than asked), so its clock never lags ours.
            int key = step < keys ? step : rng.Next(keys);
            int permits = rng.Next(4) == 0 ? rng.Next(1, burst + 1) : rng.Next(1, Math.Max(2, burst / 4 + 1));
            bool retry = false;
            if (step >= keys)
            {
                switch (rng.Next(10))
                {
                    case < 4: // a burst: within a millisecond
                        now += rng.NextInt64(0, StampsPerSecond / 1000);
                        break;
                    case < 8: // up to two tokens' worth: partial tokens
                        now += Stamps(rng.NextDouble() * 2 / perSecond);
                        break;
                    case 8: // idle longer than a full refill
                        now += Stamps(burst / perSecond * (1 + 2 * rng.NextDouble()));
                        break;
                    default: // the refused request again, after the wait we told
                        if (refused[key] is { } last && last.At + Stamps(last.RetryAfter) >= now)
                        {
                            now = last.At + Stamps(last.RetryAfter);
                            permits = last.Permits;
                            retry = true;
                        }
                        break;
                }
            }

            library[key].ReplenishAt(now);
            bool theirs = library[key].TryAcquire(permits);
            bool mine = ours.TryAcquire(key, permits, now, out var retryAfter);
            string at = $"seed {seed}, step {step}: key {key} asked {permits} at {(now - start) / (double)StampsPerSecond:F7} s";
            Assert.True(theirs == mine, $"{at}: the library {(theirs ? "granted" : "refused")}, ours {(mine ? "granted" : "refused")}");
            if (retry) Assert.True(mine, $"{at}: retried after the {refused[key]!.Value.RetryAfter} we told, and refused");
            if (mine)
            {
                grants[key].Add((now, permits));
                refused[key] = null;
            }
            else
            {
                Assert.True(retryAfter >= TokenBuckets<int>.MinimumRetryAfter, $"{at}: told to retry after {retryAfter}");
                refused[key] = (now, permits, retryAfter);
            }
        }

        for (int k = 0; k < keys; k++) AssertTokenBucketBound(grants[k], perSecond, burst, $"seed {seed}, key {k}");
    }

    [Fact]
    public void The_library_on_a_timer_credits_the_time_its_full_bucket_sat_idle_and_lets_a_second_burst_through_where_ours_does_not()
    {
        const int burst = 10;
        long start = Stopwatch.GetTimestamp() + 3600 * StampsPerSecond;
        long tick = StampsPerSecond / 10;
        var library = new LibraryBucket(1, TimeSpan.FromSeconds(1), burst, start);
        var ours = new TokenBuckets<int>(1, burst);
        Assert.True(ours.TryAcquire(0, 1, start, out _));
        Assert.True(library.TryAcquire(1));

        // A minute idle, the library replenished every 100 ms like the partitioned limiter's timer did.
        long now = start;
        for (int i = 0; i < 600; i++) library.ReplenishAt(now += tick);
        Assert.True(library.TryAcquire(burst));
        Assert.True(ours.TryAcquire(0, burst, now, out _));

        // 100 ms later: the library credits the minute it sat full; ours has a tenth of a token.
        library.ReplenishAt(now += tick);
        Assert.True(library.TryAcquire(burst), "the library no longer credits the time its bucket sat full: TokenBuckets' comment is out of date");
        Assert.False(ours.TryAcquire(0, burst, now, out var retryAfter));
        Assert.Equal(9.9, retryAfter.TotalSeconds, 6);
        AssertTokenBucketBound([(now - tick, burst)], 1, burst, "ours");
    }

    /// <summary>The definition of a token bucket of capacity b and rate r: at most b + r·T tokens in any span of T.</summary>
    private static void AssertTokenBucketBound(List<(long At, int Permits)> grants, double perSecond, int burst, string what)
    {
        var taken = new long[grants.Count + 1];
        for (int i = 0; i < grants.Count; i++) taken[i + 1] = taken[i] + grants[i].Permits;
        for (int i = 0; i < grants.Count; i++)
        {
            for (int j = i; j < grants.Count; j++)
            {
                double span = (grants[j].At - grants[i].At) / (double)StampsPerSecond;
                double allowed = burst + perSecond * span;
                if (taken[j + 1] - taken[i] > allowed + 1e-6)
                    Assert.Fail($"{what}: {taken[j + 1] - taken[i]} tokens granted in {span:F7} s, at most {allowed:F3} allowed");
            }
        }
    }

    private static long Stamps(double seconds) => (long)(seconds * StampsPerSecond);

    /// <summary>Rounded up: the retry comes no sooner than the wait told.</summary>
    private static long Stamps(TimeSpan span) => (long)Math.Ceiling(span.TotalSeconds * StampsPerSecond);

    /// <summary>One library token bucket, replenished by hand at given timestamps.</summary>
    private sealed class LibraryBucket
    {
        private static readonly MethodInfo ReplenishInternal =
            typeof(TokenBucketRateLimiter).GetMethod("ReplenishInternal", BindingFlags.NonPublic | BindingFlags.Instance, [typeof(long)])
            ?? throw new InvalidOperationException("TokenBucketRateLimiter.ReplenishInternal(long), the library's own test hook, is gone: drive it another way");

        private readonly TokenBucketRateLimiter _limiter;

        public LibraryBucket(int tokensPerPeriod, TimeSpan period, int burst, long start)
        {
            _limiter = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = burst,
                TokensPerPeriod = tokensPerPeriod,
                ReplenishmentPeriod = period,
                AutoReplenishment = false,
                QueueLimit = 0,
            });
            // Its clock starts at construction, in real time. A token taken and a replenishment at
            // start (an hour later: a whole token at the slowest rate here) set it to start, full.
            Assert.True(TryAcquire(1));
            ReplenishAt(start);
            Assert.Equal(burst, _limiter.GetStatistics()!.CurrentAvailablePermits);
        }

        public void ReplenishAt(long timestamp) => ReplenishInternal.Invoke(_limiter, [timestamp]);

        public bool TryAcquire(int permits)
        {
            using var lease = _limiter.AttemptAcquire(permits);
            return lease.IsAcquired;
        }
    }
}

/// <summary>The per-connection limiter (a bucket of its own, not a TokenBuckets entry).</summary>
public class EventRateLimiterTests
{
    [Fact]
    public void A_batch_larger_than_the_burst_takes_a_full_bucket_instead_of_waiting_forever()
    {
        var limiter = new Analytics.FastIngest.Validation.EventRateLimiter(eventsPerSecond: 50, burst: 250);
        Assert.True(limiter.TryAcquire(300, out var wait), "a full bucket lets a larger batch through");
        Assert.Equal(TimeSpan.Zero, wait);
        Assert.False(limiter.TryAcquire(300, out wait), "the bucket is empty now");
        // The wait is what fills the bucket again (250 events at 50/s), not what 300 would need.
        Assert.InRange(wait.TotalSeconds, 4.5, 5.0);
    }
}
