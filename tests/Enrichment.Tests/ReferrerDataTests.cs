using Analytics.Enrichment.Referrers;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// The referrer tables as data: every domain that referers.yml and our referers-extra.yml list
/// is recognised with the source name and medium its file gives. The files are read here line
/// by line (their layout is fixed: medium, two-space source, indented lists), independently of
/// the classifier's YAML reader.
/// </summary>
public class ReferrerDataTests
{
    private static readonly string SnowplowPath = GeoReferrerData.EnrichmentData("referer-parser", "referers.yml");
    private static readonly string ExtraPath = Path.Combine(GeoReferrerData.RepositoryRoot(), "src", "Enrichment", "Referrers", "referers-extra.yml");
    private static readonly Lazy<ReferrerClassifier> Classifier = new(() => ReferrerClassifier.Load(SnowplowPath));

    private sealed record Listed(string Medium, string Name, string List, string Value);

    [Fact]
    public void Every_referers_yml_domain_is_recognised_with_its_source_name_and_medium_unless_our_table_overrides_its_host()
    {
        var listed = ReadLists(SnowplowPath).Where(l => l.List == "domains").ToList();
        var ourHosts = ReadLists(ExtraPath).Where(l => l.List == "domains").Select(l => HostOf(l.Value)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        // A domain listed under two sources has no single right answer.
        var ambiguous = listed.GroupBy(l => l.Value.ToLowerInvariant().Replace("www.", "")).Where(g => g.Select(x => (x.Medium, x.Name)).Distinct().Count() > 1)
            .Select(g => g.Key).ToHashSet();
        var checkedDomains = 0;
        var mismatches = new List<string>();
        foreach (var entry in listed)
        {
            if (ourHosts.Contains(HostOf(entry.Value)) || ambiguous.Contains(entry.Value.ToLowerInvariant().Replace("www.", ""))) continue;
            checkedDomains++;
            var (category, name) = Classifier.Value.MatchReferrer("https://" + entry.Value, "shop.example");
            if (name != entry.Name || category != CategoryOf(entry.Medium))
                mismatches.Add($"{entry.Value}: expected {entry.Name} ({entry.Medium}), got {name} ({category})");
        }
        Assert.Empty(mismatches);
        Assert.True(checkedDomains > 1000, $"only {checkedDomains} domains checked");
    }

    [Fact]
    public void Every_domain_and_android_app_of_our_table_is_recognised_with_its_source_name_and_medium()
    {
        var listed = ReadLists(ExtraPath).Where(l => l.List is "domains" or "apps").ToList();
        Assert.NotEmpty(listed);
        foreach (var entry in listed)
        {
            string url = entry.List == "apps" ? "android-app://" + entry.Value : "https://" + entry.Value + "/";
            Assert.Equal((CategoryOf(entry.Medium), entry.Name), Classifier.Value.MatchReferrer(url, "shop.example"));
        }
    }

    [Theory]
    [InlineData("https://a.b.maps.google.com/x", "unknown", "Google")]    // subdomains stripped down to maps.google.com
    [InlineData("https://m.youtube.com/watch?v=1", "video", "YouTube")]
    [InlineData("https://lm.facebook.com/l.php", "social", "Facebook")]
    [InlineData("https://mail.google.com", "email", "Gmail")]
    [InlineData("HTTPS://MAIL.GOOGLE.COM./", "email", "Gmail")]           // case and a trailing dot
    [InlineData("https://www.google.de/url?q=x", "search", "Google")]
    public void A_subdomain_or_spelling_variant_of_a_listed_host_is_recognised(string referrer, string medium, string name)
    {
        Assert.Equal((CategoryOf(medium), name), Classifier.Value.MatchReferrer(referrer, "shop.example"));
    }

    [Fact]
    public void A_missing_or_malformed_data_file_fails_with_one_clear_line()
    {
        GeoReferrerData.InTempDirectory("referrers-", dir =>
        {
            var missing = Assert.Throws<ReferrerDataException>(() => ReferrerClassifier.Load(Path.Combine(dir, "none.yml")));
            Assert.Contains("not found", missing.Message);

            string broken = Path.Combine(dir, "broken.yml");
            File.WriteAllText(broken, "search:\n  Google:\n    domains: [unclosed\n");
            var notYaml = Assert.Throws<ReferrerDataException>(() => ReferrerClassifier.Load(broken));
            Assert.Contains("broken.yml", notYaml.Message);
            Assert.Contains("line", notYaml.Message);

            string wrongMedium = Path.Combine(dir, "medium.yml");
            File.WriteAllText(wrongMedium, "podcasts:\n  Spotify:\n    domains:\n      - spotify.com\n");
            var medium = Assert.Throws<ReferrerDataException>(() => ReferrerClassifier.Load(wrongMedium));
            Assert.Contains("unknown medium \"podcasts\"", medium.Message);
            Assert.DoesNotContain('\n', medium.Message);
        });
    }

    private static ReferrerCategory CategoryOf(string medium) => medium switch
    {
        "search" => ReferrerCategory.Search,
        "social" => ReferrerCategory.Social,
        "email" => ReferrerCategory.Email,
        "unknown" => ReferrerCategory.Unknown,
        "video" => ReferrerCategory.Video,
        "ai" => ReferrerCategory.Ai,
        _ => throw new ArgumentException(medium),
    };

    private static string HostOf(string domain)
    {
        string host = domain.Split('/')[0].ToLowerInvariant();
        return host.StartsWith("www.", StringComparison.Ordinal) ? host[4..] : host;
    }

    /// <summary>medium (column 0) / source (two spaces) / list key (four) / "- value" (six).</summary>
    private static List<Listed> ReadLists(string path)
    {
        var result = new List<Listed>();
        string medium = "", name = "", list = "";
        foreach (string raw in File.ReadLines(path))
        {
            string line = raw.Split('#')[0].TrimEnd();
            if (line.Trim().Length == 0) continue;
            int indent = line.Length - line.TrimStart().Length;
            string text = line.Trim();
            if (indent == 0) medium = text.TrimEnd(':');
            else if (indent == 2) name = text[..^1].Trim();
            else if (indent == 4) list = text.TrimEnd(':');
            else if (text.StartsWith("- ", StringComparison.Ordinal)) result.Add(new Listed(medium, name, list, text[2..].Trim()));
        }
        return result;
    }
}
