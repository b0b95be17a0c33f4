namespace Analytics.Enrichment.Referrers;

/// <summary>What kind of place a visit came from, as the referrer tables (or utm_source) say.</summary>
public enum ReferrerCategory : byte
{
    /// <summary>No referrer, or one that is malformed or of a scheme other than http(s) and android-app.</summary>
    None,
    /// <summary>The same site (same host, or one is a subdomain of the other): not a source.</summary>
    Internal,
    Search,
    Social,
    Video,
    Email,
    /// <summary>AI assistants and answer engines (ChatGPT, Perplexity, …): our table only.</summary>
    Ai,
    /// <summary>A known source whose medium referers.yml leaves open (support.google.com, news.yahoo.com).</summary>
    Unknown,
    /// <summary>A site or Android app neither table names.</summary>
    Other,
}

/// <summary>A named source from the tables: "Google" (search), "Gmail" (email).</summary>
public sealed record KnownSource(string Name, ReferrerCategory Category);

/// <summary>Where the visit came from and the channel it belongs to (docs/enrichment.md, "Channels").</summary>
/// <param name="Source">utm_source when present, else the referrer's source name, else the
/// referring host (or Android package), else the network of a click id, else "Direct / None".</param>
/// <param name="Channel">One of <see cref="Channels"/>.</param>
/// <param name="Medium">utm_medium when present, else what the referrer or click id implies:
/// organic, social, video, email, ai, referral, cpc, display or "(none)".</param>
public readonly record struct TrafficSource(string Source, string Channel, string Medium);

/// <summary>The channel names: GA4's default channel group plus "AI assistants".</summary>
public static class Channels
{
    public const string Direct = "Direct";
    public const string CrossNetwork = "Cross-network";
    public const string PaidSearch = "Paid Search";
    public const string PaidSocial = "Paid Social";
    public const string PaidVideo = "Paid Video";
    public const string Display = "Display";
    public const string PaidOther = "Paid Other";
    public const string AiAssistants = "AI assistants";
    public const string OrganicSocial = "Organic Social";
    public const string OrganicVideo = "Organic Video";
    public const string OrganicSearch = "Organic Search";
    public const string Email = "Email";
    public const string Affiliates = "Affiliates";
    public const string Audio = "Audio";
    public const string Sms = "SMS";
    public const string Referral = "Referral";
    public const string Unassigned = "Unassigned";
}
