namespace Analytics.Enrichment.Referrers;

/// <summary>
/// Splits a Referer header value into what the tables match on, without allocating: the scheme
/// kind, the host (lower or mixed case, "www." and a trailing dot removed) and the path. Only
/// http(s) and android-app referrers are understood; anything else, and anything malformed
/// (no host, spaces or control characters in the host, empty labels, a non-numeric port), is
/// reported as not parsed, and the classifier treats it as no referrer at all.
/// </summary>
internal static class ReferrerUrl
{
    public enum Scheme : byte { None, Web, AndroidApp }

    public static Scheme Parse(ReadOnlySpan<char> url, out ReadOnlySpan<char> host, out ReadOnlySpan<char> path)
    {
        host = default;
        path = default;
        url = url.Trim();
        int sep = url.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0) return Scheme.None;
        var schemeName = url[..sep];
        Scheme scheme = schemeName.Equals("https", StringComparison.OrdinalIgnoreCase) || schemeName.Equals("http", StringComparison.OrdinalIgnoreCase) ? Scheme.Web
            : schemeName.Equals("android-app", StringComparison.OrdinalIgnoreCase) ? Scheme.AndroidApp
            : Scheme.None;
        if (scheme == Scheme.None) return Scheme.None;

        var rest = url[(sep + 3)..];
        int end = rest.IndexOfAny('/', '?', '#');
        var authority = end < 0 ? rest : rest[..end];
        var afterAuthority = end < 0 ? ReadOnlySpan<char>.Empty : rest[end..];
        int at = authority.LastIndexOf('@');
        if (at >= 0) authority = authority[(at + 1)..];

        if (authority.Length > 0 && authority[0] == '[')
        {
            // IPv6 literal: kept whole as the host, brackets included, as browsers show it.
            int close = authority.IndexOf(']');
            // 45 characters is the longest IPv6 text form (with an embedded IPv4 address).
            if (close < 0 || close > 46 || !IsPort(authority[(close + 1)..])) return Scheme.None;
            host = authority[..(close + 1)];
        }
        else
        {
            int colon = authority.IndexOf(':');
            if (colon >= 0 && !IsPort(authority[colon..])) return Scheme.None;
            host = colon < 0 ? authority : authority[..colon];
            if (host.EndsWith('.')) host = host[..^1];
            if (!IsHostName(host)) return Scheme.None;
            if (scheme == Scheme.Web && host.StartsWith("www.", StringComparison.OrdinalIgnoreCase) && host.Length > 4) host = host[4..];
        }

        int queryOrFragment = afterAuthority.IndexOfAny('?', '#');
        path = queryOrFragment < 0 ? afterAuthority : afterAuthority[..queryOrFragment];
        if (path.IsEmpty) path = "/";
        return scheme;
    }

    /// <summary>":443" or empty.</summary>
    private static bool IsPort(ReadOnlySpan<char> port)
    {
        if (port.IsEmpty) return true;
        if (port[0] != ':' || port.Length == 1 || port.Length > 6) return false;
        foreach (char c in port[1..]) if (!char.IsAsciiDigit(c)) return false;
        return true;
    }

    /// <summary>Letters, digits, '-', '_' and non-ASCII (internationalised names) in dot-separated
    /// non-empty labels.</summary>
    private static bool IsHostName(ReadOnlySpan<char> host)
    {
        if (host.IsEmpty || host.Length > 253 || host[0] == '.') return false;
        char previous = '\0';
        foreach (char c in host)
        {
            if (c == '.') { if (previous == '.') return false; }
            else if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_' || (c > 0x7F && !char.IsWhiteSpace(c) && !char.IsControl(c)))) return false;
            previous = c;
        }
        return true;
    }
}
