using System.Buffers.Binary;
using System.Security.Cryptography;
using Analytics.ControlPlane;

namespace Analytics.FastIngest.Enrichment;

/// <summary>
/// Cookieless visitor id: HMAC-SHA256 keyed with the day's secret salt over (IP, User-Agent,
/// site), truncated to 64 bits. The same browser on the same site gets the same id all UTC day;
/// across sites and days the ids are unlinkable, and once a salt is deleted (after two days)
/// nobody can recompute an id from an IP address. 64 bits make collisions negligible (~3e-8 for
/// a site with a million daily visitors).
/// </summary>
public sealed class VisitorIdHasher(SiteRegistry registry)
{
    public ulong Compute(ClientInfo client, long siteId, DateTimeOffset receivedAt)
    {
        byte[] salt = registry.GetSalt(DateOnly.FromDateTime(receivedAt.UtcDateTime));
        int length = 16 + 8 + client.UserAgentUtf8.Length;
        Span<byte> input = length <= 1024 ? stackalloc byte[length] : new byte[length];
        client.AddressBytes.CopyTo(input);
        BinaryPrimitives.WriteInt64LittleEndian(input[16..], siteId);
        client.UserAgentUtf8.CopyTo(input[24..]);
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(salt, input, mac);
        return BinaryPrimitives.ReadUInt64LittleEndian(mac);
    }
}
