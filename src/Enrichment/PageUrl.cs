using System.Buffers;

namespace Analytics.Enrichment;

/// <summary>
/// The host, path and query of an absolute URL exactly as System.Uri gives them
/// (<c>Uri.TryCreate(url, UriKind.Absolute, …)</c>, then <c>Host</c>, <c>AbsolutePath</c>,
/// <c>Query</c>), without building a Uri for the URLs agents nearly always send.
///
/// Contract: a plain URL — "http://" or "https://", a DNS name of ASCII letters, digits and
/// hyphens, then a path, query and fragment of characters that Uri neither escapes nor rewrites,
/// no percent escape and no dot segment in the path — is sliced from the string as it is. Anything
/// else (a port, user info, an IP literal, another scheme or letter case of it, whitespace,
/// non-ASCII, backslashes, "%" or "/./" in the path, …) is handed to Uri itself, so the parts are
/// Uri's in every case; only the host's letter case is left as written on the plain path (Uri
/// lower-cases it; hosts compare without case, and callers lower-case what they store).
/// Enrichment.Tests checks the two agree over generated and odd URLs. Why: Uri costs a parse,
/// an object and a string per part for every stored event (perf/README.md, issue #17).
/// </summary>
public readonly ref struct PageUrl
{
    /// <summary>Longer URLs go to Uri: its own length limit (~65,000 characters) must decide them.</summary>
    private const int MaxPlainLength = 8 * 1024;

    /// <summary>What Uri leaves as it is after the host, in path, query and fragment alike:
    /// RFC 3986's unreserved and sub-delimiter characters, ':', '@', '/', '?', '#' and '%'
    /// (escapes: refused in the path below, where Uri may unescape them).</summary>
    private static readonly SearchValues<char> PlainChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?#%");

    private static readonly SearchValues<char> HostChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.");

    private PageUrl(ReadOnlySpan<char> host, ReadOnlySpan<char> path, ReadOnlySpan<char> query)
    {
        Host = host;
        Path = path;
        Query = query;
    }

    /// <summary>Uri.Host, in the letter case written (see the type's contract).</summary>
    public ReadOnlySpan<char> Host { get; }

    /// <summary>Uri.AbsolutePath: "/" when the URL has none.</summary>
    public ReadOnlySpan<char> Path { get; }

    /// <summary>Uri.Query: "?…" up to the fragment, empty when there is no query.</summary>
    public ReadOnlySpan<char> Query { get; }

    /// <summary>False where Uri.TryCreate(url, UriKind.Absolute) is false.</summary>
    public static bool TryParse(string url, out PageUrl parts)
    {
        if (TrySlicePlain(url, out parts)) return true;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            parts = default;
            return false;
        }
        parts = new PageUrl(uri.Host, uri.AbsolutePath, uri.Query);
        return true;
    }

    /// <summary>The plain case alone (tests compare it with Uri); false sends the URL to Uri.</summary>
    internal static bool TrySlicePlain(ReadOnlySpan<char> url, out PageUrl parts)
    {
        parts = default;
        if (url.Length > MaxPlainLength) return false;
        int schemeEnd = url.StartsWith("https://", StringComparison.Ordinal) ? 8 : url.StartsWith("http://", StringComparison.Ordinal) ? 7 : 0;
        if (schemeEnd == 0) return false;
        var rest = url[schemeEnd..];
        int hostEnd = rest.IndexOfAny('/', '?', '#');
        var host = hostEnd < 0 ? rest : rest[..hostEnd];
        var afterHost = hostEnd < 0 ? ReadOnlySpan<char>.Empty : rest[hostEnd..];
        if (!IsPlainHostName(host) || afterHost.ContainsAnyExcept(PlainChars)) return false;
        int fragment = afterHost.IndexOf('#');
        var beforeFragment = fragment < 0 ? afterHost : afterHost[..fragment];
        int queryStart = beforeFragment.IndexOf('?');
        var path = queryStart < 0 ? beforeFragment : beforeFragment[..queryStart];
        // Uri removes dot segments and unescapes some escapes in a path: leave those to it.
        if (path.Contains('%') || path.Contains("/.", StringComparison.Ordinal)) return false;
        var query = queryStart < 0 ? ReadOnlySpan<char>.Empty : beforeFragment[queryStart..];
        if (!HasOnlyKeptEscapes(query)) return false;
        parts = new PageUrl(host, path.IsEmpty ? "/" : path, query);
        return true;
    }

    /// <summary>Whether every '%' starts an escape Uri keeps as it is: of an ASCII character
    /// other than an unreserved one. Uri escapes a '%' that starts no escape ("%25") and
    /// unescapes escaped unreserved characters ("%41" is "A") and, in places, non-ASCII.</summary>
    private static bool HasOnlyKeptEscapes(ReadOnlySpan<char> text)
    {
        for (int i = text.IndexOf('%'); i >= 0; i = text.IndexOf('%'))
        {
            if (i + 2 >= text.Length || !char.IsAsciiHexDigit(text[i + 1]) || !char.IsAsciiHexDigit(text[i + 2])) return false;
            int escaped = (HexValue(text[i + 1]) << 4) | HexValue(text[i + 2]);
            if (escaped >= 0x80 || char.IsAsciiLetterOrDigit((char)escaped) || escaped is '-' or '.' or '_' or '~') return false;
            text = text[(i + 3)..];
        }
        return true;
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    /// <summary>Dot-separated labels of 1-63 letters, digits and inner hyphens, at most 253
    /// characters, the last label starting with a letter: a name Uri takes as it is (a last label
    /// starting with a digit may be an IPv4 address in one of its many forms, "0x7f.1").</summary>
    private static bool IsPlainHostName(ReadOnlySpan<char> host)
    {
        if (host.IsEmpty || host.Length > 253 || host.ContainsAnyExcept(HostChars)) return false;
        int lastLabel = 0;
        while (true)
        {
            int dot = host[lastLabel..].IndexOf('.');
            var label = dot < 0 ? host[lastLabel..] : host.Slice(lastLabel, dot);
            if (label.IsEmpty || label.Length > 63 || label[0] == '-' || label[^1] == '-') return false;
            if (dot < 0) return char.IsAsciiLetter(label[0]);
            lastLabel += dot + 1;
        }
    }
}
