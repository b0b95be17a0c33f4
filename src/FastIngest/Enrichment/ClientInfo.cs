using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Analytics.FastIngest.Enrichment;

/// <summary>
/// What the server knows about the sender, prepared once per WebSocket connection (once per
/// request over HTTP) so the per-event path only copies bytes. The full IP address lives here,
/// in memory, only while the connection is open: it is hashed into the visitor id and reduced
/// to a prefix before anything is written.
/// </summary>
public sealed class ClientInfo
{
    public ClientInfo(IPAddress? address, string? userAgent, int maxUserAgentBytes)
    {
        address ??= IPAddress.Loopback;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        AddressBytes = address.MapToIPv6().GetAddressBytes();
        IpPrefixUtf8 = Encoding.ASCII.GetBytes(TruncatedPrefix(address));
        UserAgentUtf8 = TruncateUtf8(Encoding.UTF8.GetBytes(userAgent ?? ""), maxUserAgentBytes);
    }

    /// <summary>16 bytes (IPv4 mapped into IPv6), input to the visitor hash only.</summary>
    internal byte[] AddressBytes { get; }

    /// <summary>"203.0.113.0/24" or "2001:db8:1::/48": what may be stored of the address.</summary>
    public byte[] IpPrefixUtf8 { get; }

    public byte[] UserAgentUtf8 { get; }

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

    private static byte[] TruncateUtf8(byte[] utf8, int max)
    {
        if (utf8.Length <= max) return utf8;
        int end = max;
        // Do not cut a multi-byte character in half: back up to a lead byte.
        while (end > 0 && (utf8[end] & 0xC0) == 0x80) end--;
        return utf8.AsSpan(0, end).ToArray();
    }
}
