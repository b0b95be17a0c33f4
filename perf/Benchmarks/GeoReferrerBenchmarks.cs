using Analytics.Enrichment.Geo;
using Analytics.Enrichment.Referrers;
using BenchmarkDotNet.Attributes;

namespace Analytics.Benchmarks;

/// <summary>
/// Enrichment lookups Rollup will make per event, over the real data the install step fetches
/// (scripts/fetch-enrichment-data.sh): GeoLite2 City by stored prefix, cached (the steady state:
/// a site's visitors come back from the same networks) and uncached (a cache of one entry, so
/// every lookup reads the database); and source/channel classification of a realistic referrer
/// and campaign mix. Each benchmark handles 1,000 events: the reported mean / 1,000 is ns/event.
/// </summary>
[MemoryDiagnoser]
public class GeoReferrerBenchmarks
{
    private const int Events = 1_000;
    private GeoLocator _cached = null!;
    private GeoLocator _uncached = null!;
    private ReferrerClassifier _referrers = null!;
    private string[] _prefixes = [];
    private (string Referrer, string Query)[] _visits = [];

    [GlobalSetup]
    public void Setup()
    {
        string data = EnrichmentData();
        _cached = GeoLocator.Open(Path.Combine(data, "geolite2", "GeoLite2-City.mmdb"));
        _uncached = GeoLocator.Open(Path.Combine(data, "geolite2", "GeoLite2-City.mmdb"), cacheCapacity: 1);
        _referrers = ReferrerClassifier.Load(Path.Combine(data, "referer-parser", "referers.yml"));
        var random = new Random(13);
        // Public /24s from all over the unicast space, one in eight an IPv6 /48.
        _prefixes = Enumerable.Range(0, Events).Select(i => i % 8 == 7
            ? $"2a0{random.Next(0, 10)}:{random.Next(0, 0xffff):x}:{random.Next(0, 0xffff):x}::/48"
            : $"{random.Next(1, 224)}.{random.Next(0, 256)}.{random.Next(0, 256)}.0/24").ToArray();
        (string, string)[] mix =
        [
            ("", ""), ("", ""), ("", ""),
            ("https://www.google.com/", ""), ("https://www.google.com/", ""), ("https://www.google.de/", "?gclid=abc"),
            ("https://www.bing.com/search?q=x", ""), ("https://duckduckgo.com/", ""),
            ("https://l.facebook.com/l.php?u=x", "?fbclid=abc"), ("https://t.co/abc", ""), ("https://www.instagram.com/", ""),
            ("https://chatgpt.com/", "?utm_source=chatgpt.com"), ("https://mail.google.com/mail/u/0/", ""),
            ("https://shop.example/cart", ""), ("https://some-blog.example.org/post/1", ""),
            ("", "?utm_source=newsletter&utm_medium=email&utm_campaign=spring"),
        ];
        _visits = Enumerable.Range(0, Events).Select(_ => mix[random.Next(mix.Length)]).ToArray();
        foreach (string prefix in _prefixes) _cached.Locate(prefix);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cached.Dispose();
        _uncached.Dispose();
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int GeoCached()
    {
        int n = 0;
        foreach (string prefix in _prefixes) n += _cached.Locate(prefix).Country.Length;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int GeoUncached()
    {
        int n = 0;
        foreach (string prefix in _prefixes) n += _uncached.Locate(prefix).Country.Length;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int SourceAndChannel()
    {
        int n = 0;
        foreach (var (referrer, query) in _visits) n += _referrers.Classify(referrer, "shop.example", query).Channel.Length;
        return n;
    }

    /// <summary>ANALYTICS_ENRICHMENT_DATA (test.sh and run.sh export it) or the repository's .cache/enrichment.</summary>
    private static string EnrichmentData()
    {
        if (Environment.GetEnvironmentVariable("ANALYTICS_ENRICHMENT_DATA") is { Length: > 0 } fromEnv) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Analytics.sln"))) return Path.Combine(dir.FullName, ".cache", "enrichment");
        throw new InvalidOperationException("enrichment data not found: run scripts/fetch-enrichment-data.sh");
    }
}
