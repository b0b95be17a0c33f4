using Analytics.ControlPlane;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Validation;
using BenchmarkDotNet.Attributes;

namespace Analytics.Benchmarks;

/// <summary>
/// What the hostile-traffic checks add to one batch of 50 events on the hot path: the per-IP and
/// per-site token buckets (TokenBuckets, keyed and computed on demand; limits set so they never
/// refuse), and the origin check of a connection's first batch. Per-event cost =
/// mean / 50. The origin check runs once per connection and site policy, not per batch.
/// </summary>
[MemoryDiagnoser]
public class TrafficLimitsBenchmarks
{
    private TrafficLimits _limits = null!;
    private readonly OriginPolicy _origins = OriginPolicy.For("shop.example", ["https://shop.example", "https://*.cdn.example"]);
    private UInt128 _ip;

    [GlobalSetup]
    public void Setup()
    {
        _limits = new TrafficLimits(new IngestLimits { MaxEventsPerSecondPerIp = 1e9, EventBurstPerIp = 1e9, MaxEventsPerSecondPerSite = 1e9, EventBurstPerSite = 1e9 });
        _ip = UInt128.Parse("281473902969089", System.Globalization.CultureInfo.InvariantCulture); // ::ffff:203.0.113.1
    }

    [GlobalCleanup]
    public void Cleanup() => _limits.Dispose();

    [Benchmark]
    public bool BucketsPerIpAndSiteForABatchOf50() => _limits.TryAcquireIp(_ip, 50, out _) && _limits.TryAcquireSite(42, 50, out _);

    [Benchmark]
    public bool OriginCheck() => _origins.Allows("https://a.cdn.example");
}
