using System.Text.RegularExpressions;

namespace Analytics.Rollup;

/// <summary>What the processing logic derives from one raw event.</summary>
public readonly record struct Derived(
    string Hostname, string Pathname, string ReferrerSource,
    string UtmSource, string UtmMedium, string UtmCampaign, string UtmContent, string UtmTerm,
    string Device, string Browser, string Os, bool IsBot);

/// <summary>
/// The processing logic: how a raw event becomes an enriched one (hostname, path, referrer
/// source, UTM fields, device, browser, OS, bot flag). Every enriched row records the version
/// that built it; when a rule here changes, add a version so `reprocess` can rebuild what older
/// logic produced and `partitions status` can find it. Pure functions of the raw event: the same
/// raw event always gives the same result, which is what makes replays and reprocessing exact.
///
/// Versions (older ones stay so that a deployment can pin one and tests can reproduce history):
///   1  first rules.
///   2  fix: automation that identifies itself only as a headless browser ("HeadlessChrome",
///      "Headless" builds) was counted as visitors; it is a bot.
/// </summary>
public static partial class ProcessingLogic
{
    public const ushort Current = 2;
    public static readonly ushort[] Versions = [1, 2];

    public static bool IsKnown(ushort version) => Versions.Contains(version);

    public static Derived Derive(string url, string referrer, string userAgent, uint screenWidth, ushort version = Current)
    {
        Uri.TryCreate(url, UriKind.Absolute, out var page);
        string hostname = page is null ? "" : StripWww(page.Host);
        string pathname = page is null ? "" : page.AbsolutePath;
        string query = page?.Query ?? "";
        string utmSource = QueryParameter(query, "utm_source");
        return new Derived(
            hostname,
            pathname,
            ReferrerSource(referrer, hostname, utmSource),
            utmSource,
            QueryParameter(query, "utm_medium"),
            QueryParameter(query, "utm_campaign"),
            QueryParameter(query, "utm_content"),
            QueryParameter(query, "utm_term"),
            Device(screenWidth),
            Browser(userAgent),
            OperatingSystem(userAgent),
            IsBot(userAgent, version));
    }

    /// <summary>Missing user agents and automation are bots: browsers always send one.</summary>
    public static bool IsBot(string userAgent, ushort version = Current) =>
        userAgent.Length == 0 || BotPattern().IsMatch(userAgent) || (version >= 2 && HeadlessPattern().IsMatch(userAgent));

    [GeneratedRegex(@"bot|crawl|spider|slurp|lighthouse|pingdom|phantomjs|selenium|puppeteer|playwright|curl/|wget/|python-requests|go-http-client|java/|okhttp|scrapy", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex BotPattern();

    [GeneratedRegex(@"headless", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex HeadlessPattern();

    /// <summary>Screen-width classes (CSS px), the breakpoints most sites design for.</summary>
    public static string Device(uint screenWidth) => screenWidth switch
    {
        0 => "Unknown",
        < 576 => "Mobile",
        < 992 => "Tablet",
        < 1440 => "Laptop",
        _ => "Desktop",
    };

    public static string Browser(string ua) =>
        ua.Contains("Edg/", StringComparison.Ordinal) ? "Edge"
        : ua.Contains("OPR/", StringComparison.Ordinal) || ua.Contains("Opera", StringComparison.Ordinal) ? "Opera"
        : ua.Contains("SamsungBrowser/", StringComparison.Ordinal) ? "Samsung Internet"
        : ua.Contains("Firefox/", StringComparison.Ordinal) || ua.Contains("FxiOS/", StringComparison.Ordinal) ? "Firefox"
        : ua.Contains("Chrome/", StringComparison.Ordinal) || ua.Contains("CriOS/", StringComparison.Ordinal) || ua.Contains("Chromium/", StringComparison.Ordinal) ? "Chrome"
        : ua.Contains("Safari/", StringComparison.Ordinal) ? "Safari"
        : "Other";

    public static string OperatingSystem(string ua) =>
        ua.Contains("Windows", StringComparison.Ordinal) ? "Windows"
        : ua.Contains("Android", StringComparison.Ordinal) ? "Android"
        : ua.Contains("iPhone", StringComparison.Ordinal) || ua.Contains("iPad", StringComparison.Ordinal) ? "iOS"
        : ua.Contains("CrOS", StringComparison.Ordinal) ? "ChromeOS"
        : ua.Contains("Mac OS X", StringComparison.Ordinal) || ua.Contains("Macintosh", StringComparison.Ordinal) ? "macOS"
        : ua.Contains("Linux", StringComparison.Ordinal) ? "Linux"
        : "Other";

    private static readonly (string Suffix, string Source)[] KnownSources =
    [
        ("google.", "Google"), ("bing.com", "Bing"), ("duckduckgo.com", "DuckDuckGo"), ("yahoo.com", "Yahoo"),
        ("yandex.", "Yandex"), ("baidu.com", "Baidu"), ("ecosia.org", "Ecosia"),
        ("facebook.com", "Facebook"), ("instagram.com", "Instagram"), ("t.co", "Twitter"), ("twitter.com", "Twitter"),
        ("x.com", "Twitter"), ("linkedin.com", "LinkedIn"), ("lnkd.in", "LinkedIn"), ("reddit.com", "Reddit"),
        ("news.ycombinator.com", "Hacker News"), ("github.com", "GitHub"), ("youtube.com", "YouTube"),
        ("chatgpt.com", "ChatGPT"), ("perplexity.ai", "Perplexity"),
    ];

    /// <summary>
    /// utm_source wins when present; an empty referrer or one from the same site is "Direct / None";
    /// well-known hosts get their brand; anything else is the referring host.
    /// </summary>
    public static string ReferrerSource(string referrer, string pageHost, string utmSource)
    {
        if (utmSource.Length > 0) return utmSource;
        if (referrer.Length == 0 || !Uri.TryCreate(referrer, UriKind.Absolute, out var from)) return "Direct / None";
        string host = StripWww(from.Host);
        if (host == pageHost) return "Direct / None";
        foreach (var (suffix, source) in KnownSources)
        {
            bool match = suffix.EndsWith('.')
                ? host.StartsWith(suffix, StringComparison.Ordinal) || host.Contains("." + suffix, StringComparison.Ordinal)
                : host == suffix || host.EndsWith("." + suffix, StringComparison.Ordinal);
            if (match) return source;
        }
        return host;
    }

    private static string StripWww(string host) =>
        host.StartsWith("www.", StringComparison.OrdinalIgnoreCase) ? host[4..].ToLowerInvariant() : host.ToLowerInvariant();

    private static string QueryParameter(string query, string name)
    {
        // query is "?a=1&b=2" (Uri.Query keeps the escaping).
        foreach (var part in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            string key = eq < 0 ? part : part[..eq];
            if (key.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                string value = eq < 0 ? "" : part[(eq + 1)..];
                return Uri.UnescapeDataString(value.Replace('+', ' '));
            }
        }
        return "";
    }
}
