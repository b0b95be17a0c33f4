using System.Diagnostics.Metrics;

namespace Analytics.Enrichment;

/// <summary>
/// Cache effectiveness of enrichment (meter "Analytics.Enrichment"): one counter of lookups by
/// cache (user_agent, geo) and result (hit, miss). A hit costs one Counter.Add with two
/// preallocated tags: nothing allocated, a few tens of nanoseconds while exported, about 1 ns
/// when nothing listens; a miss costs a full parse (tens of microseconds) anyway.
/// </summary>
public static class EnrichmentTelemetry
{
    public const string MeterName = "Analytics.Enrichment";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> CacheRequests = Meter.CreateCounter<long>("analytics_enrichment_cache_requests", "{lookup}",
        "Enrichment cache lookups by cache (user_agent, geo) and result (hit, miss).");

    private static readonly KeyValuePair<string, object?> Hit = new("result", "hit");
    private static readonly KeyValuePair<string, object?> Miss = new("result", "miss");
    private static readonly KeyValuePair<string, object?> UserAgentCache = new("cache", "user_agent");
    private static readonly KeyValuePair<string, object?> GeoCache = new("cache", "geo");

    internal static void UserAgent(bool hit) => CacheRequests.Add(1, UserAgentCache, hit ? Hit : Miss);
    internal static void Geo(bool hit) => CacheRequests.Add(1, GeoCache, hit ? Hit : Miss);
}
