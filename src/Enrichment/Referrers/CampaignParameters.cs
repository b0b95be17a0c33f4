namespace Analytics.Enrichment.Referrers;

/// <summary>
/// Ad-platform click ids found in a landing page's query. Auto-tagging platforms add them to
/// every ad click, so they say "paid" even when a campaign has no utm_* parameters.
/// </summary>
[Flags]
public enum ClickIds : ushort
{
    None = 0,
    /// <summary>Google Ads (gclid; gbraid and wbraid on iOS app and web campaigns).</summary>
    Gclid = 1 << 0,
    Gbraid = 1 << 1,
    Wbraid = 1 << 2,
    /// <summary>Microsoft Advertising.</summary>
    Msclkid = 1 << 3,
    /// <summary>Yandex Direct.</summary>
    Yclid = 1 << 4,
    /// <summary>Google Display &amp; Video 360 / Campaign Manager.</summary>
    Dclid = 1 << 5,
    /// <summary>TikTok Ads.</summary>
    Ttclid = 1 << 6,
    /// <summary>LinkedIn Ads.</summary>
    LiFatId = 1 << 7,
    /// <summary>X (Twitter) Ads.</summary>
    Twclid = 1 << 8,
    /// <summary>Snapchat Ads.</summary>
    ScCid = 1 << 9,
    /// <summary>Pinterest Ads.</summary>
    Epik = 1 << 10,
    /// <summary>Meta adds fbclid to every outbound link from Facebook and Instagram, ads or not:
    /// it names the source, not a paid click.</summary>
    Fbclid = 1 << 11,

    PaidSearch = Gclid | Gbraid | Wbraid | Msclkid | Yclid,
    PaidSocial = Ttclid | LiFatId | Twclid | ScCid | Epik,
}

/// <summary>The landing page's campaign parameters: utm_source, utm_medium, utm_campaign (as
/// given, unescaped; empty when absent) and the click ids present.</summary>
public readonly record struct CampaignParameters(string UtmSource, string UtmMedium, string UtmCampaign, ClickIds ClickIds)
{
    public static readonly CampaignParameters None = new("", "", "", ClickIds.None);

    /// <summary>Reads "?a=1&amp;b=2" (or without the '?'). Allocates only the utm values present.</summary>
    public static CampaignParameters FromQuery(ReadOnlySpan<char> query)
    {
        string source = "", medium = "", campaign = "";
        var ids = ClickIdsIn(query);
        if (query.StartsWith('?')) query = query[1..];
        foreach (var range in query.Split('&'))
        {
            var part = query[range];
            int eq = part.IndexOf('=');
            if (eq <= 0) continue;
            var key = part[..eq];
            var value = part[(eq + 1)..];
            if (key.Equals("utm_source", StringComparison.OrdinalIgnoreCase)) { if (source.Length == 0) source = Unescape(value); }
            else if (key.Equals("utm_medium", StringComparison.OrdinalIgnoreCase)) { if (medium.Length == 0) medium = Unescape(value); }
            else if (key.Equals("utm_campaign", StringComparison.OrdinalIgnoreCase)) { if (campaign.Length == 0) campaign = Unescape(value); }
        }
        return new CampaignParameters(source, medium, campaign, ids);
    }

    /// <summary>The click ids in a query, for callers that already have the utm values.</summary>
    public static ClickIds ClickIdsIn(ReadOnlySpan<char> query)
    {
        var ids = ClickIds.None;
        if (query.StartsWith('?')) query = query[1..];
        foreach (var range in query.Split('&'))
        {
            var part = query[range];
            int eq = part.IndexOf('=');
            if (eq > 0 && eq < part.Length - 1) ids |= ClickIdFor(part[..eq]);
        }
        return ids;
    }

    private static ClickIds ClickIdFor(ReadOnlySpan<char> key) => key switch
    {
        _ when key.Equals("gclid", StringComparison.OrdinalIgnoreCase) => ClickIds.Gclid,
        _ when key.Equals("gbraid", StringComparison.OrdinalIgnoreCase) => ClickIds.Gbraid,
        _ when key.Equals("wbraid", StringComparison.OrdinalIgnoreCase) => ClickIds.Wbraid,
        _ when key.Equals("msclkid", StringComparison.OrdinalIgnoreCase) => ClickIds.Msclkid,
        _ when key.Equals("yclid", StringComparison.OrdinalIgnoreCase) => ClickIds.Yclid,
        _ when key.Equals("dclid", StringComparison.OrdinalIgnoreCase) => ClickIds.Dclid,
        _ when key.Equals("ttclid", StringComparison.OrdinalIgnoreCase) => ClickIds.Ttclid,
        _ when key.Equals("li_fat_id", StringComparison.OrdinalIgnoreCase) => ClickIds.LiFatId,
        _ when key.Equals("twclid", StringComparison.OrdinalIgnoreCase) => ClickIds.Twclid,
        _ when key.Equals("ScCid", StringComparison.OrdinalIgnoreCase) => ClickIds.ScCid,
        _ when key.Equals("epik", StringComparison.OrdinalIgnoreCase) => ClickIds.Epik,
        _ when key.Equals("fbclid", StringComparison.OrdinalIgnoreCase) => ClickIds.Fbclid,
        _ => ClickIds.None,
    };

    private static string Unescape(ReadOnlySpan<char> value)
    {
        string text = value.ToString().Replace('+', ' ');
        try { return Uri.UnescapeDataString(text).Trim(); }
        catch (UriFormatException) { return text.Trim(); }
    }
}
