using System.Text.RegularExpressions;
using Analytics.Enrichment;
using Analytics.Enrichment.Geo;
using Analytics.Enrichment.Referrers;
using Analytics.Enrichment.UserAgents;

namespace Analytics.Rollup;

/// <summary>What the processing logic derives from one raw event.</summary>
public readonly record struct Derived(
    string Hostname, string Pathname, string ReferrerSource, string Channel,
    string UtmSource, string UtmMedium, string UtmCampaign, string UtmContent, string UtmTerm,
    string Country, string Region, string City,
    string Device, string DeviceBrand, string DeviceModel,
    string Browser, string BrowserVersion, string Os, string OsVersion, bool IsBot);

/// <summary>
/// The processing logic: how a raw event becomes an enriched one (hostname, path, referrer
/// source and channel, UTM fields, country/region/city, device, browser, OS, bot flag). Every
/// enriched row records the version that built it; when a rule here changes, add a version so
/// `reprocess` can rebuild what older logic produced and `partitions status` can find it. Pure
/// functions of the raw event and the loaded data: the same raw event with the same data always
/// gives the same result, which is what makes replays and reprocessing exact.
///
/// Versions (older ones stay so that a deployment can pin one and tests can reproduce history):
///   1  first rules (hand-written substring rules, screen-width device classes, a 20-host
///      referrer table; no geo).
///   2  fix: automation that identifies itself only as a headless browser ("HeadlessChrome",
///      "Headless" builds) was counted as visitors; it is a bot.
///   3  maintained data (docs/enrichment.md): browser, OS, versions and device brand/model from
///      uap-core; device type from the user agent and client hints (screen width only as a
///      tie-breaker); bots from crawler-user-agents plus the server's signals; country, region
///      and city from a GeoLite2/GeoIP2 database looked up by the stored /24 or /48 prefix;
///      referrer source from Snowplow's referer-parser data and our table of newer sources; a
///      GA4-style channel from referrer, utm_* and click ids.
///   4  fix: an `engagement` ping never starts a visit (<see cref="DerivedRows.WriteEnriched"/>).
///      The agent sends one when a page is hidden, with the page's visible time; one that arrives
///      30 minutes or more after its visitor's last event (a tab left open), or after the UTC
///      midnight that renews the visitor id, made a visit of its own: a visit and a bounce more,
///      and a visitor more after midnight. It is kept in events_raw only; nothing counts it.
///      Enrichment is version 3's.
/// Versions 1 and 2 need no data; versions 3 and 4 need <see cref="EnrichmentRules"/>.
/// </summary>
public sealed partial class ProcessingLogic
{
    public const ushort Current = 4;
    public static readonly ushort[] Versions = [1, 2, 3, 4];

    /// <summary>The first version in which an engagement ping never starts a visit.</summary>
    public const ushort EngagementNeedsVisit = 4;

    /// <summary>Versions 1 and 2 only: for tools and tests that have no enrichment data.</summary>
    public static readonly ProcessingLogic WithoutData = new(null);

    private readonly EnrichmentRules? _rules;

    // Hostnames and paths repeat from event to event: one string each per distinct value rather
    // than one per event. Paths over PooledPathChars are not pooled, so each pool holds at most
    // ~8 MB (16,384 strings of at most 253 or 256 chars).
    private const int PooledPathChars = 256;
    private readonly StringPool _hosts = new(16_384);
    private readonly StringPool _paths = new(16_384);

    public ProcessingLogic(EnrichmentRules? rules) => _rules = rules;

    public static bool IsKnown(ushort version) => Versions.Contains(version);

    public Derived Derive(RawEvent e, ushort version = Current)
    {
        bool isUrl = PageUrl.TryParse(e.Url, out var page);
        string hostname = isUrl ? HostWithoutWww(page.Host) : "";
        string pathname = !isUrl ? "" : page.Path.Length <= PooledPathChars ? _paths.Get(page.Path) : page.Path.ToString();
        var query = page.Query;
        string utmContent = QueryParameter(query, "utm_content");
        string utmTerm = QueryParameter(query, "utm_term");
        if (version < 3)
        {
            string utmSource = QueryParameter(query, "utm_source");
            return new Derived(hostname, pathname, ReferrerSource(e.Referrer, hostname, utmSource), "",
                utmSource, QueryParameter(query, "utm_medium"), QueryParameter(query, "utm_campaign"), utmContent, utmTerm, e.Country, "", "",
                Device(e.ScreenWidth), "", "", Browser(e.UserAgent), "", OperatingSystem(e.UserAgent), "", IsBot(e.UserAgent, version));
        }
        var rules = _rules ?? throw new InvalidOperationException(
            $"processing-logic version {version} needs the enrichment data (scripts/fetch-enrichment-data.sh, --enrichment-data)");
        var ua = rules.UserAgents.Describe(e.UserAgent, new ClientHints(e.ChUaMobile, e.ChUaPlatform, e.ChUaModel, e.ChUaFormFactors), e.ScreenWidth);
        // One reading of the campaign fields, so the stored utm_* and the channel derived from
        // them can never disagree.
        var campaign = CampaignParameters.FromQuery(query);
        var source = rules.Referrers.Classify(e.Referrer, hostname, campaign);
        // A country stored at ingest (none today) wins; otherwise the prefix's location.
        var geo = rules.Geo?.Locate(e.IpPrefix) ?? GeoLocation.Unknown;
        return new Derived(hostname, pathname, source.Source, source.Channel,
            campaign.UtmSource, campaign.UtmMedium, campaign.UtmCampaign, utmContent, utmTerm,
            e.Country.Length > 0 ? e.Country : geo.Country, geo.Region, geo.City,
            ua.DeviceType, ua.Client.DeviceBrand, ua.Client.DeviceModel,
            ua.Client.Browser, ua.Client.BrowserVersion, ua.Client.Os, ua.Client.OsVersion, ua.IsBot);
    }

    // ---- Versions 1 and 2: hand-written rules, kept to reproduce history. ----

    /// <summary>Versions 1 and 2: missing user agents and automation are bots.</summary>
    public static bool IsBot(string userAgent, ushort version) =>
        userAgent.Length == 0 || BotPattern().IsMatch(userAgent) || (version >= 2 && HeadlessPattern().IsMatch(userAgent));

    [GeneratedRegex(@"bot|crawl|spider|slurp|lighthouse|pingdom|phantomjs|selenium|puppeteer|playwright|curl/|wget/|python-requests|go-http-client|java/|okhttp|scrapy", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex BotPattern();

    [GeneratedRegex(@"headless", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex HeadlessPattern();

    /// <summary>Versions 1 and 2: screen-width classes (CSS px).</summary>
    private static string Device(uint screenWidth) => screenWidth switch
    {
        0 => "Unknown",
        < 576 => "Mobile",
        < 992 => "Tablet",
        < 1440 => "Laptop",
        _ => "Desktop",
    };

    private static string Browser(string ua) =>
        ua.Contains("Edg/", StringComparison.Ordinal) ? "Edge"
        : ua.Contains("OPR/", StringComparison.Ordinal) || ua.Contains("Opera", StringComparison.Ordinal) ? "Opera"
        : ua.Contains("SamsungBrowser/", StringComparison.Ordinal) ? "Samsung Internet"
        : ua.Contains("Firefox/", StringComparison.Ordinal) || ua.Contains("FxiOS/", StringComparison.Ordinal) ? "Firefox"
        : ua.Contains("Chrome/", StringComparison.Ordinal) || ua.Contains("CriOS/", StringComparison.Ordinal) || ua.Contains("Chromium/", StringComparison.Ordinal) ? "Chrome"
        : ua.Contains("Safari/", StringComparison.Ordinal) ? "Safari"
        : "Other";

    private static string OperatingSystem(string ua) =>
        ua.Contains("Windows", StringComparison.Ordinal) ? "Windows"
        : ua.Contains("Android", StringComparison.Ordinal) ? "Android"
        : ua.Contains("iPhone", StringComparison.Ordinal) || ua.Contains("iPad", StringComparison.Ordinal) ? "iOS"
        : ua.Contains("CrOS", StringComparison.Ordinal) ? "ChromeOS"
        : ua.Contains("Mac OS X", StringComparison.Ordinal) || ua.Contains("Macintosh", StringComparison.Ordinal) ? "macOS"
        : ua.Contains("Linux", StringComparison.Ordinal) ? "Linux"
        : "Other";

    /// <summary>A suffix ending in '.' matches a label prefix ("google." in "www.google.de",
    /// "news.google.com"), any other the host or a parent of it; Dotted is "." + Suffix.</summary>
    private static readonly (string Suffix, string Dotted, string Source)[] KnownSources =
    [
        .. new (string Suffix, string Source)[]
        {
            ("google.", "Google"), ("bing.com", "Bing"), ("duckduckgo.com", "DuckDuckGo"), ("yahoo.com", "Yahoo"),
            ("yandex.", "Yandex"), ("baidu.com", "Baidu"), ("ecosia.org", "Ecosia"),
            ("facebook.com", "Facebook"), ("instagram.com", "Instagram"), ("t.co", "Twitter"), ("twitter.com", "Twitter"),
            ("x.com", "Twitter"), ("linkedin.com", "LinkedIn"), ("lnkd.in", "LinkedIn"), ("reddit.com", "Reddit"),
            ("news.ycombinator.com", "Hacker News"), ("github.com", "GitHub"), ("youtube.com", "YouTube"),
            ("chatgpt.com", "ChatGPT"), ("perplexity.ai", "Perplexity"),
        }.Select(k => (k.Suffix, "." + k.Suffix, k.Source)),
    ];

    /// <summary>
    /// Versions 1 and 2: utm_source wins when present; an empty referrer or one from the same site
    /// is "Direct / None"; well-known hosts get their brand; anything else is the referring host.
    /// </summary>
    private string ReferrerSource(string referrer, string pageHost, string utmSource)
    {
        if (utmSource.Length > 0) return utmSource;
        if (referrer.Length == 0 || !PageUrl.TryParse(referrer, out var from)) return "Direct / None";
        string host = HostWithoutWww(from.Host);
        if (host == pageHost) return "Direct / None";
        foreach (var (suffix, dotted, source) in KnownSources)
        {
            bool match = suffix.EndsWith('.')
                ? host.StartsWith(suffix, StringComparison.Ordinal) || host.Contains(dotted, StringComparison.Ordinal)
                : host == suffix || host.EndsWith(dotted, StringComparison.Ordinal);
            if (match) return source;
        }
        return host;
    }

    /// <summary>The host in lower case without a leading "www." (any case), pooled.</summary>
    private string HostWithoutWww(ReadOnlySpan<char> host)
    {
        if (host.StartsWith("www.", StringComparison.OrdinalIgnoreCase)) host = host[4..];
        // Hosts are at most 253 characters on PageUrl's plain path; Uri's may be longer.
        if (host.Length > 256) return host.ToString().ToLowerInvariant();
        Span<char> lower = stackalloc char[host.Length];
        host.ToLowerInvariant(lower);
        return _hosts.Get(lower);
    }

    /// <summary>The first parameter named <paramref name="name"/> (any case) of a query as
    /// Uri.Query gives it ("?a=1&amp;b=2", escapes kept), '+' read as a space, unescaped; "" when
    /// absent.</summary>
    private static string QueryParameter(ReadOnlySpan<char> query, string name)
    {
        query = query.TrimStart('?');
        foreach (var range in query.Split('&'))
        {
            var part = query[range];
            if (part.IsEmpty) continue;
            int eq = part.IndexOf('=');
            var key = eq < 0 ? part : part[..eq];
            if (key.Equals(name, StringComparison.OrdinalIgnoreCase))
                return eq < 0 ? "" : Uri.UnescapeDataString(part[(eq + 1)..].ToString().Replace('+', ' '));
        }
        return "";
    }
}

/// <summary>
/// The maintained data version 3 of the processing logic reads (docs/enrichment.md). Loading
/// compiles ~1,200 uap-core rules and the crawler list (~0.7 s) and opens the geo database: a
/// process loads it once and every Rollup in it shares the instance and its caches.
/// </summary>
public sealed class EnrichmentRules
{
    public required UserAgentEnricher UserAgents { get; init; }
    public required ReferrerClassifier Referrers { get; init; }
    /// <summary>Null when no geo database is configured: country, region and city stay empty.</summary>
    public GeoLocator? Geo { get; init; }

    /// <summary>The data under <paramref name="dataRoot"/> (the fetch script's layout); the geo
    /// database <paramref name="geoDatabase"/> or else the GeoLite2 City file there.</summary>
    public static EnrichmentRules Load(string dataRoot, string? geoDatabase = null) => new()
    {
        UserAgents = UserAgentEnricher.Load(dataRoot),
        Referrers = ReferrerClassifier.Load(Path.Combine(dataRoot, "referer-parser", "referers.yml")),
        Geo = GeoLocator.Open(geoDatabase ?? Path.Combine(dataRoot, "geolite2", "GeoLite2-City.mmdb")),
    };
}
