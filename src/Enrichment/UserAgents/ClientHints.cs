namespace Analytics.Enrichment.UserAgents;

/// <summary>
/// User-agent client hints as the browser sent them, raw header values (structured-field syntax:
/// <c>?1</c>, <c>"Android"</c>, <c>"Tablet", "Mobile"</c>); empty when not sent. Chromium sends
/// <c>Sec-CH-UA-Mobile</c> and <c>Sec-CH-UA-Platform</c> on every same-origin request; the model
/// and form factors only when the page asked for them (<c>Accept-CH</c>), and cross-origin
/// requests get none unless the page delegates them (<c>Permissions-Policy</c>).
/// </summary>
public readonly record struct ClientHints(string Mobile, string Platform, string Model, string FormFactors)
{
    public static ClientHints None => new("", "", "", "");

    public bool IsEmpty => Mobile.Length == 0 && Platform.Length == 0 && Model.Length == 0 && FormFactors.Length == 0;

    /// <summary><c>Sec-CH-UA-Mobile: ?1</c>: the browser wants the mobile experience (a phone).</summary>
    public bool MobileTrue => Mobile.AsSpan().Trim().SequenceEqual("?1");

    /// <summary><c>Sec-CH-UA-Mobile: ?0</c> (a tablet, a desktop, or a phone in desktop mode).</summary>
    public bool MobileFalse => Mobile.AsSpan().Trim().SequenceEqual("?0");

    /// <summary>The platform without its quotes ("Android", "Windows", "macOS", "Chrome OS"...).</summary>
    public ReadOnlySpan<char> PlatformName => Unquote(Platform);

    public ReadOnlySpan<char> ModelName => Unquote(Model);

    internal static ReadOnlySpan<char> Unquote(string value)
    {
        var s = value.AsSpan().Trim();
        if (s.Length >= 2 && s[0] == '"' && s[^1] == '"') s = s[1..^1];
        return s;
    }
}
