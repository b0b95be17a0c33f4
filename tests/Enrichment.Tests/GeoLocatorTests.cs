using System.Net;
using System.Text.Json;
using Analytics.Enrichment.Geo;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// GeoLocator against MaxMind's published test databases, with expected answers computed from
/// the JSON the City test database was built from (longest matching network, by plain code here),
/// and against the real GeoLite2 database the install step fetches.
/// </summary>
public class GeoLocatorTests
{
    private static readonly string CityTestDb = GeoReferrerData.Fixture("maxmind", "GeoIP2-City-Test.mmdb");
    private static readonly Lazy<IReadOnlyList<SourceNetwork>> Source = new(LoadSource);

    [Fact]
    public void Every_prefix_of_the_source_networks_answers_what_the_source_json_says_for_its_first_address()
    {
        using var geo = GeoLocator.Open(CityTestDb);
        var prefixes = Source.Value.Select(n => StoredPrefix(n.Network)).Distinct().ToList();
        var mismatches = new List<string>();
        foreach (string prefix in prefixes)
        {
            var expected = Expected(prefix);
            var actual = geo.Locate(prefix);
            if (actual != expected) mismatches.Add($"{prefix}: expected {expected}, got {actual}");
        }
        Assert.Empty(mismatches);
        // The fixture really exercises both families with exact city answers.
        Assert.Contains(prefixes, p => !p.Contains(':') && Expected(p).City.Length > 0);
        Assert.Contains(prefixes, p => p.Contains(':') && Expected(p).Country.Length > 0);
        Assert.True(prefixes.Count > 100, $"only {prefixes.Count} prefixes checked");
    }

    [Theory]
    [InlineData("::214.0.1.0/120", "214.0.1.0/24")]       // IPv4 with country, subdivision and city
    [InlineData("::214.0.0.0/120", "214.0.0.0/24")]       // IPv4 with country and city, no subdivision
    [InlineData("2001:218::/32", "2001:218::/48")]        // IPv6, country only
    [InlineData("2a02:d180::/29", "2a02:d180::/48")]
    public void A_known_network_gives_the_country_region_and_city_of_its_source_record(string sourceNetwork, string storedPrefix)
    {
        var record = Source.Value.Single(n => n.Key == sourceNetwork);
        using var geo = GeoLocator.Open(CityTestDb);
        var actual = geo.Locate(storedPrefix);
        Assert.Equal(record.Country, actual.Country);
        Assert.Equal(record.Region, actual.Region);
        Assert.Equal(record.City, actual.City);
        Assert.NotEqual("", actual.Country);
    }

    [Theory]
    [InlineData("10.0.0.0/24")]
    [InlineData("192.168.1.0/24")]
    [InlineData("127.0.0.0/24")]
    [InlineData("198.51.100.0/24")]
    [InlineData("fd00:1:2::/48")]
    [InlineData("2001:db8:1::/48")]
    public void An_unknown_or_private_network_gives_empty_strings(string prefix)
    {
        Assert.Equal(GeoLocation.Unknown, Expected(prefix));   // the source agrees it is unknown
        using var geo = GeoLocator.Open(CityTestDb);
        Assert.Equal(GeoLocation.Unknown, geo.Locate(prefix));
    }

    [Theory]
    [InlineData("")]
    [InlineData("not an address")]
    [InlineData("214.0.1.0/40")]
    [InlineData("214.0.1.7/24")]      // host bits set: not a stored prefix
    [InlineData("/24")]
    [InlineData("2001:218::/129")]
    public void A_malformed_prefix_gives_empty_strings(string prefix)
    {
        using var geo = GeoLocator.Open(CityTestDb);
        Assert.Equal(GeoLocation.Unknown, geo.Locate(prefix));
    }

    [Fact]
    public void A_country_database_answers_the_country_and_leaves_region_and_city_empty()
    {
        using var geo = GeoLocator.Open(GeoReferrerData.Fixture("maxmind", "GeoLite2-Country-Test.mmdb"));
        Assert.Equal("GeoLite2-Country", geo.DatabaseType);
        // Country networks the City source also lists; the Country test database is built from
        // the same MaxMind test networks, so where it answers it must name the same country.
        int answered = 0;
        foreach (string prefix in Source.Value.Select(n => StoredPrefix(n.Network)).Distinct())
        {
            var actual = geo.Locate(prefix);
            Assert.Equal("", actual.Region);
            Assert.Equal("", actual.City);
            if (actual.Country.Length == 0) continue;
            answered++;
            Assert.Equal(Expected(prefix).Country, actual.Country);
        }
        Assert.True(answered > 50, $"the Country test database answered only {answered} prefixes");
    }

    [Fact]
    public void The_real_GeoLite2_database_from_the_install_step_locates_well_known_public_networks()
    {
        using var geo = GeoLocator.Open(GeoReferrerData.EnrichmentData("geolite2", "GeoLite2-City.mmdb"));
        Assert.Equal("GeoLite2-City", geo.DatabaseType);
        // A current build, not the 2019 one some npm packages still ship.
        Assert.True(geo.BuildDate >= new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), $"built {geo.BuildDate:yyyy-MM-dd}");
        Assert.Equal("US", geo.Locate("8.8.8.0/24").Country);          // Google Public DNS
        Assert.Equal("US", geo.Locate("2001:4860:4860::/48").Country); // its IPv6 anycast block
        Assert.Equal(GeoLocation.Unknown, geo.Locate("10.1.2.0/24"));
        // A city database answers cities for residential space too, not only countries.
        var answers = Enumerable.Range(0, 256).Select(i => geo.Locate($"81.{i}.0.0/24")).ToList();
        Assert.Contains(answers, a => a.City.Length > 0 && a.Region.StartsWith(a.Country + "-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_cached_answer_allocates_nothing()
    {
        using var geo = GeoLocator.Open(CityTestDb);
        string prefix = "214.0.1.0/24";
        var first = geo.Locate(prefix);
        Assert.Equal(0, CountDiffering(geo, prefix, first));   // warm-up: tiered JIT allocates once
        long before = GC.GetAllocatedBytesForCurrentThread();
        int differing = CountDiffering(geo, prefix, first);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, differing);
        Assert.Equal(0, allocated);

        static int CountDiffering(GeoLocator geo, string prefix, GeoLocation expected)
        {
            int differing = 0;
            for (int i = 0; i < 10_000; i++) if (geo.Locate(prefix) != expected) differing++;
            return differing;
        }
    }

    [Fact]
    public void The_cache_holds_no_more_prefixes_than_its_capacity_and_answers_stay_right()
    {
        using var bounded = GeoLocator.Open(CityTestDb, cacheCapacity: 8);
        using var reference = GeoLocator.Open(CityTestDb);
        var prefixes = Source.Value.Select(n => StoredPrefix(n.Network)).Distinct().ToList();
        for (int round = 0; round < 3; round++)
            foreach (string prefix in prefixes)
            {
                Assert.Equal(reference.Locate(prefix), bounded.Locate(prefix));
                Assert.InRange(bounded.CachedPrefixes, 1, 8);
            }
    }

    [Fact]
    public void Concurrent_lookups_give_the_same_answers_as_sequential_ones()
    {
        var prefixes = Source.Value.Select(n => StoredPrefix(n.Network)).Distinct().ToArray();
        using var geo = GeoLocator.Open(CityTestDb, cacheCapacity: 32);
        var results = new GeoLocation[8][];
        Parallel.For(0, 8, t =>
        {
            results[t] = new GeoLocation[prefixes.Length];
            for (int i = 0; i < prefixes.Length; i++) results[t][i] = geo.Locate(prefixes[(i + t * 7) % prefixes.Length]);
        });
        for (int t = 0; t < 8; t++)
            for (int i = 0; i < prefixes.Length; i++)
                Assert.Equal(Expected(prefixes[(i + t * 7) % prefixes.Length]), results[t][i]);
    }

    [Fact]
    public void Opening_a_missing_file_a_non_database_or_a_database_of_another_type_fails_with_one_clear_line()
    {
        GeoReferrerData.InTempDirectory("geo-open-", dir =>
        {
            var missing = Assert.Throws<GeoDatabaseException>(() => GeoLocator.Open(Path.Combine(dir, "none.mmdb")));
            Assert.Contains("not found", missing.Message);

            string junk = Path.Combine(dir, "junk.mmdb");
            File.WriteAllText(junk, "this is not a MaxMind database");
            var notDb = Assert.Throws<GeoDatabaseException>(() => GeoLocator.Open(junk));
            Assert.Contains("Not a MaxMind database", notDb.Message);

            var asn = Assert.Throws<GeoDatabaseException>(() => GeoLocator.Open(GeoReferrerData.Fixture("maxmind", "GeoLite2-ASN-Test.mmdb")));
            Assert.Contains("GeoLite2-ASN", asn.Message);
            Assert.DoesNotContain('\n', asn.Message);
        });
    }

    // ---- the oracle: MaxMind's source JSON, read with System.Text.Json ----

    private sealed record SourceNetwork(string Key, IPNetwork Network, string Country, string Region, string City);

    private static IReadOnlyList<SourceNetwork> LoadSource()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(GeoReferrerData.Fixture("maxmind", "GeoIP2-City-Test.source.json")));
        var list = new List<SourceNetwork>();
        foreach (var entry in doc.RootElement.EnumerateArray())
            foreach (var property in entry.EnumerateObject())
            {
                var record = property.Value;
                string country = record.TryGetProperty("country", out var c) && c.TryGetProperty("iso_code", out var ci) ? ci.GetString()! : "";
                string subdivision = record.TryGetProperty("subdivisions", out var s) && s.GetArrayLength() > 0
                    && s[0].TryGetProperty("iso_code", out var si) ? si.GetString()! : "";
                string city = record.TryGetProperty("city", out var ct) && ct.TryGetProperty("names", out var names)
                    && names.TryGetProperty("en", out var en) ? en.GetString()! : "";
                string region = country.Length > 0 && subdivision.Length > 0 ? $"{country}-{subdivision}" : "";
                list.Add(new SourceNetwork(property.Name, InIPv6Tree(IPNetwork.Parse(property.Name)), country, region, city));
            }
        return list;
    }

    /// <summary>The source writes IPv4 networks both as a.b.c.d/n and as ::a.b.c.d/(96+n); an MMDB
    /// with IPv6 keeps IPv4 in ::/96. One form for the comparisons here.</summary>
    private static IPNetwork InIPv6Tree(IPNetwork network) =>
        network.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? new IPNetwork(new IPAddress([.. new byte[12], .. network.BaseAddress.GetAddressBytes()]), network.PrefixLength + 96)
            : network;

    /// <summary>The prefix FastIngest would store for an address in this network: IPv4 (which the
    /// source writes as ::a.b.c.d) to /24, IPv6 to /48.</summary>
    private static string StoredPrefix(IPNetwork network)
    {
        byte[] bytes = network.BaseAddress.GetAddressBytes();
        if (IsIPv4InIPv6(bytes) && network.PrefixLength >= 96)
            return $"{bytes[12]}.{bytes[13]}.{bytes[14]}.0/24";
        for (int i = 6; i < 16; i++) bytes[i] = 0;
        return new IPAddress(bytes) + "/48";
    }

    private static bool IsIPv4InIPv6(byte[] bytes) => bytes.Length == 16 && bytes.AsSpan(0, 12).IndexOfAnyExcept((byte)0) < 0;

    /// <summary>What the source says for the first address of a stored prefix: the most specific
    /// source network containing it, or nothing.</summary>
    private static GeoLocation Expected(string prefix)
    {
        var first = IPNetwork.Parse(prefix).BaseAddress;
        var key = first.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? new IPAddress([.. new byte[12], .. first.GetAddressBytes()])
            : first;
        var match = Source.Value.Where(n => n.Network.Contains(key)).MaxBy(n => n.Network.PrefixLength);
        return match is null ? GeoLocation.Unknown : new GeoLocation(match.Country, match.Region, match.City);
    }
}
