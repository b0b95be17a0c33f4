namespace Analytics.Enrichment.Referrers;

/// <summary>
/// Source, channel and medium of a visit from its referrer, the landing page's host and its
/// campaign parameters (utm_*, click ids).
///
/// Contract: implements the channel table of docs/enrichment.md ("Channels") exactly; rules are
/// ordered and the first match wins (ChannelRules). Referrers are matched like referer-parser
/// does: host without "www.", then leading labels stripped one at a time down to two labels,
/// the most specific host wins, and on one host a longer path prefix wins; our table
/// (referers-extra.yml) takes precedence over referers.yml on the same host. A referrer from the
/// page's own site (same host, or one a subdomain of the other) is internal, not a source.
/// Malformed referrers and schemes other than http(s) and android-app count as no referrer.
/// Thread-safe (immutable after Load); a call allocates only result strings that are not
/// already in the tables (the referring host of an unknown site).
/// </summary>
public sealed class ReferrerClassifier
{
    public const string DirectSource = "Direct / None";

    private readonly ReferrerData _data;

    private ReferrerClassifier(ReferrerData data) => _data = data;

    /// <summary>Loads Snowplow's referers.yml (from scripts/fetch-enrichment-data.sh) together
    /// with our embedded table. Throws ReferrerDataException with one line on a missing or
    /// malformed file.</summary>
    public static ReferrerClassifier Load(string referersYmlPath) => new(ReferrerData.Load(referersYmlPath));

    /// <summary>Hosts in the combined tables (for start-up logs).</summary>
    public int KnownHosts => _data.HostCount;

    public TrafficSource Classify(string referrer, string pageHost, string pageQuery) =>
        Classify(referrer, pageHost, CampaignParameters.FromQuery(pageQuery));

    public TrafficSource Classify(string referrer, string pageHost, in CampaignParameters campaign)
    {
        var match = MatchReferrer(referrer, pageHost, out var hostOrPackage);
        bool hasUtmSource = campaign.UtmSource.Length > 0;
        var sourceCategory = hasUtmSource ? CategoryOfUtmSource(campaign.UtmSource) : match.Category;
        string channel = ChannelRules.Channel(sourceCategory, match.Category, campaign);
        string source = hasUtmSource ? campaign.UtmSource
            : match.Name is { } name ? name
            : match.Category == ReferrerCategory.Other ? LowerCase(hostOrPackage)
            : ClickIdNetwork(campaign.ClickIds) ?? DirectSource;
        string medium = campaign.UtmMedium.Length > 0 ? campaign.UtmMedium : ImpliedMedium(match.Category, campaign.ClickIds);
        return new TrafficSource(source, channel, medium);
    }

    /// <summary>What the referrer alone says: its category and, for a known source, its name.</summary>
    public (ReferrerCategory Category, string? Name) MatchReferrer(string referrer, string pageHost) =>
        MatchReferrer(referrer, pageHost, out _);

    private (ReferrerCategory Category, string? Name) MatchReferrer(string referrer, string pageHost, out ReadOnlySpan<char> host)
    {
        var scheme = ReferrerUrl.Parse(referrer, out host, out var path);
        if (scheme == ReferrerUrl.Scheme.None) return (ReferrerCategory.None, null);
        if (scheme == ReferrerUrl.Scheme.AndroidApp)
            return _data.TryGetApp(host, out var app) ? (app.Category, app.Name) : (ReferrerCategory.Other, null);
        if (IsSameSite(host, pageHost)) return (ReferrerCategory.Internal, null);
        var known = MatchHost(host, path);
        return known is null ? (ReferrerCategory.Other, null) : (known.Category, known.Name);
    }

    /// <summary>The host, then the host without its first label, … down to two labels.</summary>
    private KnownSource? MatchHost(ReadOnlySpan<char> host, ReadOnlySpan<char> path)
    {
        while (true)
        {
            if (_data.TryGetHost(host, out var rules))
                foreach (var rule in rules)
                    if (path.StartsWith(rule.Path, StringComparison.OrdinalIgnoreCase)) return rule.Source;
            int dot = host.IndexOf('.');
            if (dot < 0 || host[(dot + 1)..].IndexOf('.') < 0) return null;
            host = host[(dot + 1)..];
        }
    }

    /// <summary>utm_source names a source by its name or one of our aliases ("google", "fb"),
    /// or by a host as a referrer would ("chatgpt.com").</summary>
    private ReferrerCategory CategoryOfUtmSource(string utmSource)
    {
        var name = utmSource.AsSpan().Trim();
        if (_data.TryGetName(name, out var known)) return known.Category;
        if (name.Contains('.') && !name.ContainsAny(' ', '/'))
        {
            if (name.StartsWith("www.", StringComparison.OrdinalIgnoreCase)) name = name[4..];
            if (MatchHost(name, "/") is { } byHost) return byHost.Category;
        }
        return ReferrerCategory.None;
    }

    private static bool IsSameSite(ReadOnlySpan<char> host, string pageHost)
    {
        var page = pageHost.AsSpan();
        if (page.StartsWith("www.", StringComparison.OrdinalIgnoreCase)) page = page[4..];
        if (page.IsEmpty) return false;
        return host.Equals(page, StringComparison.OrdinalIgnoreCase)
            || IsSubdomainOf(host, page) || IsSubdomainOf(page, host);

        static bool IsSubdomainOf(ReadOnlySpan<char> sub, ReadOnlySpan<char> parent) =>
            sub.Length > parent.Length + 1 && sub[^(parent.Length + 1)] == '.' && sub.EndsWith(parent, StringComparison.OrdinalIgnoreCase);
    }

    private static string ImpliedMedium(ReferrerCategory category, ClickIds clickIds) =>
        (clickIds & (ClickIds.PaidSearch | ClickIds.PaidSocial)) != 0 ? "cpc"
        : (clickIds & ClickIds.Dclid) != 0 ? "display"
        : category switch
        {
            ReferrerCategory.Search => "organic",
            ReferrerCategory.Social => "social",
            ReferrerCategory.Video => "video",
            ReferrerCategory.Email => "email",
            ReferrerCategory.Ai => "ai",
            ReferrerCategory.Unknown or ReferrerCategory.Other => "referral",
            _ => (clickIds & ClickIds.Fbclid) != 0 ? "social" : "(none)",
        };

    /// <summary>The network behind a click id, for visits that carry one but no referrer (a
    /// strict Referrer-Policy, an app). Names as referers.yml spells them.</summary>
    private static string? ClickIdNetwork(ClickIds ids) =>
        (ids & (ClickIds.Gclid | ClickIds.Gbraid | ClickIds.Wbraid | ClickIds.Dclid)) != 0 ? "Google"
        : (ids & ClickIds.Msclkid) != 0 ? "Bing"
        : (ids & ClickIds.Yclid) != 0 ? "Yandex"
        : (ids & ClickIds.Ttclid) != 0 ? "TikTok"
        : (ids & ClickIds.LiFatId) != 0 ? "LinkedIn"
        : (ids & ClickIds.Twclid) != 0 ? "Twitter"
        : (ids & ClickIds.ScCid) != 0 ? "Snapchat"
        : (ids & ClickIds.Epik) != 0 ? "Pinterest"
        : (ids & ClickIds.Fbclid) != 0 ? "Facebook"
        : null;

    private static string LowerCase(ReadOnlySpan<char> host)
    {
        // Hosts are at most 253 characters (ReferrerUrl checks), so the scratch fits the stack.
        Span<char> lower = stackalloc char[host.Length];
        host.ToLowerInvariant(lower);
        return new string(lower);
    }
}
