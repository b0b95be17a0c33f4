namespace Analytics.Enrichment.Referrers;

/// <summary>
/// The channel table of docs/enrichment.md ("Channels"), rule for rule, in its order: the first
/// rule that matches decides. GA4's default channel group is the model (its lists of search,
/// social and video sites are our referrer tables); "AI assistants" is ours. Keep this file and
/// the table in the docs identical: the tests are written from the table.
/// </summary>
internal static class ChannelRules
{
    /// <param name="sourceCategory">The category of utm_source when present, else of the referrer.</param>
    /// <param name="referrer">The category of the referrer alone.</param>
    public static string Channel(ReferrerCategory sourceCategory, ReferrerCategory referrer, in CampaignParameters campaign)
    {
        var medium = campaign.UtmMedium.AsSpan().Trim();
        var source = campaign.UtmSource.AsSpan().Trim();
        var ids = campaign.ClickIds;
        bool paid = IsPaidMedium(medium);

        // 1. Direct: no campaign parameters, no click id, no external referrer.
        if (source.IsEmpty && medium.IsEmpty && ids == ClickIds.None
            && referrer is ReferrerCategory.None or ReferrerCategory.Internal) return Channels.Direct;
        // 2. Cross-network (Performance Max and other campaigns across Google's networks).
        if (campaign.UtmCampaign.Contains("cross-network", StringComparison.OrdinalIgnoreCase)) return Channels.CrossNetwork;
        // 3-5. Paid on a kind of site; auto-tagging click ids win over utm_medium, as in GA4.
        if ((ids & ClickIds.PaidSearch) != 0 || (paid && sourceCategory == ReferrerCategory.Search)) return Channels.PaidSearch;
        if ((ids & ClickIds.PaidSocial) != 0 || (paid && sourceCategory == ReferrerCategory.Social)) return Channels.PaidSocial;
        if (paid && sourceCategory == ReferrerCategory.Video) return Channels.PaidVideo;
        // 6. Display.
        if ((ids & ClickIds.Dclid) != 0 || IsAny(medium, "display", "banner", "expandable", "interstitial", "cpm")) return Channels.Display;
        // 7. Paid Other.
        if (paid) return Channels.PaidOther;
        // 8. AI assistants.
        if (sourceCategory == ReferrerCategory.Ai) return Channels.AiAssistants;
        // 9. Organic Social (fbclid: Meta tags every outbound link, so it names the source only).
        if (sourceCategory == ReferrerCategory.Social || (ids & ClickIds.Fbclid) != 0
            || IsAny(medium, "social", "social-network", "social-media", "sm", "social network", "social media")) return Channels.OrganicSocial;
        // 10. Organic Video.
        if (sourceCategory == ReferrerCategory.Video || medium.Contains("video", StringComparison.OrdinalIgnoreCase)) return Channels.OrganicVideo;
        // 11. Organic Search.
        if (sourceCategory == ReferrerCategory.Search || medium.Equals("organic", StringComparison.OrdinalIgnoreCase)) return Channels.OrganicSearch;
        // 12. Email.
        if (sourceCategory == ReferrerCategory.Email || IsEmailWord(source) || IsEmailWord(medium)) return Channels.Email;
        // 13-15. Named by utm_medium (and utm_source for SMS).
        if (medium.Equals("affiliate", StringComparison.OrdinalIgnoreCase)) return Channels.Affiliates;
        if (medium.Equals("audio", StringComparison.OrdinalIgnoreCase)) return Channels.Audio;
        if (source.Equals("sms", StringComparison.OrdinalIgnoreCase) || medium.Equals("sms", StringComparison.OrdinalIgnoreCase)) return Channels.Sms;
        // 16. Referral: said so, or a site or app the tables know without a medium, or do not know.
        if (IsAny(medium, "referral", "app", "link")
            || (medium.IsEmpty && sourceCategory is ReferrerCategory.Unknown or ReferrerCategory.Other)) return Channels.Referral;
        // 17. Everything else.
        return Channels.Unassigned;
    }

    /// <summary>GA4's paid-medium pattern ^(.*cp.*|ppc|retargeting|paid.*)$, case-insensitive.</summary>
    private static bool IsPaidMedium(ReadOnlySpan<char> medium) =>
        medium.Contains("cp", StringComparison.OrdinalIgnoreCase)
        || medium.Equals("ppc", StringComparison.OrdinalIgnoreCase)
        || medium.Equals("retargeting", StringComparison.OrdinalIgnoreCase)
        || medium.StartsWith("paid", StringComparison.OrdinalIgnoreCase);

    private static bool IsEmailWord(ReadOnlySpan<char> value) => IsAny(value, "email", "e-mail", "e_mail", "e mail");

    private static bool IsAny(ReadOnlySpan<char> value, params ReadOnlySpan<string> words)
    {
        foreach (string word in words)
            if (value.Equals(word, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }
}
