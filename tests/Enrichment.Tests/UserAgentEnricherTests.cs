using Analytics.Enrichment.Bots;
using Analytics.Enrichment.UserAgents;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// The cached facade: same answers as the uncached parts (uap-core parse, bot list, device rules)
/// for every user agent of uap-core's test_ua.yaml, bounded memory, no allocation on a hit.
/// </summary>
public class UserAgentEnricherTests
{
    private static readonly Lazy<BotDetector> LazyBots = new(() => BotDetector.Load(EnrichmentData.CrawlerUserAgentsJson));

    private static UserAgentEnricher NewEnricher(int capacity) => new(SharedParsers.UserAgents, LazyBots.Value, capacity);

    private static List<string> TestUserAgents() => UapTestCases.Load("test_ua.yaml").Select(c => c["user_agent_string"]!).Distinct().ToList();

    [Fact]
    public void Cached_answers_equal_uncached_ones_even_when_the_cache_is_far_smaller_than_the_traffic()
    {
        var enricher = NewEnricher(capacity: 64);
        var hints = new ClientHints("?0", "\"Windows\"", "", "");
        var uas = TestUserAgents();
        // Twice over, so the second round mixes hits, evictions and misses.
        foreach (string ua in uas.Concat(uas))
        {
            var parsed = SharedParsers.UserAgents.Parse(ua);
            var reason = LazyBots.Value.Reason(ua, parsed);
            string expectedDevice = reason != BotReason.None ? DeviceTypes.Bot : DeviceClassifier.Classify(ua, parsed, hints, 1280);
            Assert.Equal(new UserAgentInfo(parsed, expectedDevice, reason), enricher.Describe(ua, hints, 1280));
        }
        Assert.Equal(64, enricher.Capacity);
    }

    [Fact]
    public void A_cache_hit_allocates_nothing()
    {
        var enricher = NewEnricher(UserAgentEnricher.DefaultCapacity);
        // A fresh string with the same content: Rollup decodes a new string per event.
        string ua = new("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1".AsSpan());
        var hints = new ClientHints("?1", "\"iOS\"", "", "\"Mobile\"");
        var first = enricher.Describe(ua, hints, 390);
        Assert.Equal(DeviceTypes.Mobile, first.DeviceType);
        string again = new(ua.AsSpan());
        for (int i = 0; i < 100; i++) enricher.Describe(again, hints, 390); // warm (tiered JIT)

        long before = GC.GetAllocatedBytesForCurrentThread();
        UserAgentInfo info = default;
        for (int i = 0; i < 1000; i++) info = enricher.Describe(again, hints, 390);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(first, info);
    }

    [Fact]
    public void Concurrent_callers_get_the_same_answers_as_a_single_caller()
    {
        var enricher = NewEnricher(capacity: 128);
        var uas = TestUserAgents().Take(300).ToList();
        var expected = uas.Select(ua => NewEnricher(4).Describe(ua, ClientHints.None, 0)).ToList();
        Parallel.For(0, 4, _ =>
        {
            for (int round = 0; round < 3; round++)
                for (int i = 0; i < uas.Count; i++)
                    Assert.Equal(expected[i], enricher.Describe(uas[i], ClientHints.None, 0));
        });
    }

    [Fact]
    public void Load_reads_both_data_sets_from_the_data_root()
    {
        var enricher = UserAgentEnricher.Load(EnrichmentData.Root, capacity: 128);
        var info = enricher.Describe("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36", ClientHints.None, 412);
        Assert.Equal(new ClientDescription("Chrome Mobile", "131.0", "Android", "14", "Google", "Pixel 8", "Pixel 8"), info.Client);
        Assert.Equal(DeviceTypes.Mobile, info.DeviceType);
        Assert.False(info.IsBot);
        Assert.Equal(DeviceTypes.Bot, enricher.Describe("", ClientHints.None, 0).DeviceType);
    }
}
