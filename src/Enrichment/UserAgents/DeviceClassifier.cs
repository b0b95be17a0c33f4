using System.Text.RegularExpressions;

namespace Analytics.Enrichment.UserAgents;

/// <summary>The device types stored in the <c>device</c> column.</summary>
public static class DeviceTypes
{
    public const string Desktop = "Desktop";
    public const string Mobile = "Mobile";
    public const string Tablet = "Tablet";
    public const string Tv = "TV";
    public const string Console = "Console";
    public const string Wearable = "Wearable";
    public const string Xr = "XR";
    public const string Bot = "Bot";
    public const string Unknown = "Unknown";
}

/// <summary>What the user agent alone says about the device (cacheable per user agent).</summary>
public enum UserAgentDeviceKind : byte
{
    /// <summary>Nothing: no known OS, no device tokens.</summary>
    Unknown = 0,
    Spider,
    Tv,
    Console,
    Xr,
    Wearable,
    Tablet,
    Mobile,
    /// <summary>A desktop OS other than macOS.</summary>
    Desktop,
    /// <summary>macOS, which iPads in desktop mode (the default since iPadOS 13) also claim.</summary>
    MacDesktop,
}

/// <summary>
/// Device type from the user agent, client hints and screen width. The rules, in order (the
/// first that applies wins; the table in docs/enrichment.md is the same list):
/// <list type="number">
/// <item>uap-core device family "Spider" → Bot (the enricher also maps every bot to Bot).</item>
/// <item><c>Sec-CH-UA-Form-Factors</c>: the first of XR, Watch, Tablet, Mobile, Desktop it lists.</item>
/// <item>User agent names a TV, console, XR headset or wearable → that type (hints cannot say these).</item>
/// <item><c>Sec-CH-UA-Mobile: ?1</c> → Mobile.</item>
/// <item><c>Sec-CH-UA-Platform: "Android"</c> with <c>?0</c> → Tablet (a phone in desktop mode
///   also sends this: screen width under 600 px → Mobile).</item>
/// <item><c>Sec-CH-UA-Platform</c> Windows, macOS, Linux, Chrome OS with <c>?0</c> → Desktop.</item>
/// <item>User agent says tablet (iPad, Kindle, Android without "Mobile", "Tablet" token) → Tablet;
///   says phone (iPhone, Android "Mobile" or an Android app, Windows Phone, feature phones) → Mobile.</item>
/// <item>macOS user agent with a screen width of 1 to 1024 CSS px → Tablet: an iPad in desktop
///   mode (iPads report their portrait width, 744 to 1024; no Mac screen is that narrow),
///   otherwise Desktop. Any other desktop OS → Desktop.</item>
/// <item>Nothing known: screen width alone, the old thresholds: 0 → Unknown, under 576 → Mobile,
///   under 992 → Tablet, else Desktop.</item>
/// </list>
/// </summary>
public static partial class DeviceClassifier
{
    /// <summary>Widest iPad portrait width in CSS px (iPad Pro 12.9"): the Mac-or-iPad tie-break.</summary>
    public const uint WidestIpadScreen = 1024;

    /// <summary>Narrowest tablet in CSS px, for Android phones in desktop mode (Material's breakpoint).</summary>
    public const uint NarrowestTablet = 600;

    public static string Classify(string userAgent, in ClientDescription client, ClientHints hints, uint screenWidth) =>
        Classify(FromUserAgent(userAgent, client), hints, screenWidth);

    /// <summary>The user-agent part of the rules: a function of the user agent only, so callers cache it.</summary>
    public static UserAgentDeviceKind FromUserAgent(string userAgent, in ClientDescription client)
    {
        if (client.DeviceFamily == "Spider") return UserAgentDeviceKind.Spider;
        string os = client.Os;
        string family = client.DeviceFamily;
        if (TvPattern().IsMatch(userAgent) || family is "HbbTV" or "NetCast.TV" or "Inettv" or "AppleTV" or "GoogleTV" or "WebTV")
            return UserAgentDeviceKind.Tv;
        if (ConsolePattern().IsMatch(userAgent)) return UserAgentDeviceKind.Console;
        if (XrPattern().IsMatch(userAgent)) return UserAgentDeviceKind.Xr;
        if (os == "watchOS" || family is "Apple Watch" || family.StartsWith("Glass", StringComparison.Ordinal) || WearablePattern().IsMatch(userAgent))
            return UserAgentDeviceKind.Wearable;
        if (family is "iPad" or "Generic Tablet" || family.StartsWith("Kindle", StringComparison.Ordinal) || TabletPattern().IsMatch(userAgent))
            return UserAgentDeviceKind.Tablet;
        if (family is "iPhone" or "iPod" or "Generic Smartphone" or "Generic Feature Phone") return UserAgentDeviceKind.Mobile;
        // Android's convention for browsers since 3.0: phones put "Mobile" in the user agent,
        // tablets do not. Apps' own user agents ("Mozilla/5.0 (Android) SomeApp/2.0") follow no
        // convention and count as phones, which most Android devices are.
        if (os == "Android" && !userAgent.Contains("Mobile", StringComparison.Ordinal)
            && (userAgent.Contains("AppleWebKit", StringComparison.Ordinal) || userAgent.Contains("Gecko/", StringComparison.Ordinal)))
            return UserAgentDeviceKind.Tablet;
        if (os is "iOS" or "Android" || MobilePattern().IsMatch(userAgent)) return UserAgentDeviceKind.Mobile;
        if (os == "Mac OS X") return UserAgentDeviceKind.MacDesktop;
        if (os.StartsWith("Windows", StringComparison.Ordinal) || os is "Linux" or "Ubuntu" or "Chrome OS" or "Fedora" or "Debian"
            or "FreeBSD" or "OpenBSD" or "NetBSD" or "Linux Mint" or "Red Hat" or "SUSE" or "Gentoo" or "Mandriva" or "Slackware" or "Solaris")
            return UserAgentDeviceKind.Desktop;
        return UserAgentDeviceKind.Unknown;
    }

    /// <summary>Combines the cached user-agent part with this request's hints and screen width. Allocation-free.</summary>
    public static string Classify(UserAgentDeviceKind kind, ClientHints hints, uint screenWidth)
    {
        if (kind == UserAgentDeviceKind.Spider) return DeviceTypes.Bot;
        string? fromFormFactors = FromFormFactors(hints.FormFactors);
        if (fromFormFactors is not null) return fromFormFactors;
        switch (kind)
        {
            case UserAgentDeviceKind.Tv: return DeviceTypes.Tv;
            case UserAgentDeviceKind.Console: return DeviceTypes.Console;
            case UserAgentDeviceKind.Xr: return DeviceTypes.Xr;
            case UserAgentDeviceKind.Wearable: return DeviceTypes.Wearable;
        }
        if (hints.MobileTrue) return DeviceTypes.Mobile;
        if (hints.MobileFalse)
        {
            var platform = hints.PlatformName;
            if (platform.Equals("Android", StringComparison.OrdinalIgnoreCase))
                return screenWidth is > 0 and < NarrowestTablet ? DeviceTypes.Mobile : DeviceTypes.Tablet;
            if (platform.Equals("Windows", StringComparison.OrdinalIgnoreCase) || platform.Equals("macOS", StringComparison.OrdinalIgnoreCase)
                || platform.Equals("Linux", StringComparison.OrdinalIgnoreCase) || platform.Equals("Chrome OS", StringComparison.OrdinalIgnoreCase)
                || platform.Equals("Chromium OS", StringComparison.OrdinalIgnoreCase))
                return DeviceTypes.Desktop;
        }
        return kind switch
        {
            UserAgentDeviceKind.Tablet => DeviceTypes.Tablet,
            UserAgentDeviceKind.Mobile => DeviceTypes.Mobile,
            UserAgentDeviceKind.MacDesktop => screenWidth is > 0 and <= WidestIpadScreen ? DeviceTypes.Tablet : DeviceTypes.Desktop,
            UserAgentDeviceKind.Desktop => DeviceTypes.Desktop,
            _ => screenWidth switch
            {
                0 => DeviceTypes.Unknown,
                < 576 => DeviceTypes.Mobile,
                < 992 => DeviceTypes.Tablet,
                _ => DeviceTypes.Desktop,
            },
        };
    }

    // Sec-CH-UA-Form-Factors is a list of quoted tokens ("Desktop", "Automotive", "Mobile",
    // "Tablet", "XR", "EInk", "Watch"); the first one we have a type for decides. Automotive and
    // EInk have none and fall through to the other rules.
    private static string? FromFormFactors(string header)
    {
        if (header.Length == 0) return null;
        foreach (var range in header.AsSpan().Split(','))
        {
            var token = header.AsSpan(range).Trim().Trim('"');
            if (token.Equals("XR", StringComparison.OrdinalIgnoreCase)) return DeviceTypes.Xr;
            if (token.Equals("Watch", StringComparison.OrdinalIgnoreCase)) return DeviceTypes.Wearable;
            if (token.Equals("Tablet", StringComparison.OrdinalIgnoreCase)) return DeviceTypes.Tablet;
            if (token.Equals("Mobile", StringComparison.OrdinalIgnoreCase)) return DeviceTypes.Mobile;
            if (token.Equals("Desktop", StringComparison.OrdinalIgnoreCase)) return DeviceTypes.Desktop;
        }
        return null;
    }

    [GeneratedRegex(@"Smart-?TV|SMART-TV|SmartTv|HbbTV|NetCast|Web0S|webOS\.TV|Android TV|GoogleTV|Google TV|AppleTV|Apple TV|AFT[A-Z]|CrKey|Roku|BRAVIA|Tizen[^)]*\bTV\b|Opera TV|Inettv|VIDAA|PhilipsTV|NETTV|SmartHub|\bTV Safari|\(TV;", RegexOptions.CultureInvariant)]
    private static partial Regex TvPattern();

    [GeneratedRegex(@"PlayStation|PLAYSTATION|Xbox|Nintendo|\bWii\b|OUYA", RegexOptions.CultureInvariant)]
    private static partial Regex ConsolePattern();

    [GeneratedRegex(@"OculusBrowser|\bQuest\b|PicoBrowser|Pico Neo|Wolvic|HoloLens|MobileVR|\bVR\b", RegexOptions.CultureInvariant)]
    private static partial Regex XrPattern();

    [GeneratedRegex(@"Wear OS|\bWatch\d|SmartWatch|Galaxy Watch|Tizen[^)]*Wearable|SAMSUNG SM-R\d", RegexOptions.CultureInvariant)]
    private static partial Regex WearablePattern();

    // "Tablet PC" is Windows' touch-screen desktop token, not a tablet.
    [GeneratedRegex(@"iPad|\bTablet\b(?! PC)|PlayBook|Kindle|Silk/|\bSM-[TPX]\d|\bGT-P\d|\bSCH-I800|MediaPad|\bXoom\b|IdeaTab|\bTab\b", RegexOptions.CultureInvariant)]
    private static partial Regex TabletPattern();

    [GeneratedRegex(@"Mobile|iPhone|iPod|Windows Phone|Windows CE|IEMobile|BlackBerry|\bBB10\b|Opera Mini|Opera Mobi|KaiOS|Symbian|Series ?60|Series40|MIDP|UP\.Browser|\bJ2ME\b|NetFront|Fennec|\bwebOS\b|Nokia", RegexOptions.CultureInvariant)]
    private static partial Regex MobilePattern();
}
