using System.Net;
using System.Net.Sockets;
using System.Text;
using Analytics.FastIngest.Enrichment;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// ClientInfo writes the address bytes and the stored prefix without IPAddress's own mapping and
/// formatting (it runs per HTTP request); these compare it with what IPAddress computes.
/// </summary>
public sealed class ClientInfoTests
{
    public static TheoryData<string> Addresses() =>
    [
        "0.0.0.0", "1.2.3.4", "9.99.199.255", "10.0.0.1", "127.0.0.1", "203.0.113.77", "255.255.255.255",
        "::ffff:198.51.100.23", "::1", "2001:db8:abcd:1234:5678::9", "fe80::1", "2001:db8::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];

    [Theory]
    [MemberData(nameof(Addresses))]
    public void Address_bytes_prefix_and_rate_key_equal_what_IPAddress_computes(string text)
    {
        var address = IPAddress.Parse(text);
        var client = new ClientInfo(address, "Mozilla/5.0", 512);

        var plain = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        Assert.Equal(plain.MapToIPv6().GetAddressBytes(), client.AddressBytes);
        Assert.Equal(ExpectedPrefix(plain), Encoding.ASCII.GetString(client.IpPrefixUtf8));
        Assert.Equal(ExpectedRateKey(plain), client.RateKey);
    }

    [Fact]
    public void Every_value_of_every_IPv4_byte_is_written_as_IPAddress_writes_it()
    {
        for (int b = 0; b < 256; b++)
        {
            var address = new IPAddress(new byte[] { (byte)b, (byte)(255 - b), (byte)(b * 7), 1 });
            Assert.Equal(ExpectedPrefix(address), Encoding.ASCII.GetString(new ClientInfo(address, null, 512).IpPrefixUtf8));
        }
    }

    private static string ExpectedPrefix(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            bytes[3] = 0;
            return new IPAddress(bytes) + "/24";
        }
        Array.Clear(bytes, 6, 10);
        return new IPAddress(bytes) + "/48";
    }

    private static UInt128 ExpectedRateKey(IPAddress address)
    {
        var bytes = address.MapToIPv6().GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetworkV6) Array.Clear(bytes, 8, 8);
        return new UInt128(BitConverter.ToUInt64(bytes.Take(8).Reverse().ToArray()), BitConverter.ToUInt64(bytes.Skip(8).Reverse().ToArray()));
    }
}
