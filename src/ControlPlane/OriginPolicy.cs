namespace Analytics.ControlPlane;

/// <summary>
/// Which web pages may send events for a site, decided from the browser's <c>Origin</c> header
/// (or, without one, the origin of its <c>Referer</c>). Contract:
/// <list type="bullet">
/// <item>A site with allowed origins accepts exactly those: <c>https://shop.example</c> (scheme,
/// host and port must match; the port defaults to the scheme's) or a wildcard
/// <c>https://*.shop.example</c> (any subdomain, not the domain itself).</item>
/// <item>A site with none accepts its own domain and every subdomain of it, over http or https,
/// on any port: the sensible default for a site that never configured anything.</item>
/// <item><c>Origin: null</c> (sandboxed frames, <c>file:</c> pages) and anything that is not an
/// http(s) origin are refused.</item>
/// </list>
/// A request with neither header is not a web page (a server-side client, a load tool): it is
/// let through, since it could claim any origin anyway; rate limits bound it. The policy is built
/// once per site and cached with the site (<see cref="SiteRegistry"/>); checking allocates nothing.
/// </summary>
public sealed class OriginPolicy
{
    private readonly Entry[] _entries;

    private readonly record struct Entry(string Scheme, string Host, int Port, bool Subdomains);

    private OriginPolicy(Entry[] entries) => _entries = entries;

    /// <summary>The allowed origins as configured (empty: the domain default).</summary>
    public IReadOnlyList<string> Configured { get; private init; } = [];

    public static OriginPolicy For(string domain, IReadOnlyList<string> allowedOrigins)
    {
        if (allowedOrigins.Count == 0)
        {
            string host = domain.Trim().TrimEnd('.').ToLowerInvariant();
            // Port -1: any port. Exact host and every subdomain, both schemes.
            return new OriginPolicy([new("http", host, -1, false), new("http", host, -1, true), new("https", host, -1, false), new("https", host, -1, true)]);
        }
        var entries = new Entry[allowedOrigins.Count];
        for (int i = 0; i < entries.Length; i++)
        {
            if (!TryParse(allowedOrigins[i], allowWildcard: true, out var scheme, out var host, out int port, out bool wildcard))
                throw new ArgumentException($"origin: '{allowedOrigins[i]}' is not an origin.");
            entries[i] = new Entry(scheme, host, port, wildcard);
        }
        return new OriginPolicy(entries) { Configured = allowedOrigins };
    }

    /// <summary>
    /// Normalises an allowed origin given by an operator: <c>scheme://host[:port]</c> with an
    /// optional leading <c>*.</c> on the host, lower case, no default port, no path.
    /// </summary>
    public static string Normalize(string origin)
    {
        if (!TryParse(origin.Trim(), allowWildcard: true, out var scheme, out var host, out int port, out bool wildcard))
            throw new ArgumentException($"origin: '{origin}' is not an origin (scheme://host[:port], or scheme://*.domain for its subdomains).");
        return $"{scheme}://{(wildcard ? "*." : "")}{host}{(port == DefaultPort(scheme) ? "" : ":" + port)}";
    }

    /// <summary>True when a page at <paramref name="origin"/> (as browsers send it) may send events.</summary>
    public bool Allows(ReadOnlySpan<char> origin)
    {
        if (!TryParse(origin, allowWildcard: false, out var scheme, out var host, out int port, out _)) return false;
        foreach (var e in _entries)
        {
            if (!scheme.SequenceEqual(e.Scheme)) continue;
            if (e.Port != -1 && e.Port != port) continue;
            if (e.Subdomains)
            {
                if (host.Length > e.Host.Length + 1 && host.EndsWith(e.Host, StringComparison.Ordinal) && host[host.Length - e.Host.Length - 1] == '.') return true;
            }
            else if (host.SequenceEqual(e.Host)) return true;
        }
        return false;
    }

    private static int DefaultPort(ReadOnlySpan<char> scheme) => scheme.SequenceEqual("https") ? 443 : 80;

    /// <summary>Splits scheme://host[:port] without allocating (host and scheme as slices, lower-cased by the check).</summary>
    private static bool TryParse(ReadOnlySpan<char> text, bool allowWildcard, out ReadOnlySpan<char> scheme, out ReadOnlySpan<char> host, out int port, out bool wildcard)
    {
        scheme = host = default;
        port = 0;
        wildcard = false;
        int sep = text.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0) return false;
        scheme = text[..sep];
        if (!(scheme.SequenceEqual("https") || scheme.SequenceEqual("http"))) return false;
        var authority = text[(sep + 3)..];
        if (authority.Length == 0 || authority.Length > 260) return false;
        int colon = authority.LastIndexOf(':');
        // An IPv6 literal ([::1]) has colons inside its brackets.
        if (colon >= 0 && authority.LastIndexOf(']') < colon)
        {
            if (!int.TryParse(authority[(colon + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535) return false;
            host = authority[..colon];
        }
        else
        {
            port = DefaultPort(scheme);
            host = authority;
        }
        if (allowWildcard && host.StartsWith("*.", StringComparison.Ordinal))
        {
            wildcard = true;
            host = host[2..];
        }
        if (host.Length == 0) return false;
        foreach (char c in host)
        {
            // Browsers send hosts lower-cased and punycoded; anything else is not an origin they send.
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '.' or '[' or ']' or ':')) return false;
        }
        return true;
    }

    private static bool TryParse(string text, bool allowWildcard, out string scheme, out string host, out int port, out bool wildcard)
    {
        bool ok = TryParse(text.ToLowerInvariant().AsSpan(), allowWildcard, out var s, out var h, out port, out wildcard);
        scheme = s.ToString();
        host = h.ToString();
        return ok;
    }

    /// <summary>The origin of a Referer URL (scheme://host[:port]), or empty when it has none.</summary>
    public static ReadOnlySpan<char> OriginOfUrl(ReadOnlySpan<char> url)
    {
        int sep = url.IndexOf("://", StringComparison.Ordinal);
        if (sep <= 0) return default;
        int end = url[(sep + 3)..].IndexOfAny('/', '?', '#');
        return end < 0 ? url : url[..(sep + 3 + end)];
    }
}
