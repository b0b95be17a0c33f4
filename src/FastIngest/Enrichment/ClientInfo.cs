using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Analytics.FastIngest.Enrichment;

/// <summary>
/// What the server knows about the sender, prepared once per WebSocket connection (once per
/// request over HTTP) so the per-event path only copies bytes. The full IP address lives here,
/// in memory, only while the connection is open: it is hashed into the visitor id and reduced
/// to a prefix before anything is written. The user-agent client hints (<c>Sec-CH-UA-Mobile</c>,
/// <c>-Platform</c>, <c>-Model</c>, <c>-Form-Factors</c>) are kept as sent, each cut to
/// <see cref="MaxClientHintBytes"/>, so Rollup's device rules can use them and reprocessing can
/// apply newer rules; they are absent (empty) on cross-origin requests unless the merchant's page
/// delegates them, and from non-Chromium browsers.
/// </summary>
public sealed class ClientInfo
{
    /// <summary>
    /// Longest hint value kept. Real values are short ("?1", "\"Android\"", a model name of a few
    /// dozen bytes); the cap only bounds what a hostile client can make us store per event.
    /// </summary>
    public const int MaxClientHintBytes = 64;

    public ClientInfo(IPAddress? address, string? userAgent, int maxUserAgentBytes)
        : this(address, userAgent, maxUserAgentBytes, null, null, null, null)
    {
    }

    public ClientInfo(IPAddress? address, string? userAgent, int maxUserAgentBytes,
        string? chUaMobile, string? chUaPlatform, string? chUaModel, string? chUaFormFactors)
    {
        address ??= IPAddress.Loopback;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        // Written into one array rather than through MapToIPv6, GetAddressBytes and a formatted
        // string: over HTTP this runs for every request, a beacon's single event included.
        bool v4 = address.AddressFamily == AddressFamily.InterNetwork;
        var mapped = new byte[16];
        if (v4)
        {
            mapped[10] = mapped[11] = 0xFF;
            address.TryWriteBytes(mapped.AsSpan(12), out _);
        }
        else
        {
            address.TryWriteBytes(mapped, out _);
        }
        AddressBytes = mapped;
        IpPrefixUtf8 = v4 ? Ipv4PrefixUtf8(mapped.AsSpan(12)) : Encoding.ASCII.GetBytes(TruncatedPrefix(address));
        UserAgentUtf8 = Utf8(userAgent, maxUserAgentBytes);
        ChUaMobileUtf8 = Utf8(chUaMobile, MaxClientHintBytes);
        ChUaPlatformUtf8 = Utf8(chUaPlatform, MaxClientHintBytes);
        ChUaModelUtf8 = Utf8(chUaModel, MaxClientHintBytes);
        ChUaFormFactorsUtf8 = Utf8(chUaFormFactors, MaxClientHintBytes);
        // Rate limits count an IPv4 address alone and an IPv6 address by its /64 (one subscriber's block).
        Span<byte> key = stackalloc byte[16];
        mapped.CopyTo(key);
        if (!v4) key[8..].Clear();
        RateKey = System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(key);
    }

    /// <summary>The sending page's origin: the Origin header, else the origin of the Referer, else
    /// null (not a browser page: a server-side client, a load tool). Cut to 256 characters.</summary>
    public string? Origin { get; init; }

    /// <summary>The key of the sender's address in per-IP limits (IPv6: its /64).</summary>
    public UInt128 RateKey { get; }

    /// <summary>The sender as the request shows it: peer address and the headers kept with every event.</summary>
    public static ClientInfo FromRequest(HttpContext context, int maxUserAgentBytes)
    {
        var headers = context.Request.Headers;
        return new ClientInfo(context.Connection.RemoteIpAddress, headers.UserAgent, maxUserAgentBytes,
            headers["Sec-CH-UA-Mobile"], headers["Sec-CH-UA-Platform"], headers["Sec-CH-UA-Model"], headers["Sec-CH-UA-Form-Factors"])
        {
            Origin = OriginOf(headers),
        };
    }

    private static string? OriginOf(IHeaderDictionary headers)
    {
        string? origin = headers.Origin;
        if (string.IsNullOrEmpty(origin))
        {
            string? referer = headers.Referer;
            if (string.IsNullOrEmpty(referer)) return null;
            origin = Analytics.ControlPlane.OriginPolicy.OriginOfUrl(referer).ToString();
            // A Referer that is not a URL still came from somewhere: refused, not waved through.
            if (origin.Length == 0) return "null";
        }
        return origin.Length <= 256 ? origin : origin[..256];
    }

    /// <summary>16 bytes (IPv4 mapped into IPv6), input to the visitor hash only.</summary>
    internal byte[] AddressBytes { get; }

    /// <summary>"203.0.113.0/24" or "2001:db8:1::/48": what may be stored of the address.</summary>
    public byte[] IpPrefixUtf8 { get; }

    public byte[] UserAgentUtf8 { get; }

    public byte[] ChUaMobileUtf8 { get; }

    public byte[] ChUaPlatformUtf8 { get; }

    public byte[] ChUaModelUtf8 { get; }

    public byte[] ChUaFormFactorsUtf8 { get; }

    /// <summary>Bytes of all the client hints together (for sizing record buffers).</summary>
    public int ClientHintBytes => ChUaMobileUtf8.Length + ChUaPlatformUtf8.Length + ChUaModelUtf8.Length + ChUaFormFactorsUtf8.Length;

    public static string TruncatedPrefix(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            bytes[3] = 0;
            return new IPAddress(bytes) + "/24";
        }
        for (int i = 6; i < bytes.Length; i++) bytes[i] = 0;
        return new IPAddress(bytes) + "/48";
    }

    /// <summary>"a.b.c.0/24" as <see cref="TruncatedPrefix"/> writes it, without the strings.</summary>
    private static byte[] Ipv4PrefixUtf8(ReadOnlySpan<byte> address)
    {
        Span<byte> text = stackalloc byte[16];
        int length = 0;
        for (int i = 0; i < 3; i++)
        {
            System.Buffers.Text.Utf8Formatter.TryFormat(address[i], text[length..], out int written);
            length += written;
            text[length++] = (byte)'.';
        }
        "0/24"u8.CopyTo(text[length..]);
        return text[..(length + 4)].ToArray();
    }

    private static byte[] Utf8(string? value, int max) =>
        string.IsNullOrEmpty(value) ? [] : TruncateUtf8(Encoding.UTF8.GetBytes(value), max);

    private static byte[] TruncateUtf8(byte[] utf8, int max)
    {
        if (utf8.Length <= max) return utf8;
        int end = max;
        // Do not cut a multi-byte character in half: back up to a lead byte.
        while (end > 0 && (utf8[end] & 0xC0) == 0x80) end--;
        return utf8.AsSpan(0, end).ToArray();
    }
}
