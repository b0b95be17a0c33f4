using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.Enrichment;
using YamlDotNet.RepresentationModel;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Processing logic 3 (maintained data) applied to history: a site-day ingested under version 2
/// (hand-written browser rules, no geo, no channel) is reprocessed with version 3, and its
/// browser, country and channel breakdowns change to what the data sets themselves say, while
/// every count stays the same. The expected values come from outside the product: browser
/// families from uap-core's own test file, locations from the JSON MaxMind built its test
/// database from, channels from the table in docs/enrichment.md.
/// </summary>
public class EnrichmentReprocessTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly DateTimeOffset Day = new(2026, 2, 10, 0, 0, 0, TimeSpan.Zero);
    private static readonly string TestDatabase = Path.Combine(AppContext.BaseDirectory, "TestData", "maxmind", "GeoIP2-City-Test.mmdb");

    /// <summary>Client addresses (sent as X-Forwarded-For through the trusted proxy 127.0.0.1).</summary>
    private static readonly string[] Addresses = ["214.0.1.7", "2.2.3.9", "175.16.199.5"];

    /// <summary>(referrer, landing query, channel by the docs' table).</summary>
    private static readonly (string Referrer, string Query, string Channel)[] Arrivals =
    [
        ("https://www.google.com/", "", "Organic Search"),
        ("https://www.google.co.uk/", "?gclid=abc123", "Paid Search"),
        ("https://mail.google.com/", "", "Email"),
        ("", "?utm_source=newsletter&utm_medium=email", "Email"),
        ("", "", "Direct"),
        ("https://t.co/xyz", "", "Organic Social"),
    ];

    [Fact]
    public async Task Reprocessing_with_maintained_data_changes_browser_country_and_channel_but_no_count()
    {
        var userAgents = BrowserUserAgents();
        var clock = new ManualClock(Day);
        var old = await TestHost.StartAsync(engine, logicVersion: 2, clock: clock, trustedProxies: ["127.0.0.1"], geoIpDatabase: TestDatabase);
        old.KeepData = true;

        // One visitor per (user agent, address, arrival): a pageview, then a second one.
        var expectedBrowsers = new Dictionary<string, long>();
        var expectedCountries = new Dictionary<string, long>();
        var expectedChannels = new Dictionary<string, long>();
        long total = 0;
        int minute = 0;
        for (int i = 0; i < userAgents.Count; i++)
        {
            var (ua, family) = userAgents[i];
            string address = Addresses[i % Addresses.Length];
            var arrival = Arrivals[i % Arrivals.Length];
            clock.Now = Day.AddMinutes(minute += 3);
            var batch = new EventBatch { SiteKey = old.Site.SiteKey };
            batch.Events.Add(Wire.Pageview("/landing" + arrival.Query, arrival.Referrer));
            batch.Events.Add(Wire.Pageview("/next", "https://shop.example/landing"));
            using var socket = await old.ConnectAsync(ua, ("X-Forwarded-For", address));
            Assert.Equal(2u, (await Wire.SendAsync(socket, batch)).Accepted);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
            total += 2;
            Add(expectedBrowsers, family, 2);
            Add(expectedCountries, ExpectedCountry(address), 2);
            // The second pageview comes from the shop itself: a same-site referrer is Direct.
            Add(expectedChannels, arrival.Channel, 1);
            Add(expectedChannels, "Direct", 1);
        }
        var before = await old.WaitForAggregateAsync(t => t["events"] == total);
        var v2Browsers = await BreakdownAsync(old, "browser");
        Assert.Equal(new Dictionary<string, long> { [""] = total }, await BreakdownAsync(old, "channel"));
        Assert.Equal(new Dictionary<string, long> { [""] = total }, await BreakdownAsync(old, "country"));
        await old.DisposeAsync();

        await using var upgraded = await TestHost.StartAsync(engine, restartOf: old, logicVersion: 3, clock: clock, trustedProxies: ["127.0.0.1"], geoIpDatabase: TestDatabase);
        var job = await upgraded.ReprocessAsync(new { merchantId = upgraded.Site.MerchantId, from = "2026-02-10", to = "2026-02-10" });
        Assert.Equal(total, job.GetProperty("eventsDone").GetInt64());

        Assert.Equal(before, await upgraded.AggregateAsync());
        Assert.Equal(Sorted(expectedBrowsers), Sorted(await BreakdownAsync(upgraded, "browser")));
        Assert.NotEqual(Sorted(v2Browsers), Sorted(expectedBrowsers));
        Assert.Equal(Sorted(expectedCountries), Sorted(await BreakdownAsync(upgraded, "country")));
        Assert.Equal(Sorted(expectedChannels), Sorted(await BreakdownAsync(upgraded, "channel")));
    }

    [Fact]
    public async Task Bots_are_kept_and_counted_apart_from_people()
    {
        await using var host = await TestHost.StartAsync(engine);
        // A crawler as the maintained list itself shows it (its first sample user agent), and a browser.
        string listFile = Path.Combine(EnrichmentDataDirectory.Locate(), "crawler-user-agents", "crawler-user-agents.json");
        string crawler = JsonDocument.Parse(await File.ReadAllTextAsync(listFile, Ct)).RootElement.EnumerateArray()
            .First(e => e.TryGetProperty("instances", out var i) && i.GetArrayLength() > 0).GetProperty("instances")[0].GetString()!;
        foreach (var (ua, events) in new[] { (crawler, 3), (TestHost.BrowserUserAgent, 2) })
        {
            var batch = new EventBatch { SiteKey = host.Site.SiteKey };
            for (int i = 0; i < events; i++) batch.Events.Add(Wire.Pageview("/p" + i));
            using var socket = await host.ConnectAsync(ua);
            Assert.Equal((uint)events, (await Wire.SendAsync(socket, batch)).Accepted);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        var totals = await host.WaitForAggregateAsync(t => t["bots"] == 3 && t["events"] == 2, "pageviews,events,visitors,visits,bots");
        Assert.Equal(new Dictionary<string, long> { ["pageviews"] = 2, ["events"] = 2, ["visitors"] = 1, ["visits"] = 1, ["bots"] = 3 }, totals);
    }

    private static void Add(Dictionary<string, long> counts, string key, long n) => counts[key] = counts.GetValueOrDefault(key) + n;

    private static SortedDictionary<string, long> Sorted(Dictionary<string, long> d) => new(d, StringComparer.Ordinal);

    /// <summary>Events per value of one enriched column, in the generation the site-day reads.</summary>
    private async Task<Dictionary<string, long>> BreakdownAsync(TestHost host, string column)
    {
        string db = host.Database;
        var rows = await engine.Store.QueryRowsAsync(
            $"SELECT {column}, count() FROM {db}.events_enriched WHERE site_id = {host.Site.SiteId} AND generation = " +
            $"(SELECT argMax(generation, activated_at) FROM {db}.generations WHERE site_id = {host.Site.SiteId}) GROUP BY {column}", Ct);
        return rows.ToDictionary(r => r[0].GetString()!, r => long.Parse(r[1].ToString(), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Browser user agents from uap-core's own test file with the family it expects: the first two
    /// of each of a few common families (automation and crawler-like strings left out, so that no
    /// event turns into a bot and counts can be compared).
    /// </summary>
    private static List<(string UserAgent, string Family)> BrowserUserAgents()
    {
        string file = Path.Combine(EnrichmentDataDirectory.Locate(), "uap-core", "tests", "test_ua.yaml");
        var yaml = new YamlStream();
        using (var reader = new StreamReader(file)) yaml.Load(reader);
        var cases = (YamlSequenceNode)((YamlMappingNode)yaml.Documents[0].RootNode).Children[new YamlScalarNode("test_cases")];
        string[] families = ["Chrome", "Firefox", "Mobile Safari", "Chrome Mobile", "Edge", "Opera", "Samsung Internet"];
        return cases.Cast<YamlMappingNode>()
            .Select(c => (UserAgent: ((YamlScalarNode)c.Children[new YamlScalarNode("user_agent_string")]).Value!, Family: ((YamlScalarNode)c.Children[new YamlScalarNode("family")]).Value!))
            .Where(c => families.Contains(c.Family) && c.UserAgent.StartsWith("Mozilla/5.0 (", StringComparison.Ordinal)
                && !System.Text.RegularExpressions.Regex.IsMatch(c.UserAgent, "bot|crawl|spider|headless|java|curl|wget|python|http", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
            .GroupBy(c => c.Family)
            .SelectMany(g => g.Take(2))
            .ToList();
    }

    /// <summary>
    /// The country MaxMind's test database holds for the /24 an address is stored as: the most
    /// specific network of the source JSON containing the prefix's first address.
    /// </summary>
    private static string ExpectedCountry(string address)
    {
        var bytes = IPAddress.Parse(address).GetAddressBytes();
        bytes[3] = 0;
        var first = new IPAddress(bytes).MapToIPv6();
        string json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "TestData", "maxmind", "GeoIP2-City-Test.source.json"));
        string best = "";
        int bestLength = -1;
        foreach (var entry in JsonDocument.Parse(json).RootElement.EnumerateArray())
        {
            foreach (var network in entry.EnumerateObject())
            {
                // IPv4 networks appear as "::a.b.c.d/N" (IPv4-compatible, N counted over 128 bits) or "a.b.c.d/N".
                string name = network.Name;
                IPNetwork net;
                if (name.StartsWith("::", StringComparison.Ordinal) && name.Contains('.', StringComparison.Ordinal))
                {
                    var parts = name[2..].Split('/');
                    net = new IPNetwork(IPAddress.Parse(parts[0]).MapToIPv6(), int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
                }
                else if (!name.Contains(':', StringComparison.Ordinal))
                {
                    var parts = name.Split('/');
                    net = new IPNetwork(IPAddress.Parse(parts[0]).MapToIPv6(), 96 + int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
                }
                else continue;
                if (net.Contains(first) && net.PrefixLength > bestLength && network.Value.TryGetProperty("country", out var country))
                {
                    best = country.GetProperty("iso_code").GetString()!;
                    bestLength = net.PrefixLength;
                }
            }
        }
        return best;
    }
}
