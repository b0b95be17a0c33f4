using Analytics.Enrichment.Referrers;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// The channel table of docs/enrichment.md, case by case. Every expected value was written from
/// the documented rules and the referrer data (referers.yml and referers-extra.yml), not from the
/// classifier's output; the comment on a case names the rule that decides it.
/// </summary>
public class ChannelTableTests
{
    private const string Page = "shop.example";
    private static readonly Lazy<ReferrerClassifier> Classifier = new(() =>
        ReferrerClassifier.Load(GeoReferrerData.EnrichmentData("referer-parser", "referers.yml")));

    public static TheoryData<string, string, string, string, string, string> Cases => new()
    {
        // referrer, page host, landing query, expected source, channel, medium
        // Rule 1, Direct: nothing, same-site, malformed, other schemes.
        { "", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://shop.example/cart", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://www.shop.example/", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://blog.shop.example/post", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://shop.example/", "www.shop.example", "", "Direct / None", "Direct", "(none)" },
        { "not a url", Page, "", "Direct / None", "Direct", "(none)" },
        { "http://exa mple.com/", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://example.com:port/", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://a..b.com/", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://[" + new string('a', 300) + "]/", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://" + new string('a', 254) + ".com/", Page, "", "Direct / None", "Direct", "(none)" },
        { "file:///C:/page.html", Page, "", "Direct / None", "Direct", "(none)" },
        { "https://shop.example/", Page, "?utm_campaign=spring", "Direct / None", "Direct", "(none)" },
        // Rule 2, Cross-network, before the paid rules.
        { "", Page, "?utm_source=google&utm_medium=cpc&utm_campaign=pmax_cross-network_2026", "google", "Cross-network", "cpc" },
        // Rule 3, Paid Search: click ids, or paid medium + search source.
        { "https://www.google.co.uk/", Page, "?gclid=EAIaIQobChMI", "Google", "Paid Search", "cpc" },
        { "", Page, "?gclid=abc", "Google", "Paid Search", "cpc" },
        { "", Page, "?gbraid=abc", "Google", "Paid Search", "cpc" },
        { "", Page, "?msclkid=abc", "Bing", "Paid Search", "cpc" },
        { "https://www.bing.com/search?q=shoes", Page, "?msclkid=1", "Bing", "Paid Search", "cpc" },
        { "", Page, "?utm_source=google&utm_medium=cpc", "google", "Paid Search", "cpc" },
        { "https://www.google.com/", Page, "?utm_medium=email&gclid=x", "Google", "Paid Search", "email" },
        { "https://shop.example/", Page, "?utm_source=google&utm_medium=cpc", "google", "Paid Search", "cpc" },
        // Rule 4, Paid Social.
        { "", Page, "?utm_source=facebook&utm_medium=cpc", "facebook", "Paid Social", "cpc" },
        { "", Page, "?utm_source=fb&utm_medium=paid_social", "fb", "Paid Social", "paid_social" },
        // "meta" is also a search engine's name in referers.yml (meta.ua): ours says Facebook.
        { "", Page, "?utm_source=meta&utm_medium=paid_social", "meta", "Paid Social", "paid_social" },
        { "", Page, "?utm_source=Meta&utm_medium=cpc", "Meta", "Paid Social", "cpc" },
        { "", Page, "?ttclid=abc", "TikTok", "Paid Social", "cpc" },
        { "https://www.linkedin.com/", Page, "?li_fat_id=abc", "LinkedIn", "Paid Social", "cpc" },
        // Rule 5, Paid Video (our table files YouTube under video).
        { "", Page, "?utm_source=youtube&utm_medium=cpv", "youtube", "Paid Video", "cpv" },
        // Rule 6, Display (cpm is also a paid medium, but no search/social/video source: rule 6 first).
        { "", Page, "?utm_source=dv360&utm_medium=display", "dv360", "Display", "display" },
        { "", Page, "?utm_medium=cpm", "Direct / None", "Display", "cpm" },
        { "", Page, "?dclid=abc", "Google", "Display", "display" },
        // Rule 7, Paid Other.
        { "", Page, "?utm_source=partner&utm_medium=cpc", "partner", "Paid Other", "cpc" },
        // Rule 8, AI assistants (our table wins over google.com search for gemini.google.com).
        { "https://chatgpt.com/", Page, "", "ChatGPT", "AI assistants", "ai" },
        { "", Page, "?utm_source=chatgpt.com", "chatgpt.com", "AI assistants", "(none)" },
        { "https://gemini.google.com/app", Page, "", "Gemini", "AI assistants", "ai" },
        { "https://www.perplexity.ai/search/abc", Page, "", "Perplexity", "AI assistants", "ai" },
        { "https://claude.ai/chat/1", Page, "", "Claude", "AI assistants", "ai" },
        { "https://copilot.microsoft.com/", Page, "", "Copilot", "AI assistants", "ai" },
        // Rule 9, Organic Social.
        { "https://t.co/abc123", Page, "", "Twitter", "Organic Social", "social" },
        { "https://x.com/someone/status/1", Page, "", "Twitter", "Organic Social", "social" },
        { "https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example", Page, "", "Facebook", "Organic Social", "social" },
        { "https://l.instagram.com/", Page, "?fbclid=abc", "Instagram", "Organic Social", "social" },
        { "", Page, "?fbclid=abc", "Facebook", "Organic Social", "social" },
        { "https://bsky.app/profile/someone", Page, "", "Bluesky", "Organic Social", "social" },
        { "https://www.threads.net/@someone", Page, "", "Threads", "Organic Social", "social" },
        { "https://mastodon.social/@someone", Page, "", "Mastodon", "Organic Social", "social" },
        { "https://news.ycombinator.com/item?id=1", Page, "", "Hacker News", "Organic Social", "social" },
        { "", Page, "?utm_source=facebook&utm_medium=social", "facebook", "Organic Social", "social" },
        { "", Page, "?utm_source=meta", "meta", "Organic Social", "(none)" },
        { "", Page, "?utm_source=partner-site&utm_medium=social", "partner-site", "Organic Social", "social" },
        // Rule 10, Organic Video.
        { "https://www.youtube.com/watch?v=1", Page, "", "YouTube", "Organic Video", "video" },
        { "android-app://com.google.android.youtube", Page, "", "YouTube", "Organic Video", "video" },
        // Rule 11, Organic Search.
        { "https://www.google.com/search?q=shoes", Page, "", "Google", "Organic Search", "organic" },
        { "https://www.google.co.uk/", Page, "", "Google", "Organic Search", "organic" },
        { "https://www.bing.com/images/search?q=shoes", Page, "", "Bing Images", "Organic Search", "organic" },
        { "https://search.yahoo.com/search?p=shoes", Page, "", "Yahoo!", "Organic Search", "organic" },
        { "https://duckduckgo.com/", Page, "", "DuckDuckGo", "Organic Search", "organic" },
        { "android-app://com.google.android.googlequicksearchbox/https/www.google.com", Page, "", "Google", "Organic Search", "organic" },
        { "", Page, "?utm_source=google&utm_medium=organic", "google", "Organic Search", "organic" },
        // Rule 12, Email: mail.google.com is Gmail, not Google search.
        { "https://mail.google.com/mail/u/0/", Page, "", "Gmail", "Email", "email" },
        { "android-app://com.google.android.gm", Page, "", "Gmail", "Email", "email" },
        { "https://outlook.live.com/mail/0/", Page, "", "Outlook.com", "Email", "email" },
        { "", Page, "?utm_source=newsletter&utm_medium=email", "newsletter", "Email", "email" },
        { "", Page, "?utm_source=Newsletter&utm_medium=E-Mail", "Newsletter", "Email", "E-Mail" },
        // Rules 13-15.
        { "", Page, "?utm_source=awin&utm_medium=affiliate", "awin", "Affiliates", "affiliate" },
        { "", Page, "?utm_source=spotify&utm_medium=audio", "spotify", "Audio", "audio" },
        { "", Page, "?utm_source=sms", "sms", "SMS", "(none)" },
        // Rule 16, Referral: unknown sites and apps, known sources without a medium, said so.
        { "https://someblog.example.org/post", Page, "", "someblog.example.org", "Referral", "referral" },
        { "https://WWW.Some-Blog.Example.ORG/Post", Page, "", "some-blog.example.org", "Referral", "referral" },
        { "https://user:pw@Example.net:8443/path", Page, "", "example.net", "Referral", "referral" },
        { "https://[2001:db8::1]:8080/x", Page, "", "[2001:db8::1]", "Referral", "referral" },
        { "https://support.google.com/answer/1", Page, "", "Google", "Referral", "referral" },
        { "https://news.yahoo.com/", Page, "", "Yahoo!", "Referral", "referral" },
        { "android-app://com.example.someapp", Page, "", "com.example.someapp", "Referral", "referral" },
        { "https://shop.example/", "", "", "shop.example", "Referral", "referral" },
        { "", Page, "?utm_source=partner&utm_medium=referral", "partner", "Referral", "referral" },
        // Rule 17, Unassigned: an unknown utm_source hides the referrer.
        { "", Page, "?utm_source=newsletter", "newsletter", "Unassigned", "(none)" },
        { "https://mail.google.com/", Page, "?utm_source=newsletter", "newsletter", "Unassigned", "email" },
        { "https://someblog.example.org/", Page, "?utm_medium=weird", "someblog.example.org", "Unassigned", "weird" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_visit_gets_the_source_channel_and_medium_the_documented_table_gives(
        string referrer, string pageHost, string query, string source, string channel, string medium)
    {
        var actual = Classifier.Value.Classify(referrer, pageHost, query);
        Assert.Equal(new TrafficSource(source, channel, medium), actual);
    }

    [Fact]
    public void The_table_has_at_least_thirty_cases_and_every_channel_of_the_docs_appears()
    {
        var channels = Cases.Select(row => (string)row.Data.Item5).ToHashSet();
        Assert.True(Cases.Count() >= 30);
        string[] documented =
        [
            Channels.Direct, Channels.CrossNetwork, Channels.PaidSearch, Channels.PaidSocial, Channels.PaidVideo,
            Channels.Display, Channels.PaidOther, Channels.AiAssistants, Channels.OrganicSocial, Channels.OrganicVideo,
            Channels.OrganicSearch, Channels.Email, Channels.Affiliates, Channels.Audio, Channels.Sms,
            Channels.Referral, Channels.Unassigned,
        ];
        Assert.Equal(documented.Order(), channels.Order());
        // The docs' table names the same channels, in the same order as the rules.
        string doc = File.ReadAllText(Path.Combine(GeoReferrerData.RepositoryRoot(), "docs", "enrichment.md"));
        string section = doc[doc.IndexOf("\n## Channels", StringComparison.Ordinal)..];
        int next = section.IndexOf("\n## ", 1, StringComparison.Ordinal);
        if (next > 0) section = section[..next];
        var rows = section.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\| \d+ \| ")).Select(l => l.Split('|')[2].Trim()).ToArray();
        Assert.Equal(documented, rows);
    }

    [Fact]
    public void The_campaign_parameters_overload_gives_the_same_answer_as_the_query_overload()
    {
        var campaign = new CampaignParameters("google", "cpc", "", CampaignParameters.ClickIdsIn("?gclid=1&x=2"));
        Assert.Equal(Classifier.Value.Classify("https://www.google.de/", Page, "?utm_source=google&utm_medium=cpc&gclid=1&x=2"),
            Classifier.Value.Classify("https://www.google.de/", Page, campaign));
    }

    [Fact]
    public void Escaped_and_plus_encoded_utm_values_are_unescaped()
    {
        var campaign = CampaignParameters.FromQuery("?utm_source=My+News%20Letter&utm_medium=e%2Dmail&utm_campaign=%E2%9C%93&gclid=");
        Assert.Equal(new CampaignParameters("My News Letter", "e-mail", "\u2713", ClickIds.None), campaign);
        Assert.Equal(ClickIds.Gclid | ClickIds.Fbclid, CampaignParameters.ClickIdsIn("GCLID=a&fbclid=b&dclid="));
    }

    [Fact]
    public void Classifying_a_known_referrer_without_campaign_parameters_allocates_nothing()
    {
        var classifier = Classifier.Value;
        const string referrer = "https://mail.google.com/mail/u/0/";
        var expected = classifier.Classify(referrer, Page, CampaignParameters.None);
        Assert.Equal(0, CountDiffering());  // warm-up
        long before = GC.GetAllocatedBytesForCurrentThread();
        int differing = CountDiffering();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, differing);
        Assert.Equal(0, allocated);

        int CountDiffering()
        {
            int n = 0;
            for (int i = 0; i < 10_000; i++) if (classifier.Classify(referrer, Page, CampaignParameters.None) != expected) n++;
            return n;
        }
    }
}
